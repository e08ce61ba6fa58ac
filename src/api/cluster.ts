/**
 * GET /api/cluster (beyond ceph-iscsi, whose gwcli asks librados itself): the Ceph cluster
 * behind the gateways for gwcli's /cluster — health and its checks, monitors, OSDs, raw
 * capacity, pools with replication and usage. Without Ceph it says so ({"ceph": false}).
 */
import { connectCeph } from '../ceph/settings';
import { clusterStatus } from '../ceph/cluster-status';
import { ApiContext, Routes, fail } from './context';

/** A cluster that does not answer within this is reported as unavailable (503). */
const STATUS_TIMEOUT_MS = 15_000;

export function registerCluster(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/cluster', ['Ceph cluster status: health, monitors, OSDs, pools with replication and usage'], async () => {
    const ceph = ctx.ceph;
    if (!ceph) {
      return { ceph: false, backend: ctx.images.kind, message: 'no Ceph cluster: this gateway keeps its images and configuration in the embedded store' };
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        connectCeph(ceph).then((c) => clusterStatus(c, ceph.clusterName)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${STATUS_TIMEOUT_MS / 1000} s`)), STATUS_TIMEOUT_MS);
        }),
      ]);
    } catch (e) {
      fail(503, `Ceph cluster ${ceph.clusterName} (${ceph.conf}) unavailable: ${(e as Error).message}`);
    } finally {
      if (timer) clearTimeout(timer);
    }
  });
}
