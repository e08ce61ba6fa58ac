/**
 * Gateway settings: the `[config]` section of iscsi-gateway.cfg (reference §3.5, SYS_SETTINGS),
 * parsed with the `ini` library into a typed object. Like ceph-iscsi, an invalid value keeps
 * the default — but here it is reported (a warning per key) instead of silently ignored.
 * `minimum_gateways` defaults to 1 (one gateway is a working setup here).
 */
import * as fs from 'node:fs';
import * as ini from 'ini';

export interface GatewaySettings {
  readonly cluster_name: string;
  readonly pool: string;
  readonly gateway_conf: string;
  readonly cluster_client_name: string;
  readonly ceph_config_dir: string;
  readonly time_out: number;
  readonly loop_delay: number;
  readonly api_host: string;
  readonly api_port: number;
  readonly api_secure: boolean;
  readonly api_ssl_verify: boolean;
  readonly api_user: string;
  readonly api_password: string;
  readonly trusted_ip_list: readonly string[];
  readonly minimum_gateways: number;
  readonly priv_key: string;
  readonly pub_key: string;
  readonly prometheus_exporter: boolean;
  readonly prometheus_host: string;
  readonly prometheus_port: number;
  readonly logger_level: number;
  readonly alua_failover_type: 'implicit' | 'explicit';
  /** HA (src/ha): a lock holder that has not renewed its lease for this long is fenced and its lock broken. */
  readonly ha_lease_secs: number;
  /** The preferred owner takes its disks back after being up this long (0: no automatic failback). */
  readonly ha_failback_secs: number;
  /** Minimum time a gateway keeps a disk before handing it over; doubled per lock bounce up to ha_max_hold_ms. */
  readonly ha_min_hold_ms: number;
  readonly ha_max_hold_ms: number;
  /** SIGTERM / stop hands every disk to another gateway before the sessions are logged out. */
  readonly ha_drain_on_stop: boolean;
  /** TLS files when api_secure (ceph-iscsi: /etc/ceph/iscsi-gateway.crt/.key). */
  readonly ssl_cert: string;
  readonly ssl_key: string;
}

type Def =
  | { kind: 'str'; default: string }
  | { kind: 'int'; min: number; max: number; default: number }
  | { kind: 'bool'; default: boolean }
  | { kind: 'list'; default: readonly string[] }
  | { kind: 'enum'; values: readonly string[]; default: string };

export const SYS_SETTINGS: { readonly [K in keyof GatewaySettings]: Def } = {
  cluster_name: { kind: 'str', default: 'ceph' },
  pool: { kind: 'str', default: 'rbd' },
  gateway_conf: { kind: 'str', default: 'gateway.conf' },
  cluster_client_name: { kind: 'str', default: 'client.admin' },
  ceph_config_dir: { kind: 'str', default: '/etc/ceph' },
  time_out: { kind: 'int', min: 1, max: 600, default: 30 },
  loop_delay: { kind: 'int', min: 1, max: 60, default: 2 },
  api_host: { kind: 'str', default: '::' },
  api_port: { kind: 'int', min: 1, max: 65535, default: 5000 },
  api_secure: { kind: 'bool', default: true },
  api_ssl_verify: { kind: 'bool', default: false },
  api_user: { kind: 'str', default: 'admin' },
  api_password: { kind: 'str', default: 'admin' },
  trusted_ip_list: { kind: 'list', default: [] },
  minimum_gateways: { kind: 'int', min: 1, max: 9999, default: 1 },
  priv_key: { kind: 'str', default: 'iscsi-gateway.key' },
  pub_key: { kind: 'str', default: 'iscsi-gateway-pub.key' },
  prometheus_exporter: { kind: 'bool', default: true },
  prometheus_host: { kind: 'str', default: '::' },
  prometheus_port: { kind: 'int', min: 1, max: 65535, default: 9287 },
  logger_level: { kind: 'int', min: 10, max: 50, default: 10 },
  alua_failover_type: { kind: 'enum', values: ['implicit', 'explicit'], default: 'implicit' },
  ha_lease_secs: { kind: 'int', min: 1, max: 120, default: 5 },
  ha_failback_secs: { kind: 'int', min: 0, max: 86400, default: 15 },
  ha_min_hold_ms: { kind: 'int', min: 0, max: 60000, default: 250 },
  ha_max_hold_ms: { kind: 'int', min: 0, max: 600000, default: 4000 },
  ha_drain_on_stop: { kind: 'bool', default: true },
  ssl_cert: { kind: 'str', default: '/etc/ceph/iscsi-gateway.crt' },
  ssl_key: { kind: 'str', default: '/etc/ceph/iscsi-gateway.key' },
};

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

