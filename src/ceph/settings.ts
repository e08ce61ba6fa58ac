/**
 * Whether this process talks to a Ceph cluster, and its one connection.
 *
 * The rule (the same as the image provider's, src/images/select.ts of branch ceph-provider):
 * without a settings file everything is embedded. With one, as ceph-iscsi's iscsi-gateway.cfg,
 * Ceph when `[config]` sets `cluster_name` or `gateway_keyring` (a missing conf file is then an
 * error at start), or when the cluster's conf file exists (CEPH_CONF, else
 * `<ceph_config_dir>/<cluster_name>.conf`). `ceph_config_dir` alone does not choose Ceph: it is
 * also where the CHAP key pair lives.
 *
 * The configuration store (RADOS object) and the image provider (RBD) share one connection per
 * process (librados adds ~17 threads per connection).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultSettings } from '../config/settings';
import type { ParsedSettings } from '../config/settings';
import type { NativeIoCtx } from './binding';
import { CephCluster } from './cluster';

export interface CephSettings {
  /** ceph.conf of the cluster (CEPH_CONF, else <ceph_config_dir>/<cluster_name>.conf). */
  readonly conf: string;
  /** Keyring file when the settings name one (else the one ceph.conf names). */
  readonly keyring?: string;
  /** cephx identity, "client.admin" (cluster_client_name). */
  readonly clientName: string;
  readonly clusterName: string;
  /** Pool and object of the shared configuration (pool, gateway_conf). */
  readonly pool: string;
  readonly configObject: string;
  /** rados_osd_op_timeout / rados_mon_op_timeout, seconds: a silent cluster fails calls, never hangs them. */
  readonly osdOpTimeout: number;
  readonly monOpTimeout: number;
}

/** The Ceph settings when Ceph is configured (see the file comment), else undefined. */
export function cephSettings(parsed: ParsedSettings, env: NodeJS.ProcessEnv = process.env): CephSettings | undefined {
  if (parsed.file === undefined) return undefined;
  const s = parsed.settings;
  const explicit = new Set(parsed.explicit ?? []);
  const set = (k: 'cluster_name' | 'gateway_keyring') => explicit.has(k) && s[k].trim() !== '';
  const fromEnv = env.CEPH_CONF !== undefined && env.CEPH_CONF !== '';
  const conf = fromEnv ? path.resolve(env.CEPH_CONF as string) : path.resolve(s.ceph_config_dir, `${s.cluster_name}.conf`);
  if (!set('cluster_name') && !set('gateway_keyring') && !fs.existsSync(conf)) return undefined;
  return {
    conf,
    keyring: s.gateway_keyring ? path.resolve(s.ceph_config_dir, s.gateway_keyring) : undefined,
    clientName: s.cluster_client_name,
    clusterName: s.cluster_name,
    pool: s.pool,
    configObject: s.gateway_conf,
    // tcmu-runner's osd_op_timeout default; the mons get as long as the image provider gives them.
    osdOpTimeout: 30,
    monOpTimeout: 15,
  };
}

/** Settings for tools and tests that have no settings file: the cluster of CEPH_CONF, ceph-iscsi's defaults. */
export function cephSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): CephSettings | undefined {
  if (!env.CEPH_CONF) return undefined;
  return cephSettings({ settings: defaultSettings(), warnings: [], file: '(environment)', explicit: [] }, env);
}

interface Connection {
  readonly key: string;
  readonly cluster: Promise<CephCluster>;
  readonly pools: Map<string, Promise<NativeIoCtx>>;
  /** Someone else's connection (adoptCeph): closeCeph closes our pools but does not shut it down. */
  readonly adopted?: boolean;
}

let connection: Connection | undefined;

function keyOf(s: CephSettings): string {
  return JSON.stringify([s.conf, s.keyring ?? '', s.clientName]);
}

/** The process's cluster connection (made on first use; a failed attempt is retried next time). */
export function connectCeph(s: CephSettings): Promise<CephCluster> {
  const key = keyOf(s);
  if (connection && connection.key !== key) {
    return Promise.reject(new Error(`this process is already connected to the Ceph cluster of ${connection.key}; one cluster per process`));
  }
  if (!connection) {
    const cluster = CephCluster.connect({
      confFile: s.conf,
      clusterName: s.clusterName,
      keyring: s.keyring,
      clientName: s.clientName,
      osdOpTimeout: s.osdOpTimeout,
      monOpTimeout: s.monOpTimeout,
    });
    const conn: Connection = { key, cluster, pools: new Map() };
    connection = conn;
    cluster.catch(() => {
      if (connection === conn) connection = undefined;
    });
  }
  return connection.cluster;
}

/**
 * Make `cluster` (already connected, e.g. the image provider's) the process's connection for
 * `s`, so that the configuration store uses it too. The caller keeps shutting it down.
 */
export function adoptCeph(s: CephSettings, cluster: CephCluster): void {
  if (connection) throw new Error('this process already has its Ceph connection');
  connection = { key: keyOf(s), cluster: Promise.resolve(cluster), pools: new Map(), adopted: true };
}

/** An open pool of the process's connection (one IoCtx per pool, shared). */
export function cephPool(s: CephSettings, pool: string): Promise<NativeIoCtx> {
  const conn = connectCeph(s);
  const c = connection;
  if (!c) return conn.then(() => cephPool(s, pool));
  let io = c.pools.get(pool);
  if (!io) {
    io = conn.then((cluster) => cluster.openIoCtx(pool));
    c.pools.set(pool, io);
    io.catch(() => c.pools.delete(pool));
  }
  return io;
}

/** Close the pools and shut the connection down (daemon exit); a no-op when never connected. */
export async function closeCeph(): Promise<void> {
  const c = connection;
  connection = undefined;
  if (!c) return;
  const cluster = await c.cluster.catch(() => undefined);
  for (const io of c.pools.values()) await io.then((i) => i.close()).catch(() => undefined);
  // EBUSY while an image or an operation still uses it: the process is exiting anyway.
  if (!c.adopted) await cluster?.shutdown().catch(() => undefined);
}

