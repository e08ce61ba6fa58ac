/**
 * Migration of older gateway.json documents to schema v11. Version 1 is this gateway's own
 * first format (one gateway, `store`/`file` disks, snapshots as "pool/image@snap"); nothing in
 * it is dropped: store disks become `rbd` disks of the image provider, exported snapshots stay
 * read-only disks with the same id, file disks keep their path and size, targets keep their
 * controls, LUN ids, ACL flag, alias and portal group tag.
 */
import { z } from 'zod';
import {
  ClientSchema,
  ConfigError,
  DiskConfig,
  GatewayConfig,
  SCHEMA_VERSION,
  TargetConfig,
  backstoreObjectName,
  emptyAuth,
  parseConfig,
  parseDiskId,
  timestamp,
} from './schema';

const controlValue = z.union([z.number(), z.string(), z.boolean()]);

const V1Disk = z
  .object({
    backstore: z.enum(['file', 'store', 'null']),
    path: z.string().min(1).optional(),
    pool: z.string().min(1).optional(),
    image: z.string().min(1).optional(),
    snapshot: z.string().min(1).optional(),
    size: z.number().int().positive().optional(),
    wwn: z.string().min(1),
    controls: z.record(z.string(), controlValue).default({}),
    created: z.string().optional(),
    updated: z.string().optional(),
  })
  .strict();

const V1Target = z
  .object({
    alias: z.string().max(255).optional(),
    portal_group_tag: z.number().int().min(1).max(65535).default(1),
    acl_enabled: z.boolean().default(false),
    controls: z.record(z.string(), controlValue).default({}),
    disks: z.record(z.string(), z.object({ lun_id: z.number().int().min(0).max(16383) }).strict()).default({}),
    clients: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    created: z.string().optional(),
    updated: z.string().optional(),
  })
  .strict();

const V1Config = z
  .object({
    version: z.literal(1),
    epoch: z.number().int().min(0),
    created: z.string().optional(),
    updated: z.string().optional(),
    disks: z.record(z.string(), V1Disk).default({}),
    targets: z.record(z.string(), V1Target).default({}),
  })
  .strict();

/** The gateway that performs the migration: v1 had exactly one, so it owns everything. */
export interface MigratingGateway {
  readonly name: string;
  /** Its listen addresses ("ip:port"). */
  readonly portals: readonly string[];
}

/** Version of a parsed JSON document (undefined when it has none). */
export function documentVersion(json: unknown): number | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const v = (json as { version?: unknown }).version;
  return typeof v === 'number' ? v : undefined;
}

function hostOf(address: string): string {
  const v6 = /^\[([^\]]+)\]/.exec(address);
  if (v6) return v6[1];
  if ((address.match(/:/g) ?? []).length > 1) return address;
  const i = address.lastIndexOf(':');
  return i >= 0 ? address.slice(0, i) : address;
}

/**
 * Turn any supported document into v11 (returns it unchanged when already v11). `gateway`, when
 * given, becomes the gateway of a v1 document: portal of every target, owner of every disk.
 */
export function migrateDocument(json: unknown, where: string, gateway?: MigratingGateway): GatewayConfig {
  const version = documentVersion(json);
  if (version === SCHEMA_VERSION) return parseConfig(json, where);
  if (version !== 1) throw new ConfigError(`${where}: unsupported configuration version ${String(version)} (this gateway reads 1 and ${SCHEMA_VERSION})`);
  const parsed = V1Config.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`${where}: ${issues}`);
  }
  const v1 = parsed.data;
  const now = timestamp();
  const out: GatewayConfig = {
    version: SCHEMA_VERSION,
    epoch: v1.epoch,
    created: v1.created ?? now,
    updated: v1.updated ?? now,
    discovery_auth: emptyAuth(),
    gateways: {},
    disks: {},
    targets: {},
  };
  const ips = gateway ? [...new Set(gateway.portals.map(hostOf))] : [];
  if (gateway) {
    out.gateways[gateway.name] = { active_luns: 0, portal_ip_addresses: [...gateway.portals], created: now };
  }
  for (const [id, d] of Object.entries(v1.disks)) {
    let disk: DiskConfig;
    if (d.backstore === 'store') {
      if (!d.pool || !d.image) throw new ConfigError(`${where}: disks.${id}: a store disk needs "pool" and "image"`);
      disk = {
        pool: d.pool,
        image: d.image,
        snapshot: d.snapshot,
        size: d.size,
        wwn: d.wwn,
        backstore: 'rbd',
        backstore_object_name: backstoreObjectName(out, d.pool, d.image, d.snapshot),
        controls: d.controls,
        created: d.created ?? now,
        updated: d.updated,
      };
    } else {
      if (d.backstore === 'file' && !d.path) throw new ConfigError(`${where}: disks.${id}: a file disk needs "path"`);
      if (d.backstore === 'null' && !d.size) throw new ConfigError(`${where}: disks.${id}: a null disk needs "size"`);
      const { pool, image } = parseDiskId(id);
      disk = {
        pool,
        image,
        path: d.path,
        size: d.size,
        wwn: d.wwn,
        backstore: d.backstore,
        backstore_object_name: backstoreObjectName(out, pool || 'file', image),
        controls: d.controls,
        created: d.created ?? now,
        updated: d.updated,
      };
    }
    if (gateway) disk.allocating_host = gateway.name;
    out.disks[id] = disk;
  }
  for (const [iqn, t] of Object.entries(v1.targets)) {
    const clients: TargetConfig['clients'] = {};
    for (const [c, body] of Object.entries(t.clients)) {
      // v1 had no LUN masking: a client saw every LUN of its target, and keeps seeing them.
      const client = ClientSchema.safeParse('luns' in body ? body : { ...body, luns: { ...t.disks } });
      if (!client.success) throw new ConfigError(`${where}: targets.${iqn}.clients.${c}: ${client.error.issues[0]?.message ?? 'invalid'}`);
      clients[c] = client.data;
    }
    const target: TargetConfig = {
      alias: t.alias,
      portal_group_tag: t.portal_group_tag,
      acl_enabled: t.acl_enabled,
      auth: emptyAuth(),
      controls: t.controls,
      ip_list: [...ips],
      portals: {},
      disks: t.disks,
      clients,
      groups: {},
      created: t.created ?? now,
      updated: t.updated,
    };
    if (gateway) {
      target.portals[gateway.name] = { portal_ip_addresses: [...ips], inactive_portal_ips: [], gateway_ip_list: [...ips], tpgs: ips.length };
      for (const id of Object.keys(t.disks)) {
        const disk = out.disks[id];
        if (disk && !disk.owner) {
          disk.owner = gateway.name;
          out.gateways[gateway.name].active_luns += 1;
        }
      }
    }
    out.targets[iqn] = target;
  }
  return parseConfig(out, where);
}

/** A version-1 document (tools and tests that still write the old format; migrated on start). */
export type V1Document = z.infer<typeof V1Config>;
export type V1DiskDocument = z.infer<typeof V1Disk>;
export type V1TargetDocument = z.infer<typeof V1Target>;

export function emptyV1Document(): V1Document {
  const now = timestamp();
  return { version: 1, epoch: 0, created: now, updated: now, disks: {}, targets: {} };
}
