/** Shapes of the API answers the dashboard reads (docs/rest-api.md, docs/web-dashboard.md). */
export interface Rates {
  read_bps: number;
  write_bps: number;
  read_iops: number;
  write_iops: number;
  other_iops: number;
  read_p50: number | null;
  read_p99: number | null;
  write_p50: number | null;
  write_p99: number | null;
}
export interface Point {
  t: number;
  gateways: Record<string, Rates>;
  luns: Record<string, Rates>;
}
export interface GatewayRow {
  name: string;
  state: 'up' | 'down' | 'degraded';
  reason?: string;
  heartbeat?: number;
  applied_epoch?: number;
  portals: string[];
  sessions: number;
  active_disks: string[];
  draining: boolean;
  flags: Record<string, string | number | boolean>;
}
export interface LunPath {
  target: string;
  disk: string;
  lun_id: number;
  /** The gateway writing it now (lock holder); null for active/active disks or none up. */
  owner: string | null;
  /** The configured (preferred) owner. */
  preferred: string | null;
  paths: Record<string, string>;
}
export interface Alert {
  severity: 'critical' | 'warning';
  kind: string;
  message: string;
}
export interface Overview {
  gateway: string;
  epoch: number;
  counts: { targets: number; disks: number; hosts: number; gateways: number; sessions: number };
  gateways: GatewayRow[];
  luns: LunPath[];
  alerts: Alert[];
}
export interface Auth {
  username: string;
  password: string;
  mutual_username: string;
  mutual_password: string;
}
export interface ClientConf {
  auth: Auth;
  luns: Record<string, { lun_id: number }>;
  group_name: string;
}
export interface TargetConf {
  acl_enabled: boolean;
  auth: Auth;
  controls: Record<string, number | string | boolean>;
  ip_list: string[];
  portals: Record<string, { portal_ip_addresses: string[] }>;
  disks: Record<string, { lun_id: number }>;
  clients: Record<string, ClientConf>;
  groups: Record<string, { members: string[]; disks: Record<string, { lun_id: number }> }>;
}
export interface Config {
  epoch: number;
  disks: Record<string, { pool: string; image: string; owner?: string; backstore: string; controls: Record<string, number> }>;
  gateways: Record<string, unknown>;
  targets: Record<string, TargetConf>;
  discovery_auth?: Auth;
}
export type Limit = { min: number; max: number; type: 'int' } | { type: 'bool' } | { values: Array<string | number>; type: 'enum' };
export interface Settings {
  backstores: string[];
  default_backstore: string;
  target_default_controls: Record<string, number | boolean | string>;
  target_controls_limits: Record<string, Limit>;
  disk_default_controls: Record<string, Record<string, number>>;
  disk_controls_limits: Record<string, Record<string, Limit>>;
}
export interface DiskRow {
  id: string;
  pool: string;
  image: string;
  snapshot: string | null;
  backstore: string;
  wwn: string;
  size: number | null;
  /** Bytes allocated in the image (null: a snapshot disk, or unreadable). */
  used: number | null;
  parent: string | null;
  snapshots: Array<{ name: string; size: number; protected: boolean; children: number; created: string }>;
  targets: Array<{ target: string; lun_id: number }>;
  owner: string | null;
  controls: Record<string, number>;
  status: Record<string, unknown>;
}
export interface SessionRow {
  gateway: string;
  target: string;
  initiator: string;
  alias: string;
  isid: string;
  tsih: number;
  target_portal_group: number;
  login_time: number;
  commands: number;
  data_in_bytes: number;
  data_out_bytes: number;
  errors: number;
  parameters: Record<string, string | number | boolean>;
  auth: string;
  luns: Array<{ disk: string; lun_id: number | null }>;
  portals: string[];
  /** Absent while the connection is going away. */
  connection?: { cid: number; ip_address: string; initiator: string; portal: string; header_digest: string; data_digest: string };
}
