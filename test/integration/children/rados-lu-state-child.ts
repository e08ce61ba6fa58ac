/**
 * Test child for the RADOS logical-unit state (another gateway process on the cluster of CEPH_CONF).
 *   node rados-lu-state-child.js <pool> <wwn> <tag> writes <n>   n read-modify-write updates, each adding one
 *                                                               registration (key = tag * 1e6 + i); prints
 *                                                               "done <n> <ms of the slowest update>"
 *   node rados-lu-state-child.js <pool> <wwn> <tag> spc2         takes the SPC-2 reservation, prints "held", waits
 */
import { CephCluster } from '../../../src/ceph/cluster';
import { RadosObject } from '../../../src/ceph/rados-object';
import { RadosLuStateStore, luStateObjectName } from '../../../src/ha/lu-state-rados';
import { silentLogger } from '../../../src/util/log';
import type { Registration } from '../../../src/scsi/reservations';

async function main(): Promise<void> {
  const [pool, wwn, tag, mode, count] = process.argv.slice(2);
  const cluster = await CephCluster.connect({ confFile: process.env.CEPH_CONF, osdOpTimeout: 10, monOpTimeout: 10 });
  const io = await cluster.openIoCtx(pool);
  const store = await RadosLuStateStore.open({
    obj: new RadosObject(io, pool, luStateObjectName(wwn)), wwn, instance: `child-${tag}.${process.pid}`, log: silentLogger(),
  });
  if (mode === 'spc2') {
    await store.update((s) => ({ state: { ...s, spc2: { nexusKey: `nexus-${tag}` } }, result: undefined }));
    process.stdout.write('held\n');
    await new Promise(() => undefined);
  }
  const n = Number(count);
  let slowest = 0;
  for (let i = 0; i < n; i++) {
    const reg: Registration = {
      key: BigInt(Number(tag) * 1_000_000 + i), initiator: `iqn.test:${tag}-${i}`, initiatorPortName: `iqn.test:${tag}-${i},i,0x000000000001`,
      targetPortName: 'iqn.test:t,t,0x0001', relativeTargetPortId: 1, allTargetPorts: false,
    };
    const t0 = Date.now();
    await store.update((s) => ({
      state: { ...s, pr: { ...s.pr, generation: (s.pr.generation + 1) >>> 0, registrations: [...s.pr.registrations, reg] } },
      result: undefined,
    }));
    slowest = Math.max(slowest, Date.now() - t0);
  }
  await store.close();
  io.close();
  await cluster.shutdown();
  process.stdout.write(`done ${n} ${slowest}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
