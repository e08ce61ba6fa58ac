/**
 * The shared configuration document (gateway.json in the data dir; later the gateway.conf RADOS
 * object). Its JSON shape is ceph-iscsi's schema v11 (reference §3.2) so that every tool that
 * reads ceph-iscsi's config object can read ours. zod checks the structure; the exact
 * administrator-facing rules and messages (§1.5) live in validation.ts (the API's), and the
 * cross-reference rules every committed document must satisfy live in checkConfig() below.
 *
 * Additions beyond ceph-iscsi, all optional so a v11 document from ceph-iscsi parses:
 *   disks.<id>.backstore   'user:rbd' | 'rbd' (an image of the image provider), 'file' (a file
 *                          at `path`) or 'null' (no storage: reads zeros, writes discarded; `size`)
 *   disks.<id>.snapshot    a snapshot exported read-only; the disk id is "pool/image@snap"
 *   disks.<id>.path/size   file and null backstores
 *   gateways.<name>.portal_ip_addresses
 *                          the addresses this gateway listens on even when it is no target's
 *                          portal yet, "ip" or "ip:port" (port 3260 unless set; lets several
 *                          gateways share one host in tests)
 *   targets.<iqn>.alias / portal_group_tag
 *   targets.<iqn>.portals.<gw>.tpg_id / port_ids
 *                          ALUA target port group of the gateway and the relative target port
 *                          (= TPGT) of each of its portal IPs, identical on every gateway
 */
import { z } from 'zod';

export const SCHEMA_VERSION = 11;
/** The gateway's own limit (ceph-iscsi stops at 256). */
export const MAX_DISKS = 1024;
export const DEFAULT_PORTAL_PORT = 3260;

const controlValue = z.union([z.number(), z.string(), z.boolean()]);
const controls = z.record(z.string(), controlValue);
const stamp = z.string();

/** CHAP credentials as ceph-iscsi stores them (empty strings when unset). */
export const AuthSchema = z
  .object({
    username: z.string().default(''),
    password: z.string().default(''),
    password_encryption_enabled: z.boolean().default(false),
    mutual_username: z.string().default(''),
    mutual_password: z.string().default(''),
    mutual_password_encryption_enabled: z.boolean().default(false),
  })
  .strict();

export const BACKSTORES = ['user:rbd', 'rbd', 'file', 'null'] as const;
export type Backstore = (typeof BACKSTORES)[number];
/** Backstores whose storage is an image of the image provider. */
export function isImageBackstore(b: Backstore): b is 'user:rbd' | 'rbd' {
  return b === 'user:rbd' || b === 'rbd';
}

