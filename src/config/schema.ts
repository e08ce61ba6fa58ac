/**
 * The gateway configuration document (gateway.json in the data dir). Its shape follows
 * ceph-iscsi's shared config object (reference §3.2: disks keyed "pool/image", targets keyed by
 * IQN with controls, disks -> lun_id, clients) so the management plane can grow into it.
 */
import { z } from 'zod';

const controlValue = z.union([z.number(), z.string(), z.boolean()]);

export const DiskConfigSchema = z
  .object({
    /** "file": a raw (sparse) file; "store": an image of the embedded store. */
    backstore: z.enum(['file', 'store']),
    /** file backstore: path, relative to the data dir unless absolute. */
    path: z.string().min(1).optional(),
    /** store backstore: pool, image, optional snapshot (exported read-only). */
    pool: z.string().min(1).optional(),
    image: z.string().min(1).optional(),
    snapshot: z.string().min(1).optional(),
    /** Size in bytes; a missing file is created sparse with this size. */
    size: z.number().int().positive().optional(),
    /** T10 unit serial number, identical on every gateway. */
    wwn: z.string().uuid(),
    controls: z.record(z.string(), controlValue).default({}),
    created: z.string().optional(),
    updated: z.string().optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.backstore === 'file' && !d.path) ctx.addIssue({ code: 'custom', message: 'a file disk needs "path"' });
    if (d.backstore === 'store' && (!d.pool || !d.image)) {
      ctx.addIssue({ code: 'custom', message: 'a store disk needs "pool" and "image"' });
    }
  });

/** CHAP credentials as ceph-iscsi stores them (§3.2); empty strings mean "not set". */
export const ChapConfigSchema = z
  .object({
    username: z.string().default(''),
    password: z.string().default(''),
    password_encryption_enabled: z.boolean().default(false),
    mutual_username: z.string().default(''),
    mutual_password: z.string().default(''),
    mutual_password_encryption_enabled: z.boolean().default(false),
  })
  .strict();

const lunMapSchema = z.record(z.string(), z.object({ lun_id: z.number().int().min(0).max(16383) }).strict());

export const ClientConfigSchema = z
  .object({
    auth: ChapConfigSchema.optional(),
    /** LUN id of each disk as this initiator sees it. */
    luns: lunMapSchema.optional(),
    group_name: z.string().optional(),
    created: z.string().optional(),
    updated: z.string().optional(),
  })
  .strict();

export const HostGroupConfigSchema = z
  .object({ members: z.array(z.string()).default([]), disks: lunMapSchema.default({}) })
  .strict();

export const TargetConfigSchema = z
  .object({
    alias: z.string().max(255).optional(),
    portal_group_tag: z.number().int().min(1).max(65535).default(1),
    acl_enabled: z.boolean().default(false),
    controls: z.record(z.string(), controlValue).default({}),
    disks: z.record(z.string(), z.object({ lun_id: z.number().int().min(0).max(16383) }).strict()).default({}),
    /** Target-level CHAP (only without ACLs, ceph-iscsi §1.6). */
    auth: ChapConfigSchema.optional(),
    clients: z.record(z.string(), ClientConfigSchema).default({}),
    groups: z.record(z.string(), HostGroupConfigSchema).optional(),
    created: z.string().optional(),
    updated: z.string().optional(),
  })
  .strict();

export const GatewayConfigSchema = z
  .object({
    version: z.literal(1),
    epoch: z.number().int().min(0),
    created: z.string().optional(),
    updated: z.string().optional(),
    /** Fabric-wide discovery CHAP. */
    discovery_auth: ChapConfigSchema.optional(),
    disks: z.record(z.string(), DiskConfigSchema).default({}),
    targets: z.record(z.string(), TargetConfigSchema).default({}),
  })
  .strict();

export type DiskConfig = z.infer<typeof DiskConfigSchema>;
export type TargetConfig = z.infer<typeof TargetConfigSchema>;
export type ChapConfig = z.infer<typeof ChapConfigSchema>;
export type ClientConfig = z.infer<typeof ClientConfigSchema>;
export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

export function emptyConfig(): GatewayConfig {
  const now = timestamp();
  return { version: 1, epoch: 0, created: now, updated: now, disks: {}, targets: {} };
}

/** UTC "YYYY/MM/DD HH:MM:SS", as ceph-iscsi writes timestamps. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/-/g, '/');
}
