/**
 * `/cluster`: the Ceph cluster behind the gateways (reference §1.4), from GET /api/cluster —
 * health, pools with replication, commit and usage, OSD/MON counts — laid out as ceph-iscsi's:
 *
 *   o- cluster ............................... [Clusters: 1]
 *     o- ceph ................................ [HEALTH_OK]
 *       o- pools ............................. [Pools: 1]
 *       | o- rbd ... [(x3), Commit: 64M/15G (0%), Used: 24K]
 *       o- topology .......................... [OSDs: 3,MONs: 3]
 *
 * With the embedded store there is no Ceph cluster, and the node says so; its pools (from
 * GET /api/pools) are shown instead.
 */
import type { ClusterStatus, PoolStatus } from '../../../ceph/cluster-status';
import { Command, Summary, UINode, humanSize } from '../node';
import { Model, PoolInfo } from '../model';

export class ClusterGroup extends UINode {
  readonly kind = 'Clusters';
  constructor(parent: UINode, model: Model) {
    super('cluster', parent, model);
  }
  protected buildChildren(): UINode[] {
    return [new Cluster(this, this.model)];
  }
  summary(): Summary {
    return { text: 'Clusters: 1', state: 'none' };
  }
  override commands(): Command[] {
    return [{ name: 'refresh', params: [], help: 'Re-read the cluster status, pools and usage.', run: async () => undefined }];
  }
}

/** Size figures of the pools the gateways' disks are in ("Commit" is their provisioned sum). */
function commitOf(model: Model, pool: string): number {
  let c = 0;
  for (const id of model.diskIds()) if (id.startsWith(`${pool}/`)) c += model.disks.get(id)?.size ?? 0;
  return c;
}

export class Cluster extends UINode {
  readonly kind = 'Cluster';
  constructor(parent: UINode, model: Model) {
    super(model.clusterName, parent, model);
  }
  private get ceph(): ClusterStatus | undefined {
    return this.model.cluster;
  }
  protected buildChildren(): UINode[] {
    if (this.ceph) return [new CephPools(this, this.model, this.ceph), new Topology(this, this.model, this.ceph)];
    return [new Pools(this, this.model)];
  }
  summary(): Summary {
    const c = this.ceph;
    if (!c) {
      if (this.model.clusterError) return { text: `unavailable: ${this.model.clusterError}`, state: 'bad' };
      return { text: `no Ceph cluster (${this.model.backend || 'embedded'} store)`, state: 'none' };
    }
    const s = c.health.status;
    return { text: s, state: s === 'HEALTH_OK' ? 'ok' : s === 'HEALTH_WARN' ? 'warn' : 'bad' };
  }
  override info(): Record<string, unknown> {
    const c = this.ceph;
    if (!c) {
      const total = this.model.pools.reduce((a, p) => a + p.provisioned_bytes, 0);
      return {
        name: this.model.clusterName,
        ceph: this.model.clusterError ? `unavailable: ${this.model.clusterError}` : 'none: images and configuration are in the embedded store',
        backend: this.model.backend,
        pools: this.model.pools.length,
        provisioned: humanSize(total),
      };
    }
    return {
      name: c.cluster_name,
      fsid: c.fsid,
      version: c.version,
      health: c.health.status,
      checks: c.health.checks.map((h) => `${h.severity} ${h.name}: ${h.message}`),
      mons: `${c.mons.count} (quorum: ${c.mons.quorum.join(', ') || 'none'})`,
      osds: `${c.osds.count} (up: ${c.osds.up}, in: ${c.osds.in})`,
      pools: c.pools.length,
      raw_capacity: c.capacity ? `${humanSize(c.capacity.total_bytes)} (used ${humanSize(c.capacity.used_bytes)}, avail ${humanSize(c.capacity.avail_bytes)})` : 'n/a (no mgr reports usage)',
    };
  }
  override commands(): Command[] {
    return [{ name: 'refresh', params: [], help: 'Re-read the cluster status, pools and usage.', run: async () => undefined }];
  }
}

export class CephPools extends UINode {
  readonly kind = 'Pools';
  constructor(
    parent: UINode,
    model: Model,
    private readonly c: ClusterStatus,
  ) {
    super('pools', parent, model);
  }
  protected buildChildren(): UINode[] {
    return this.c.pools.map((p) => new CephPool(this, this.model, p));
  }
  summary(): Summary {
    return { text: `Pools: ${this.c.pools.length}`, state: 'none' };
  }
}

export class CephPool extends UINode {
  readonly kind = 'Pool';
  constructor(
    parent: UINode,
    model: Model,
    private readonly p: PoolStatus,
  ) {
    super(p.name, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    const commit = commitOf(this.model, this.p.name);
    const avail = this.p.max_avail_bytes;
    const commitText = avail !== null && avail > 0 ? `${humanSize(commit)}/${humanSize(avail)} (${Math.round((commit / avail) * 100)}%)` : humanSize(commit);
    const used = this.p.used_bytes === null ? 'n/a' : humanSize(this.p.used_bytes);
    return { text: `(${this.p.desc}), Commit: ${commitText}, Used: ${used}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    const commit = commitOf(this.model, this.p.name);
    const avail = this.p.max_avail_bytes;
    return {
      name: this.p.name,
      type: this.p.type,
      desc: this.p.desc,
      size: this.p.size,
      min_size: this.p.min_size,
      pg_num: this.p.pg_num,
      applications: this.p.applications,
      commit: humanSize(commit),
      overcommit_PCT: avail !== null && avail > 0 ? Math.round((commit / avail) * 100) : 'n/a',
      max_bytes: avail === null ? 'n/a' : humanSize(avail),
      used_bytes: this.p.used_bytes === null ? 'n/a' : humanSize(this.p.used_bytes),
      stored_bytes: this.p.stored_bytes === null ? 'n/a' : humanSize(this.p.stored_bytes),
      objects: this.p.objects ?? 'n/a',
    };
  }
}

export class Topology extends UINode {
  readonly kind = 'Topology';
  constructor(
    parent: UINode,
    model: Model,
    private readonly c: ClusterStatus,
  ) {
    super('topology', parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    const down = this.c.osds.count - this.c.osds.up;
    return { text: `OSDs: ${this.c.osds.count},MONs: ${this.c.mons.count}`, state: down > 0 || this.c.mons.quorum.length < this.c.mons.count ? 'warn' : 'none' };
  }
  override info(): Record<string, unknown> {
    return {
      osds: this.c.osds.count,
      osds_up: this.c.osds.up,
      osds_in: this.c.osds.in,
      mons: this.c.mons.count,
      quorum: this.c.mons.quorum,
    };
  }
}

/** The embedded store's pools (no Ceph). */
export class Pools extends UINode {
  readonly kind = 'Pools';
  constructor(parent: UINode, model: Model) {
    super('pools', parent, model);
  }
  protected buildChildren(): UINode[] {
    return this.model.pools.map((p) => new Pool(this, this.model, p));
  }
  summary(): Summary {
    return { text: `Pools: ${this.model.pools.length}`, state: 'none' };
  }
}

export class Pool extends UINode {
  readonly kind = 'Pool';
  constructor(
    parent: UINode,
    model: Model,
    private readonly p: PoolInfo,
  ) {
    super(p.name, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    return { text: `Images: ${this.p.images}, Provisioned: ${humanSize(this.p.provisioned_bytes)}, Commit: ${humanSize(commitOf(this.model, this.p.name))}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    return { name: this.p.name, images: this.p.images, provisioned_bytes: this.p.provisioned_bytes, commit: humanSize(commitOf(this.model, this.p.name)) };
  }
}
