/**
 * Test child for the config store contract (test/helpers/config-contract.ts).
 *   node config-writer.js <store> updates <tag> <n>   n read-modify-write updates, each adding
 *                                                      one client "<tag>-<i>" to target t1; prints
 *                                                      "commit <epoch> <ms since 1970>" per update, "done <n>"
 *   node config-writer.js <store> lock <owner> <ttlMs> take the store lock, print "locked", then hang
 *   node config-writer.js <store> watch                 print "epoch <n>" for every document seen, and
 *                                                      "watch lost|restored" (RADOS store), until killed
 * <store>: a gateway.json path (file store) or "rados:<pool>/<object>" (RADOS store on the
 * cluster of CEPH_CONF).
 */
import { FileConfigStore } from '../../../../src/config/file-store';
import { RadosConfigStore } from '../../../../src/config/rados-store';
import { cephSettingsFromEnv } from '../../../../src/ceph/settings';
import type { ConfigStore } from '../../../../src/config/store';

async function open(spec: string): Promise<ConfigStore> {
  const m = /^rados:([^/]+)\/(.+)$/.exec(spec);
  if (!m) return new FileConfigStore(spec);
  const ceph = cephSettingsFromEnv();
  if (!ceph) throw new Error('rados store: CEPH_CONF is not set');
  // Only the notify may deliver (the safety re-read is a minute away).
  return RadosConfigStore.at(ceph, m[1], m[2], { resyncMs: 60_000, onWatch: (event) => process.stdout.write(`watch ${event}\n`) });
}

async function main(): Promise<void> {
  const [spec, mode, tag, arg] = process.argv.slice(2);
  const store = await open(spec);
  if (mode === 'updates') {
    const n = Number(arg);
    for (let i = 0; i < n; i++) {
      const r = await store.update((d) => {
        const t = d.targets.t1;
        if (!t) throw new Error('target t1 missing');
        t.clients[`${tag}-${i}`] = { auth: t.auth, luns: {}, group_name: '' };
      }, { retries: 1000 });
      process.stdout.write(`commit ${r.epoch} ${Date.now()}\n`);
    }
    process.stdout.write(`done ${n}\n`);
    await store.close();
    process.exit(0);
  }
  if (mode === 'lock') {
    await store.lock({ owner: tag, ttlMs: Number(arg) });
    process.stdout.write('locked\n');
    setInterval(() => undefined, 1000);
    return;
  }
  if (mode === 'watch') {
    store.watch((s) => process.stdout.write(`epoch ${s.epoch}\n`));
    setInterval(() => undefined, 1000);
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
