/**
 * Whether this process talks to a Ceph cluster, and its one connection.
 *
 * Ceph is configured when CEPH_CONF is set (tests, scripts) or the settings file's [config]
 * names the cluster: `cluster_name` or `gateway_keyring` set, or `ceph_config_dir` set to a
 * directory that holds `<cluster_name>.conf` (a ceph_config_dir that only holds the CHAP key
 * pair does not switch to Ceph). Otherwise everything stays embedded (the default).
 *
 * Both the configuration store (RADOS object) and the image provider (RBD) follow this one
 * rule and share one connection per process (librados adds ~17 threads per connection).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
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
  const s = parsed.settings;
  const explicit = new Set(parsed.explicit ?? []);
  const fromEnv = env.CEPH_CONF !== undefined && env.CEPH_CONF !== '';
  const conf = fromEnv ? path.resolve(env.CEPH_CONF as string) : path.resolve(s.ceph_config_dir, `${s.cluster_name}.conf`);
  const configured = fromEnv || explicit.has('cluster_name') || explicit.has('gateway_keyring') || (explicit.has('ceph_config_dir') && fs.existsSync(conf));
  if (!configured) return undefined;
  return {
    conf,
    keyring: s.gateway_keyring ? path.resolve(s.ceph_config_dir, s.gateway_keyring) : undefined,
    clientName: s.cluster_client_name,
    clusterName: s.cluster_name,
    pool: s.pool,
    configObject: s.gateway_conf,
    // tcmu-runner's osd_op_timeout default; ceph-iscsi's mon calls time out after 30 s as well.
    osdOpTimeout: 30,
    monOpTimeout: 30,
  };
}

interface Connection {
  readonly key: string;
  readonly cluster: Promise<CephCluster>;
  readonly pools: Map<string, Promise<NativeIoCtx>>;
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
  await cluster?.shutdown().catch(() => undefined);
}

