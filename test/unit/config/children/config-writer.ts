/**
 * Test child for the config store.
 *   node config-writer.js <file> updates <tag> <n>   n read-modify-write updates, each adding
 *                                                     one client "<tag>-<i>" to target t1; prints "done <i>"
 *   node config-writer.js <file> lock <owner> <ttlMs> take the store lock, print "locked", then hang
 */
import { FileConfigStore } from '../../../../src/config/file-store';

async function main(): Promise<void> {
  const [file, mode, tag, arg] = process.argv.slice(2);
  const store = new FileConfigStore(file);
  if (mode === 'updates') {
    const n = Number(arg);
    for (let i = 0; i < n; i++) {
      await store.update((d) => {
        const t = d.targets.t1;
        if (!t) throw new Error('target t1 missing');
        t.clients[`${tag}-${i}`] = { auth: t.auth, luns: {}, group_name: '' };
      }, { retries: 1000 });
    }
    process.stdout.write(`done ${n}\n`);
    return;
  }
  if (mode === 'lock') {
    await store.lock({ owner: tag, ttlMs: Number(arg) });
    process.stdout.write('locked\n');
    setInterval(() => undefined, 1000);
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
