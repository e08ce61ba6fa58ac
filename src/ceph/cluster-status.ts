/**
 * The Ceph cluster as gwcli's /cluster shows it (ceph-iscsi reads the same through librados in
 * the gwcli process; ours comes through GET /api/cluster): health with its checks, monitors and
 * quorum, OSDs up/in, raw capacity, and every pool with its replication (size/min_size or the
 * erasure-code profile) and usage. All from mon commands: status, osd dump, df, version.
 * Without a mgr the mon knows no usage figures: they are reported as null, not as 0.
 */

/** What the cluster-status code needs of a connection (the addon's Cluster has it). */
export interface MonCommander {
  monCommand(command: Readonly<Record<string, unknown>>): Promise<{ readonly output: Buffer }>;
}

export interface HealthCheck {
  readonly name: string;
  readonly severity: string;
  readonly message: string;
}

export interface PoolStatus {
  readonly name: string;
  readonly id: number;
  readonly type: 'replicated' | 'erasure';
  /** Replicas (replicated) or k+m (erasure). */
  readonly size: number;
  readonly min_size: number;
  /** "x3" for 3 replicas, "k+m" of the profile for erasure-coded pools. */
  readonly desc: string;
  readonly pg_num: number;
  readonly applications: readonly string[];
  /** Usage (null when the cluster has no mgr to report it). */
  readonly stored_bytes: number | null;
  readonly used_bytes: number | null;
  readonly max_avail_bytes: number | null;
  readonly objects: number | null;
}

export interface ClusterStatus {
  readonly ceph: true;
  readonly cluster_name: string;
  readonly fsid: string;
  readonly version: string;
  readonly health: { readonly status: string; readonly checks: readonly HealthCheck[] };
  readonly mons: { readonly count: number; readonly quorum: readonly string[] };
  readonly osds: { readonly count: number; readonly up: number; readonly in: number };
  /** Raw capacity (null without a mgr). */
  readonly capacity: { readonly total_bytes: number; readonly used_bytes: number; readonly avail_bytes: number } | null;
  readonly pools: readonly PoolStatus[];
}

type Json = Record<string, unknown>;

async function monJson(c: MonCommander, prefix: string, extra: Json = {}): Promise<Json> {
  const r = await c.monCommand({ prefix, format: 'json', ...extra });
  const text = r.output.toString('utf8').trim();
  if (text === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as Json) : {};
  } catch {
    throw new Error(`mon command "${prefix}" answered something that is not JSON`);
  }
}

const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** k+m of an erasure-code profile ("2+1"), or the profile name when unknown. */
async function erasureDesc(c: MonCommander, profile: string, cache: Map<string, string>): Promise<string> {
  const hit = cache.get(profile);
  if (hit) return hit;
  let desc = profile;
  try {
    const p = await monJson(c, 'osd erasure-code-profile get', { name: profile });
    if (p.k !== undefined && p.m !== undefined) desc = `${str(p.k)}+${str(p.m)}`;
  } catch {
    // the profile name will do
  }
  cache.set(profile, desc);
  return desc;
}

export async function clusterStatus(c: MonCommander, clusterName: string): Promise<ClusterStatus> {
  const [status, dump, df, version] = await Promise.all([
    monJson(c, 'status'),
    monJson(c, 'osd dump'),
    monJson(c, 'df'),
    monJson(c, 'version').catch(() => ({}) as Json),
  ]);
  const health = obj(status.health);
  const checks: HealthCheck[] = Object.entries(obj(health.checks)).map(([name, v]) => ({
    name,
    severity: str(obj(v).severity),
    message: str(obj(obj(v).summary).message),
  }));
  const monmap = obj(status.monmap);
  const osdmap = obj(status.osdmap);
  const osds = arr(dump.osds).map(obj);
  const usage = new Map<string, Json>();
  for (const p of arr(df.pools).map(obj)) usage.set(str(p.name), obj(p.stats));
  const stats = obj(df.stats);
  const haveUsage = num(stats.total_bytes) > 0;
  const profiles = new Map<string, string>();
  const pools: PoolStatus[] = [];
  for (const p of arr(dump.pools).map(obj)) {
    const name = str(p.pool_name);
    const erasure = num(p.type) === 3;
    const u = usage.get(name);
    pools.push({
      name,
      id: num(p.pool),
      type: erasure ? 'erasure' : 'replicated',
      size: num(p.size),
      min_size: num(p.min_size),
      desc: erasure ? await erasureDesc(c, str(p.erasure_code_profile), profiles) : `x${num(p.size)}`,
      pg_num: num(p.pg_num),
      applications: Object.keys(obj(p.application_metadata)).sort(),
      stored_bytes: haveUsage && u ? num(u.stored) : null,
      used_bytes: haveUsage && u ? num(u.bytes_used) : null,
      max_avail_bytes: haveUsage && u ? num(u.max_avail) : null,
      objects: haveUsage && u ? num(u.objects) : null,
    });
  }
  pools.sort((a, b) => a.name.localeCompare(b.name));
  return {
    ceph: true,
    cluster_name: clusterName,
    fsid: str(status.fsid) || str(dump.fsid),
    version: str(version.version),
    health: { status: str(health.status) || 'UNKNOWN', checks },
    mons: { count: num(monmap.num_mons) || arr(obj(monmap).mons).length, quorum: arr(status.quorum_names).map(str) },
    osds: {
      count: osds.length || num(osdmap.num_osds),
      up: osds.length ? osds.filter((o) => num(o.up) === 1).length : num(osdmap.num_up_osds),
      in: osds.length ? osds.filter((o) => num(o.in) === 1).length : num(osdmap.num_in_osds),
    },
    capacity: haveUsage ? { total_bytes: num(stats.total_bytes), used_bytes: num(stats.total_used_raw_bytes ?? stats.total_used_bytes), avail_bytes: num(stats.total_avail_bytes) } : null,
    pools,
  };
}