export const DiskSchema = z
  .object({
    pool: z.string(),
    image: z.string(),
    pool_id: z.number().int().optional(),
    /** A snapshot of the image, exported read-only (disk id "pool/image@snap"). */
    snapshot: z.string().min(1).optional(),
    /** T10 unit serial number (uuid), identical on every gateway. */
    wwn: z.string().min(1),
    backstore: z.enum(BACKSTORES),
    /** ceph-iscsi's LIO storage-object name ("<pool>.<image>[.N]"). */
    backstore_object_name: z.string().min(1),
    /** file backstore: the file, relative to the data dir unless absolute. */
    path: z.string().min(1).optional(),
    /** null backstore: capacity; file backstore: size a missing file is created with. */
    size: z.number().int().positive().optional(),
    controls: controls.default({}),
    /** Gateway that created/registered it. */
    allocating_host: z.string().optional(),
    /** Gateway that opens the image read-write (ALUA active/optimized); set while mapped. */
    owner: z.string().optional(),
    /**
     * The initiator whose I/O at a non-owner port made `owner` the owner (implicit ALUA
     * transition, src/ha/access-state.ts), in the document of `epoch`: its paths are not sent
     * ASYMMETRIC ACCESS STATE CHANGED for that change.
     */
    alua_cause: z.object({ initiator: z.string(), owner: z.string(), epoch: z.number().int().min(0) }).strict().optional(),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const LunRefSchema = z.object({ lun_id: z.number().int().min(0).max(16383) }).strict();
const lunMap = z.record(z.string(), LunRefSchema);

export const ClientSchema = z
  .object({
    auth: AuthSchema.default(AuthSchema.parse({})),
    /** LUNs this initiator sees (LUN masking), by disk id, with the LUN id it sees. */
    luns: lunMap.default({}),
    group_name: z.string().default(''),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const GroupSchema = z
  .object({
    members: z.array(z.string()).default([]),
    disks: lunMap.default({}),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const PortalSchema = z
  .object({
    portal_ip_addresses: z.array(z.string()).default([]),
    inactive_portal_ips: z.array(z.string()).default([]),
    gateway_ip_list: z.array(z.string()).default([]),
    tpgs: z.number().int().min(0).default(0),
    /** ALUA target port group of this gateway in this target (src/ha/access-state.ts; assigned once, stable). */
    tpg_id: z.number().int().min(1).max(65535).optional(),
    /** Per portal IP: its relative target port identifier, also its iSCSI TPGT (assigned once, stable). */
    port_ids: z.record(z.string(), z.number().int().min(1).max(65535)).optional(),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const TargetSchema = z
  .object({
    alias: z.string().max(255).optional(),
    portal_group_tag: z.number().int().min(1).max(65535).optional(),
    acl_enabled: z.boolean().default(true),
    auth: AuthSchema.default(AuthSchema.parse({})),
    controls: controls.default({}),
    /** Ordered list of every portal IP of the target (TPG numbering). */
    ip_list: z.array(z.string()).default([]),
    /** Per gateway name: its portal of this target. */
    portals: z.record(z.string(), PortalSchema).default({}),
    disks: lunMap.default({}),
    clients: z.record(z.string(), ClientSchema).default({}),
    groups: z.record(z.string(), GroupSchema).default({}),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const GatewaySchema = z
  .object({
    active_luns: z.number().int().min(0).default(0),
    /**
     * Addresses this gateway listens on besides its target portals, "ip" or "ip:port" /
     * "[v6]:port" (port 3260 unless set). A target portal IP of this gateway listed here with
     * a port is served on that port (several gateways on one host, tests).
     */
    portal_ip_addresses: z.array(z.string()).optional(),
    created: stamp.optional(),
    updated: stamp.optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    version: z.literal(SCHEMA_VERSION),
    epoch: z.number().int().min(0),
    created: stamp.optional(),
    updated: stamp.optional(),
    discovery_auth: AuthSchema.default(AuthSchema.parse({})),
    gateways: z.record(z.string(), GatewaySchema).default({}),
    disks: z.record(z.string(), DiskSchema).default({}),
    targets: z.record(z.string(), TargetSchema).default({}),
  })
  .strict();

export type AuthConfig = z.infer<typeof AuthSchema>;
export type DiskConfig = z.infer<typeof DiskSchema>;
export type LunRef = z.infer<typeof LunRefSchema>;
export type ClientConfig = z.infer<typeof ClientSchema>;
export type GroupConfig = z.infer<typeof GroupSchema>;
export type PortalConfig = z.infer<typeof PortalSchema>;
export type TargetConfig = z.infer<typeof TargetSchema>;
export type GatewayEntry = z.infer<typeof GatewaySchema>;
export type GatewayConfig = z.infer<typeof ConfigSchema>;
/** Alias: the whole document. */
export type Config = GatewayConfig;

export function emptyAuth(): AuthConfig {
  return AuthSchema.parse({});
}

export function emptyConfig(): GatewayConfig {
  const now = timestamp();
  return { version: SCHEMA_VERSION, epoch: 0, created: now, updated: now, discovery_auth: emptyAuth(), gateways: {}, disks: {}, targets: {} };
}

/** UTC "YYYY/MM/DD HH:MM:SS", as ceph-iscsi writes timestamps. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/-/g, '/');
}

/** "pool/image" or "pool/image@snap" for a disk. */
export function diskId(pool: string, image: string, snapshot?: string): string {
  return snapshot ? `${pool}/${image}@${snapshot}` : `${pool}/${image}`;
}

/** Split a disk id into pool, image and snapshot. */
export function parseDiskId(id: string): { pool: string; image: string; snapshot?: string } {
  const at = id.indexOf('@');
  const head = at >= 0 ? id.slice(0, at) : id;
  const snapshot = at >= 0 ? id.slice(at + 1) : undefined;
  const slash = head.indexOf('/');
  if (slash < 0) return { pool: '', image: head, snapshot };
  return { pool: head.slice(0, slash), image: head.slice(slash + 1), snapshot };
}

/** ceph-iscsi's backstore_object_name: "<pool>.<image>", de-duplicated with ".N". */
export function backstoreObjectName(config: GatewayConfig, pool: string, image: string, snapshot?: string): string {
  const base = snapshot ? `${pool}.${image}.${snapshot}` : `${pool}.${image}`;
  const taken = new Set(Object.values(config.disks).map((d) => d.backstore_object_name));
  if (!taken.has(base)) return base;
  for (let n = 1; ; n++) if (!taken.has(`${base}.${n}`)) return `${base}.${n}`;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Structure check; throws ConfigError naming every problem. */
export function parseConfig(json: unknown, where: string): GatewayConfig {
  const parsed = ConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`${where}: ${issues}`);
  }
  return parsed.data;
}

/**
 * Rules every committed document satisfies, whoever wrote it (API, CLI, migration): references
 * resolve, LUN ids and WWNs are unique, the disk limit holds. Returns the problems (empty = ok).
 */
export function checkConfig(c: GatewayConfig): string[] {
  const problems: string[] = [];
  const ids = Object.keys(c.disks);
  if (ids.length > MAX_DISKS) problems.push(`too many disks: ${ids.length} (the limit is ${MAX_DISKS})`);
  const wwns = new Map<string, string>();
  for (const [id, d] of Object.entries(c.disks)) {
    const other = wwns.get(d.wwn);
    if (other) problems.push(`disk ${id}: wwn ${d.wwn} is already used by ${other}`);
    wwns.set(d.wwn, id);
    if (d.backstore === 'file' && !d.path) problems.push(`disk ${id}: a file disk needs "path"`);
    if (d.backstore === 'null' && !d.size) problems.push(`disk ${id}: a null disk needs "size"`);
    if (isImageBackstore(d.backstore) && (!d.pool || !d.image)) problems.push(`disk ${id}: an image disk needs "pool" and "image"`);
    if (d.owner && !c.gateways[d.owner]) problems.push(`disk ${id}: owner ${d.owner} is not a defined gateway`);
  }
  for (const [iqn, t] of Object.entries(c.targets)) {
    const luns = new Map<number, string>();
    for (const [id, { lun_id }] of Object.entries(t.disks)) {
      if (!c.disks[id]) problems.push(`target ${iqn}: maps unknown disk ${id}`);
      const other = luns.get(lun_id);
      if (other !== undefined) problems.push(`target ${iqn}: LUN ${lun_id} is used by ${other} and ${id}`);
      luns.set(lun_id, id);
    }
    for (const gw of Object.keys(t.portals)) {
      if (!c.gateways[gw]) problems.push(`target ${iqn}: portal of unknown gateway ${gw}`);
    }
    for (const [iqnC, client] of Object.entries(t.clients)) {
      for (const id of Object.keys(client.luns)) {
        if (!t.disks[id]) problems.push(`target ${iqn} client ${iqnC}: LUN ${id} is not mapped to the target`);
      }
      if (client.group_name && !t.groups[client.group_name]) problems.push(`target ${iqn} client ${iqnC}: unknown group ${client.group_name}`);
    }
    for (const [name, g] of Object.entries(t.groups)) {
      for (const id of Object.keys(g.disks)) {
        if (!t.disks[id]) problems.push(`target ${iqn} group ${name}: disk ${id} is not mapped to the target`);
      }
    }
  }
  return problems;
}

/** Disk ids a disk's LUNs appear under in a target (for owner and session checks). */
export function targetsMapping(c: GatewayConfig, id: string): string[] {
  return Object.entries(c.targets)
    .filter(([, t]) => t.disks[id] !== undefined)
    .map(([iqn]) => iqn);
}
