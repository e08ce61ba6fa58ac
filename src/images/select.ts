/**
 * Which image provider a daemon uses: the embedded store by default; Ceph RBD when the
 * settings file names a cluster (src/ceph/settings.ts decides, for the config store too).
 * Connecting is done once, at start-up, and fails the start with a message that says what
 * was configured and what is missing (the binding, the conf file, the cluster) rather than
 * falling back to the embedded store behind the administrator's back.
 */
import * as fs from 'node:fs';
import * as ini from 'ini';
import { loadCephBinding } from '../ceph/binding';
import { CephCluster, ConnectOptions, resolveConfFile } from '../ceph/cluster';
import { CephImageProvider, CephProviderOptions } from './ceph';
import { CephRbdClient } from './ceph-client';

/** ceph-iscsi's osd_op_timeout default (tcmu-runner passes it to librados as rados_osd_op_timeout). */
export const DEFAULT_OSD_OP_TIMEOUT_S = 30;
/** How long start-up waits for the monitors before it gives up with an error. */
export const CONNECT_TIMEOUT_S = 15;

export class CephUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CephUnavailableError';
  }
}

/**
 * rados_osd_op_timeout from the conf file ([client] or [global], "rados osd op timeout" or
 * with underscores), else DEFAULT_OSD_OP_TIMEOUT_S: an OSD that stops answering fails the op
 * with ETIMEDOUT instead of blocking it forever.
 */
export function osdOpTimeout(confFile: string): number {
  let doc: Record<string, unknown>;
  try {
    doc = ini.parse(fs.readFileSync(confFile, 'utf8')) as Record<string, unknown>;
  } catch {
    return DEFAULT_OSD_OP_TIMEOUT_S;
  }
  for (const section of ['client', 'global']) {
    const s = doc[section];
    if (typeof s !== 'object' || s === null) continue;
    for (const [k, v] of Object.entries(s as Record<string, unknown>)) {
      if (k.trim().replace(/[ -]/g, '_') !== 'rados_osd_op_timeout') continue;
      const n = Number(String(v).trim());
      if (Number.isFinite(n) && n >= 0) return n;
    }
  }
  return DEFAULT_OSD_OP_TIMEOUT_S;
}

/** Describe the connection for messages (never a key). */
function where(o: ConnectOptions, conf: string): string {
  return `cluster '${o.clusterName ?? 'ceph'}', conf ${conf}, client ${o.clientName ?? 'client.admin'}`;
}

/** Connect to the configured cluster (one connection for this process) and serve RBD images from it. */
export async function connectCephImages(o: ConnectOptions, providerOptions: CephProviderOptions = {}): Promise<CephImageProvider> {
  const conf = resolveConfFile(o);
  const binding = loadCephBinding();
  if (!binding.available) {
    throw new CephUnavailableError(`Ceph is configured (${where(o, conf)}) but the Ceph binding is not available: ${binding.reason}`);
  }
  if (!fs.existsSync(conf)) throw new CephUnavailableError(`Ceph is configured (${where(o, conf)}) but ${conf} does not exist`);
  let cluster: CephCluster;
  try {
    cluster = await CephCluster.connect({
      ...o,
      confFile: conf,
      osdOpTimeout: o.osdOpTimeout ?? osdOpTimeout(conf),
      monOpTimeout: o.monOpTimeout ?? CONNECT_TIMEOUT_S,
    });
  } catch (e) {
    throw new CephUnavailableError(`Ceph is configured (${where(o, conf)}) but the cluster cannot be reached: ${(e as Error).message}`);
  }
  return new CephImageProvider(new CephRbdClient(cluster), providerOptions);
}

/**
 * The Ceph connection the settings file asks for, or undefined for the embedded store.
 * Without a settings file: the embedded store. With one, as ceph-iscsi's iscsi-gateway.cfg:
 * Ceph when `[config]` sets cluster_name or gateway_keyring (then a missing conf file is an
 * error at start), or when the conf file exists (CEPH_CONF, else
 * <ceph_config_dir>/<cluster_name>.conf). ceph_config_dir alone does not choose Ceph: it is
 * also where the CHAP key pair lives.
 */
export function cephFromSettingsFile(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ConnectOptions | undefined {
  if (file === undefined) return undefined;
  let section: Record<string, unknown>;
  try {
    const doc = ini.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    section = typeof doc.config === 'object' && doc.config !== null ? (doc.config as Record<string, unknown>) : {};
  } catch {
    return undefined; // loadSettings already reported an unreadable file
  }
  const str = (k: string): string | undefined => (typeof section[k] === 'string' && (section[k] as string).trim() !== '' ? (section[k] as string).trim() : undefined);
  const clusterName = str('cluster_name');
  const configDir = str('ceph_config_dir');
  const keyring = str('gateway_keyring');
  const clientName = str('cluster_client_name');
  const options: ConnectOptions = {
    ...(clusterName !== undefined ? { clusterName } : {}),
    ...(configDir !== undefined ? { configDir } : {}),
    ...(keyring !== undefined ? { keyring } : {}),
    ...(clientName !== undefined ? { clientName } : {}),
  };
  const named = clusterName !== undefined || keyring !== undefined;
  return named || fs.existsSync(resolveConfFile(options, env)) ? options : undefined;
}
