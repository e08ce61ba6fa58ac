/**
 * The gateway configuration document (gateway.json in the data dir). Its shape follows
 * ceph-iscsi's shared config object (reference §3.2: disks keyed "pool/image", targets keyed by
 * IQN with controls, disks -> lun_id, clients) so the management plane can grow into it.
 */
import { z } from 'zod';

const controlValue = z.union([z.number(), z.string(), z.boolean()]);

export const DiskConfigSchema = z
  .object({
    /**
     * "file": a raw (sparse) file; "store": an image of the embedded store; "null": reads
     * zeros and discards writes (benchmarks, protocol tests; needs "size").
     */
    backstore: z.enum(['file', 'store', 'null']),
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
    if (d.backstore === 'null' && d.size === undefined) ctx.addIssue({ code: 'custom', message: 'a null disk needs "size"' });
  });

export const TargetConfigSchema = z
  .object({
    alias: z.string().max(255).optional(),
    portal_group_tag: z.number().int().min(1).max(65535).default(1),
    acl_enabled: z.boolean().default(false),
    controls: z.record(z.string(), controlValue).default({}),
    disks: z.record(z.string(), z.object({ lun_id: z.number().int().min(0).max(16383) }).strict()).default({}),
    clients: z.record(z.string(), z.object({}).passthrough()).default({}),
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
    disks: z.record(z.string(), DiskConfigSchema).default({}),
    targets: z.record(z.string(), TargetConfigSchema).default({}),
  })
  .strict();

export type DiskConfig = z.infer<typeof DiskConfigSchema>;
export type TargetConfig = z.infer<typeof TargetConfigSchema>;
export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

export function emptyConfig(): GatewayConfig {
  const now = timestamp();
  return { version: 1, epoch: 0, created: now, updated: now, disks: {}, targets: {} };
}

/** UTC "YYYY/MM/DD HH:MM:SS", as ceph-iscsi writes timestamps. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/-/g, '/');
}