export interface ParsedSettings {
  readonly settings: GatewaySettings;
  /** Keys with a value that was rejected (the default was kept), and unknown keys. */
  readonly warnings: readonly string[];
  /** The file they came from, when any. */
  readonly file?: string;
}

export function defaultSettings(): GatewaySettings {
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(SYS_SETTINGS)) out[k] = d.default;
  return out as unknown as GatewaySettings;
}

function convert(key: string, def: Def, raw: unknown): { value?: unknown; problem?: string } {
  const text = typeof raw === 'string' ? raw.trim() : String(raw);
  switch (def.kind) {
    case 'str':
      return { value: text };
    case 'int': {
      if (!/^-?\d+$/.test(text)) return { problem: `${key}: expected an integer, got "${text}"` };
      const n = Number(text);
      if (n < def.min || n > def.max) return { problem: `${key}: ${n} is outside ${def.min}-${def.max}` };
      return { value: n };
    }
    case 'bool': {
      const t = text.toLowerCase();
      if (['true', 'yes', '1', 'on'].includes(t) || raw === true) return { value: true };
      if (['false', 'no', '0', 'off'].includes(t) || raw === false) return { value: false };
      return { problem: `${key}: expected true or false, got "${text}"` };
    }
    case 'list':
      return { value: text.split(',').map((s) => s.trim()).filter((s) => s.length > 0) };
    case 'enum':
      if (!def.values.includes(text)) return { problem: `${key}: expected one of ${def.values.join(', ')}, got "${text}"` };
      return { value: text };
  }
}

/** Parse the text of an iscsi-gateway.cfg. Only `[config]` is read here. */
export function parseSettings(text: string, file?: string): ParsedSettings {
  const doc = ini.parse(text) as Record<string, unknown>;
  const section = doc.config;
  const out: Record<string, unknown> = { ...defaultSettings() };
  const warnings: string[] = [];
  if (section !== undefined && (typeof section !== 'object' || section === null)) {
    throw new SettingsError(`${file ?? 'settings'}: [config] is not a section`);
  }
  for (const [key, raw] of Object.entries((section ?? {}) as Record<string, unknown>)) {
    const def = (SYS_SETTINGS as Record<string, Def | undefined>)[key];
    if (!def) {
      warnings.push(`${key}: unknown setting (ignored)`);
      continue;
    }
    if (typeof raw === 'string' && raw.startsWith('config://')) {
      warnings.push(`${key}: config:// values need the Ceph mon config-key store (default kept)`);
      continue;
    }
    const { value, problem } = convert(key, def, raw);
    if (problem) warnings.push(`${problem} (default kept)`);
    else out[key] = value;
  }
  return { settings: out as unknown as GatewaySettings, warnings, file };
}

/** Read and parse a settings file; a missing or unreadable file is an error (it was asked for). */
export function loadSettings(file: string): ParsedSettings {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SettingsError(`cannot read settings file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSettings(text, file);
}

/** The settings the API hashes in /api/sysinfo/checkconf (all but client name and log level). */
export function checkconfSubset(s: GatewaySettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(SYS_SETTINGS).sort()) {
    if (k === 'cluster_client_name' || k === 'logger_level') continue;
    out[k] = (s as unknown as Record<string, unknown>)[k];
  }
  return out;
}
