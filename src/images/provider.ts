/**
 * ImageProvider: the block images LUNs are made of, whatever keeps them. The REST API creates,
 * resizes, snapshots and removes images through it; the daemon opens them as BlockDevices. The
 * embedded store (embedded.ts, over src/store) is the first implementation; Ceph RBD comes
 * behind the same interface. Names are RBD's: pool, image, snapshot.
 */
import type { BlockDevice } from '../block/block-device';

export type ImageErrorKind =
  | 'not-found'
  | 'exists'
  | 'invalid-name'
  | 'invalid-argument'
  | 'busy'
  | 'protected'
  | 'not-protected'
  | 'has-children'
  | 'has-snapshots'
  | 'shrink-not-allowed'
  | 'read-only'
  | 'limit'
  | 'unsupported'
  | 'io';

/** A typed failure; `message` is for the administrator and names the image, never data. */
export class ImageError extends Error {
  constructor(
    message: string,
    readonly kind: ImageErrorKind,
  ) {
    super(message);
    this.name = 'ImageError';
  }
}

export interface ImageParent {
  readonly pool: string;
  readonly image: string;
  readonly snapshot: string;
  readonly overlap: number;
}

export interface ImageDetails {
  readonly pool: string;
  readonly image: string;
  readonly id: string;
  readonly size: number;
  readonly objectSize: number;
  readonly features: readonly string[];
  /** RBD feature bit mask of `features` (what /api/settings' required/unsupported masks test). */
  readonly featureMask: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  readonly snapshotCount: number;
  readonly parent: ImageParent | null;
  readonly createTime: string;
}

export interface SnapshotDetails {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly protected: boolean;
  readonly children: number;
  readonly createTime: string;
}

export interface LockState {
  /** Who holds the exclusive (writer) lock: "<client> pid <n>", or undefined. */
  readonly owner: string | undefined;
  /** Other processes watching the image (open read-only or shared). */
  readonly watchers: readonly string[];
}

export interface CreateOptions {
  readonly features?: readonly string[];
  readonly objectSize?: number;
}

export interface OpenOptions {
  /** Open this snapshot, read-only. */
  readonly snapshot?: string;
  readonly readOnly?: boolean;
  /**
   * Several gateways write the image at once (src/ha/active-active.ts): no client-side cache,
   * no exclusive lock, COMPARE AND WRITE only where the storage makes it atomic.
   */
  readonly activeActive?: boolean;
}

export interface ImageProvider {
  /** "embedded" or "ceph", for messages and /api/settings. */
  readonly kind: string;
  listPools(): Promise<string[]>;
  list(pool: string): Promise<string[]>;
  exists(pool: string, image: string): Promise<boolean>;
  info(pool: string, image: string): Promise<ImageDetails>;
  create(pool: string, image: string, size: number, options?: CreateOptions): Promise<ImageDetails>;
  /** Grow only, like ceph-iscsi (a smaller size is 'shrink-not-allowed'). */
  resize(pool: string, image: string, size: number): Promise<void>;
  remove(pool: string, image: string): Promise<void>;

  listSnapshots(pool: string, image: string): Promise<SnapshotDetails[]>;
  createSnapshot(pool: string, image: string, snapshot: string): Promise<SnapshotDetails>;
  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  /** A copy-on-write child of a protected snapshot. */
  clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string): Promise<ImageDetails>;
  /** Copy the parent's data into a clone so it no longer depends on the snapshot. */
  flatten(pool: string, image: string): Promise<void>;

  /** The image (read-write with the exclusive lock) or a snapshot (read-only) as a BlockDevice. */
  open(pool: string, image: string, options?: OpenOptions): Promise<BlockDevice>;
  lockState(pool: string, image: string): Promise<LockState>;
  /**
   * Bytes really allocated in the image's head (its own data, not a clone's parent's, not its
   * snapshots'), like the USED column of `rbd du` (which, with fast-diff, rounds to whole objects).
   * Thin images start at 0.
   */
  usage(pool: string, image: string): Promise<number>;
  /**
   * Call `listener` when the image's metadata changes (resize, snapshot, lock owner), polling
   * every `intervalMs`. Returns the unsubscribe function.
   */
  watch(pool: string, image: string, listener: (info: ImageDetails) => void, intervalMs?: number): () => void;
  close(): Promise<void>;
}
