/**
 * The image header (header.json): everything about an image except its data. Validated with
 * zod on every read so a damaged file is reported precisely, never half-used.
 */
import * as fsp from 'node:fs/promises';
import { z } from 'zod';
import { isErrno, StoreError } from './errors';
import { FEATURE_NAMES, FeatureName } from './features';
import { writeFileAtomic } from '../sys/durable';

const uint = z.number().int().nonnegative();

const ChildRefSchema = z.object({ pool: z.string(), imageId: z.string() });
export type ChildRef = z.infer<typeof ChildRefSchema>;

const SnapshotSchema = z.object({
  id: z.number().int().positive(),
  name: z.string().min(1),
  size: uint,
  createTime: z.string(),
  protected: z.boolean(),
  /** Clones: bytes of the parent visible to this snapshot (0 when not a clone). */
  parentOverlap: uint,
  children: z.array(ChildRefSchema),
  /** 'removing': being merged into its predecessor; still read, no longer listed. */
  state: z.enum(['active', 'removing']),
});
export type SnapshotMeta = z.infer<typeof SnapshotSchema>;

const ParentSchema = z.object({
  pool: z.string(),
  imageId: z.string(),
  snapId: z.number().int().positive(),
  /** Bytes of the parent snapshot visible to the clone's head; only ever shrinks. */
  overlap: uint,
});
export type ParentRef = z.infer<typeof ParentSchema>;

const HeaderSchema = z.object({
  magic: z.literal('iscsi-gateway-image'),
  format: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{12,32}$/),
  name: z.string(),
  size: uint,
  order: z.number().int().min(12).max(25),
  stripeUnit: z.number().int().positive(),
  stripeCount: z.number().int().positive(),
  features: z.array(z.enum(FEATURE_NAMES as [FeatureName, ...FeatureName[]])),
  createTime: z.string(),
  modifyTime: z.string(),
  snapSeq: uint,
  snapLimit: uint.nullable(),
  snapshots: z.array(SnapshotSchema),
  parent: ParentSchema.nullable(),
  /** Set while a rollback rewrites the head; a crash leaves it for `check` to report. */
  rollback: z.object({ snapId: z.number().int().positive(), snapName: z.string() }).nullable(),
  metadata: z.record(z.string(), z.string()),
  /** Bumped on every change; watchers compare it. */
  generation: uint,
});
export type ImageHeader = z.infer<typeof HeaderSchema>;

export function parseHeader(text: string, where: string): ImageHeader {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StoreError(`${where}: not valid JSON (${(e as Error).message})`, 'corrupt');
  }
  const r = HeaderSchema.safeParse(json);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new StoreError(`${where}: ${first.path.join('.') || '(root)'}: ${first.message}`, 'corrupt');
  }
  return r.data;
}

export async function readHeader(file: string): Promise<ImageHeader> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw new StoreError(`${file} is missing`, 'corrupt');
    throw e;
  }
  return parseHeader(text, file);
}

export async function writeHeader(file: string, h: ImageHeader): Promise<void> {
  HeaderSchema.parse(h); // never write what we could not read back
  await writeFileAtomic(file, JSON.stringify(h, null, 1) + '\n');
}

export function activeSnapshots(h: ImageHeader): SnapshotMeta[] {
  return h.snapshots.filter((s) => s.state === 'active');
}

export const PoolFileSchema = z.object({
  magic: z.literal('iscsi-gateway-pool'),
  format: z.literal(1),
  name: z.string(),
  id: z.string(),
  createTime: z.string(),
});
export type PoolFile = z.infer<typeof PoolFileSchema>;

const AdvisoryLockSchema = z.object({
  id: z.string(),
  locker: z.string(),
  address: z.string(),
  exclusive: z.boolean(),
  tag: z.string().nullable(),
  since: z.string(),
});
export type AdvisoryLock = z.infer<typeof AdvisoryLockSchema>;
export const AdvisoryLocksSchema = z.array(AdvisoryLockSchema);

export const WatcherSchema = z.object({
  pid: z.number().int(),
  host: z.string(),
  client: z.string(),
  socket: z.string(),
  mode: z.enum(['read', 'write-exclusive', 'write-shared']),
  since: z.string(),
});
export type WatcherInfo = z.infer<typeof WatcherSchema>;
