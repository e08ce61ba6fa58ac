/**
 * Test child for the shared LU state store.
 *   node lu-state-writer.js <dir> <wwn> <tag> <n>   n read-modify-write updates, each adding one
 *                                                    registration (key = tag * 1e6 + i); prints "done <n>"
 */
import { FileLuStateStore } from '../../../../src/ha/lu-state-file';
import { silentLogger } from '../../../../src/util/log';
import type { Registration } from '../../../../src/scsi/reservations';

async function main(): Promise<void> {
  const [dir, wwn, tag, count] = process.argv.slice(2);
  const store = await FileLuStateStore.open({ dir, wwn, instance: `child-${tag}.${process.pid}`, log: silentLogger() });
  const n = Number(count);
  for (let i = 0; i < n; i++) {
    const reg: Registration = {
      key: BigInt(Number(tag) * 1_000_000 + i), initiator: `iqn.test:${tag}-${i}`, initiatorPortName: `iqn.test:${tag}-${i},i,0x000000000001`,
      targetPortName: 'iqn.test:t,t,0x0001', relativeTargetPortId: 1, allTargetPorts: false,
    };
    await store.update((s) => ({
      state: { ...s, pr: { ...s.pr, generation: (s.pr.generation + 1) >>> 0, registrations: [...s.pr.registrations, reg] } },
      result: undefined,
    }));
  }
  await store.close();
  process.stdout.write(`done ${n}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
