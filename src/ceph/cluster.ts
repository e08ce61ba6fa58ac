/**
 * A connected Ceph cluster: connection settings (CEPH_CONF, or ceph-iscsi's [config] keys
 * cluster_name + ceph_config_dir + gateway_keyring + cluster_client_name), timeouts, pool
 * contexts, mon commands (health, pools, df, OSD counts) and blocklisting.
 */
import * as path from 'node:path';
import { CephAddon, MonCommandResult, NativeCluster, NativeIoCtx, requireCephBinding } from './binding';
import { ceph, cephSync } from './errors';

export interface ConnectOptions {
  /** Path of ceph.conf. Default: $CEPH_CONF, else <configDir>/<clusterName>.conf. */
  readonly confFile?: string;
  /** ceph-iscsi cluster_name (default "ceph"). */
  readonly clusterName?: string;
  /** ceph-iscsi ceph_config_dir (default /etc/ceph). */
  readonly configDir?: string;
  /** ceph-iscsi gateway_keyring, relative to configDir (default: whatever the conf names). */
  readonly keyring?: string;
  /** ceph-iscsi cluster_client_name (default client.admin). */
  readonly clientName?: string;
  /** rados_osd_op_timeout in seconds: an OSD op that takes longer fails with ETIMEDOUT (0 = wait forever). */
  readonly osdOpTimeout?: number;
  /** rados_mon_op_timeout in seconds (also bounds connect). */
  readonly monOpTimeout?: number;
  /** More conf overrides, applied after the conf file. */
  readonly conf?: Readonly<Record<string, string>>;
  /** For tests: the addon to use (default: the loaded one). */
  readonly addon?: CephAddon;
}

/** Resolve the conf file path the way ceph-iscsi does (CEPH_CONF first, as every Ceph CLI). */
export function resolveConfFile(o: ConnectOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (o.confFile) return o.confFile;
  if (env.CEPH_CONF) return env.CEPH_CONF;
  return path.join(o.configDir ?? '/etc/ceph', `${o.clusterName ?? 'ceph'}.conf`);
}

export interface PoolStats {
  readonly name: string;
  readonly id: number;
  readonly storedBytes: number;
  readonly objects: number;
  readonly maxAvailBytes: number;
}

export interface ClusterDf {
  readonly totalBytes: number;
  readonly totalUsedBytes: number;
  readonly totalAvailBytes: number;
  readonly pools: PoolStats[];
}

export interface OsdCounts {
  readonly total: number;
  readonly up: number;
  readonly in: number;
}

export class CephCluster {
  private closed = false;

  private constructor(
    readonly native: NativeCluster,
    readonly addon: CephAddon,
    readonly confFile: string,
  ) {}

  static async connect(options: ConnectOptions = {}): Promise<CephCluster> {
    const addon = options.addon ?? requireCephBinding();
    const confFile = resolveConfFile(options);
    const native = cephSync(() => new addon.Cluster(options.clusterName ?? 'ceph', options.clientName ?? 'client.admin'));
    cephSync(() => {
      if (options.keyring) native.confSet('keyring', path.resolve(options.configDir ?? '/etc/ceph', options.keyring));
      if (options.osdOpTimeout !== undefined) native.confSet('rados_osd_op_timeout', String(options.osdOpTimeout));
      if (options.monOpTimeout !== undefined) {
        native.confSet('rados_mon_op_timeout', String(options.monOpTimeout));
        native.confSet('client_mount_timeout', String(options.monOpTimeout));
      }
      for (const [k, v] of Object.entries(options.conf ?? {})) native.confSet(k, v);
    });
    await ceph(() => native.connect(confFile));
    return new CephCluster(native, addon, confFile);
  }

  confGet(key: string): string {
    return cephSync(() => this.native.confGet(key));
  }

  /** Runtime conf change (not every option takes effect after connect). */
  confSet(key: string, value: string): void {
    cephSync(() => this.native.confSet(key, value));
  }

  openIoCtx(pool: string): Promise<NativeIoCtx> {
    return ceph(() => this.native.openIoCtx(pool));
  }

  /** One mon command; `command` is the JSON object ceph's CLI would send. */
  monCommand(command: Readonly<Record<string, unknown>>, input?: Buffer): Promise<MonCommandResult> {
    return ceph(() => this.native.monCommand(JSON.stringify(command), input ?? null));
  }

  /** A mon command with format=json, parsed. */
  async monJson(command: Readonly<Record<string, unknown>>): Promise<unknown> {
    const r = await this.monCommand({ ...command, format: 'json' });
    const text = r.output.toString('utf8').trim();
    return text === '' ? null : (JSON.parse(text) as unknown);
  }

  /** HEALTH_OK / HEALTH_WARN / HEALTH_ERR. */
  async health(): Promise<string> {
    const h = (await this.monJson({ prefix: 'health' })) as { status?: unknown } | null;
    return typeof h?.status === 'string' ? h.status : 'HEALTH_UNKNOWN';
  }

  poolList(): Promise<string[]> {
    return ceph(() => this.native.poolList());
  }

  async df(): Promise<ClusterDf> {
    interface DfJson {
      stats?: { total_bytes?: number; total_used_raw_bytes?: number; total_used_bytes?: number; total_avail_bytes?: number };
      pools?: { name: string; id: number; stats?: { stored?: number; bytes_used?: number; objects?: number; max_avail?: number } }[];
    }
    const d = ((await this.monJson({ prefix: 'df' })) ?? {}) as DfJson;
    return {
      totalBytes: d.stats?.total_bytes ?? 0,
      totalUsedBytes: d.stats?.total_used_raw_bytes ?? d.stats?.total_used_bytes ?? 0,
      totalAvailBytes: d.stats?.total_avail_bytes ?? 0,
      pools: (d.pools ?? []).map((p) => ({
        name: p.name,
        id: p.id,
        storedBytes: p.stats?.stored ?? p.stats?.bytes_used ?? 0,
        objects: p.stats?.objects ?? 0,
        maxAvailBytes: p.stats?.max_avail ?? 0,
      })),
    };
  }

  async osdCounts(): Promise<OsdCounts> {
    interface OsdStat {
      num_osds?: number;
      num_up_osds?: number;
      num_in_osds?: number;
      osdmap?: OsdStat;
    }
    const s = ((await this.monJson({ prefix: 'osd stat' })) ?? {}) as OsdStat;
    const m = s.osdmap ?? s;
    return { total: m.num_osds ?? 0, up: m.num_up_osds ?? 0, in: m.num_in_osds ?? 0 };
  }

  /** Fence a client (e.g. a dead gateway's lock owner address) for `expireSeconds` (0: cluster default). */
  blocklistAdd(address: string, expireSeconds = 0): Promise<void> {
    return ceph(() => this.native.blocklistAdd(address, expireSeconds));
  }

  /** This client's address as blocklistAdd takes it. */
  address(): string {
    return cephSync(() => this.native.addrs());
  }

  instanceId(): number {
    return cephSync(() => this.native.instanceId());
  }

  fsid(): string {
    return cephSync(() => this.native.fsid());
  }

  /** Disconnect. Close images and pool contexts first (EBUSY otherwise). Idempotent. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    await ceph(() => this.native.shutdown());
    this.closed = true;
  }
}
