/**
 * ImageProvider on Ceph RBD pools: what the REST API and the daemon do with images when the
 * settings file names a Ceph cluster. Images made outside the gateway (`rbd create`,
 * `rbd clone`, `rbd import`) are ordinary images here; new ones get ceph-iscsi's features.
 *
 * librbd does the work; this file maps it to the provider's contract (typed ImageErrors,
 * grow-only resize, snapshot protection rules) and opens images as RbdBackstores: read-write
 * with the exclusive lock taken and kept (as tcmu-runner's rbd_lock_acquire, so no other
 * client writes while this gateway owns the LUN), read-only for standby paths and snapshots.
 * `watch` rides on librbd's header update watch (no polling). ceph-client.ts adapts the
 * native binding to the RbdClient interface below.
 */
import type { BlockDevice } from '../block/block-device';
import { RbdBackstore, RbdImageHandle, rbdErrno } from '../block/rbd-backstore';
import { featureMask, featureNames } from '../ceph/features';
import { CEPH_ISCSI_DEFAULT_FEATURES } from './disk-rules';

/** librbd's image-level override (`rbd config image set`) that turns its cache off for every client of the image. */
export const NO_CACHE_METADATA = { key: 'conf_rbd_cache', value: 'false' } as const;
import {
  CreateOptions, ImageDetails, ImageError, ImageErrorKind, ImageProvider, LockState, OpenOptions, SnapshotDetails,
} from './provider';

export interface RbdImageInfo {
  readonly id: string;
  readonly size: number;
  readonly objectSize: number;
  readonly features: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  readonly createTime: string;
  readonly parent: { readonly pool: string; readonly image: string; readonly snapshot: string; readonly overlap: number } | null;
}

export interface RbdSnapshot {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly protected: boolean;
  readonly children: number;
  readonly createTime: string;
}

/** One open librbd image: the data path (RbdImageHandle) and its metadata operations. */
export interface RbdOpenImage extends RbdImageHandle {
  info(): Promise<RbdImageInfo>;
  /** rbd_lock_acquire(EXCLUSIVE): this client keeps the lock until close. */
  lockExclusive(): Promise<void>;
  /** Exclusive-lock owners ("client.4123 <addr>"). */
  lockOwners(): Promise<string[]>;
  /** Watchers of the image header ("client.4123 <addr>"). */
  watchers(): Promise<string[]>;
  /** This process's client address (as in watchers and lock owners). */
  ownAddress(): Promise<string>;
  resize(size: number): Promise<void>;
  snapshotCount(): Promise<number>;
  /** Bytes allocated in the head itself (a clone's parent left out), as rbd du's USED. */
  usedBytes(): Promise<number>;
  snapshots(): Promise<RbdSnapshot[]>;
  snapCreate(name: string): Promise<void>;
  snapRemove(name: string): Promise<void>;
  snapRollback(name: string): Promise<void>;
  snapProtect(name: string): Promise<void>;
  snapUnprotect(name: string): Promise<void>;
  flatten(): Promise<void>;
  /** Image metadata (rbd image-meta); undefined when the key is not set. */
  metadataGet(key: string): Promise<string | undefined>;
  metadataSet(key: string, value: string): Promise<void>;
}

/** The cluster side: pools and image administration (one rados connection per process). */
export interface RbdClient {
  pools(): Promise<string[]>;
  images(pool: string): Promise<string[]>;
  create(pool: string, image: string, size: number, options: { features: readonly string[]; objectSize?: number }): Promise<void>;
  remove(pool: string, image: string): Promise<void>;
  clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string, options: { features: readonly string[]; objectSize?: number }): Promise<void>;
  open(pool: string, image: string, options: { readOnly?: boolean; snapshot?: string }): Promise<RbdOpenImage>;
  /** Shut the connection down (images must be closed first). */
  close(): Promise<void>;
}

const ERRNO_KINDS: Readonly<Record<number, ImageErrorKind>> = {
  2: 'not-found', // ENOENT
  17: 'exists', // EEXIST
  16: 'busy', // EBUSY: watchers, an open image
  39: 'has-snapshots', // ENOTEMPTY
  22: 'invalid-argument', // EINVAL
  30: 'read-only', // EROFS
  95: 'unsupported', // EOPNOTSUPP
  38: 'unsupported', // ENOSYS
  28: 'limit', // ENOSPC
  122: 'limit', // EDQUOT
  1: 'invalid-argument', // EPERM: e.g. unprotect with children
  34: 'invalid-argument', // ERANGE: a name too long
};

/** librbd failure -> ImageError, naming what was asked ("rbd/disk_1@snap"). */
function imageError(e: unknown, what: string, overrides: Partial<Record<number, ImageErrorKind>> = {}): ImageError {
  if (e instanceof ImageError) return e;
  const errno = rbdErrno(e);
  const kind = (errno !== undefined ? overrides[errno] ?? ERRNO_KINDS[errno] : undefined) ?? 'io';
  const reason = (e as Error | undefined)?.message ?? String(e);
  return new ImageError(`${what}: ${reason}`, kind);
}

async function guard<T>(what: string, fn: () => Promise<T>, overrides?: Partial<Record<number, ImageErrorKind>>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw imageError(e, what, overrides);
  }
}

/** RBD's image name rules (no '/', '@', control characters; librbd caps names near 4 KiB). */
function checkName(kind: 'pool' | 'image' | 'snapshot', name: string): void {
  const control = [...name].some((c) => c.charCodeAt(0) < 0x20);
  if (name.length === 0 || name.length > 4096 || control || name.includes('/') || name.includes('@')) {
    throw new ImageError(`invalid ${kind} name '${control ? JSON.stringify(name) : name}'`, 'invalid-name');
  }
}

export interface CephProviderOptions {
  /** Operations inside librbd at once per open image. */
  readonly queueDepth?: number;
  /** For problems that have no caller to throw to (watch callbacks). */
  readonly onError?: (what: string, e: unknown) => void;
}

export class CephImageProvider implements ImageProvider {
  readonly kind = 'ceph';
  /** Teardowns of the running update watches (closed with the provider). */
  private readonly watches = new Set<() => Promise<void>>();

  constructor(
    readonly client: RbdClient,
    private readonly options: CephProviderOptions = {},
  ) {}

  listPools(): Promise<string[]> {
    return guard('list pools', () => this.client.pools());
  }

  async list(pool: string): Promise<string[]> {
    checkName('pool', pool);
    try {
      return (await this.client.images(pool)).sort();
    } catch (e) {
      // A pool that does not exist has no images (as the embedded provider answers).
      if (rbdErrno(e) === 2) return [];
      throw imageError(e, `list images of pool ${pool}`);
    }
  }

  async exists(pool: string, image: string): Promise<boolean> {
    try {
      await this.info(pool, image);
      return true;
    } catch (e) {
      if (e instanceof ImageError && e.kind === 'not-found') return false;
      throw e;
    }
  }

  /** Open, run `fn`, close (metadata operations; read-only unless `write`). */
  private async withImage<T>(pool: string, image: string, what: string, fn: (i: RbdOpenImage) => Promise<T>, write = false): Promise<T> {
    checkName('pool', pool);
    checkName('image', image);
    return guard(what, async () => {
      const i = await this.client.open(pool, image, write ? {} : { readOnly: true });
      try {
        return await fn(i);
      } finally {
        await i.close();
      }
    });
  }

  info(pool: string, image: string): Promise<ImageDetails> {
    return this.withImage(pool, image, `image ${pool}/${image}`, async (i) => details(pool, image, await i.info(), await i.snapshotCount()));
  }

  async create(pool: string, image: string, size: number, options: CreateOptions = {}): Promise<ImageDetails> {
    checkName('pool', pool);
    checkName('image', image);
    if (!Number.isSafeInteger(size) || size <= 0) throw new ImageError(`invalid size ${size} for ${pool}/${image}`, 'invalid-argument');
    const features = options.features ?? CEPH_ISCSI_DEFAULT_FEATURES;
    try {
      featureMask(features);
    } catch (e) {
      throw new ImageError((e as Error).message, 'invalid-argument');
    }
    if (options.objectSize !== undefined) objectOrder(options.objectSize);
    await guard(`create ${pool}/${image}`, () => this.client.create(pool, image, size, { features, ...(options.objectSize !== undefined ? { objectSize: options.objectSize } : {}) }),
      { 17: 'exists', 2: 'not-found' });
    return this.info(pool, image);
  }

  async resize(pool: string, image: string, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size <= 0) throw new ImageError(`invalid size ${size} for ${pool}/${image}`, 'invalid-argument');
    // Opened read-write: librbd hands the resize to the exclusive-lock owner (a gateway serving it).
    await this.withImage(pool, image, `resize ${pool}/${image}`, async (i) => {
      const cur = (await i.info()).size;
      if (size < cur) throw new ImageError(`${pool}/${image}: cannot shrink from ${cur} to ${size} bytes (grow only)`, 'shrink-not-allowed');
      if (size > cur) await i.resize(size);
    }, true);
  }

  async remove(pool: string, image: string): Promise<void> {
    checkName('pool', pool);
    checkName('image', image);
    // ENOTEMPTY: snapshots; EBUSY: watchers (a gateway still has it open) or clones.
    await guard(`remove ${pool}/${image}`, () => this.client.remove(pool, image), { 39: 'has-snapshots', 16: 'busy' });
  }

  listSnapshots(pool: string, image: string): Promise<SnapshotDetails[]> {
    return this.withImage(pool, image, `snapshots of ${pool}/${image}`, async (i) => (await i.snapshots()).map(snap));
  }

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<SnapshotDetails> {
    checkName('snapshot', snapshot);
    return this.withImage(pool, image, `create snapshot ${pool}/${image}@${snapshot}`, async (i) => {
      await i.snapCreate(snapshot);
      const s = (await i.snapshots()).find((x) => x.name === snapshot);
      if (!s) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} vanished after creation`, 'io');
      return snap(s);
    }, true);
  }

  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    checkName('snapshot', snapshot);
    return this.withImage(pool, image, `remove snapshot ${pool}/${image}@${snapshot}`, async (i) => {
      const s = (await i.snapshots()).find((x) => x.name === snapshot);
      if (!s) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} does not exist`, 'not-found');
      if (s.protected) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} is protected`, 'protected');
      await i.snapRemove(snapshot);
    }, true);
  }

  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    checkName('snapshot', snapshot);
    return this.withImage(pool, image, `roll back ${pool}/${image} to ${snapshot}`, (i) => i.snapRollback(snapshot), true);
  }

  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    checkName('snapshot', snapshot);
    return this.withImage(pool, image, `protect ${pool}/${image}@${snapshot}`, async (i) => {
      const s = (await i.snapshots()).find((x) => x.name === snapshot);
      if (!s) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} does not exist`, 'not-found');
      if (s.protected) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} is already protected`, 'protected');
      await i.snapProtect(snapshot);
    }, true);
  }

  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    checkName('snapshot', snapshot);
    return this.withImage(pool, image, `unprotect ${pool}/${image}@${snapshot}`, async (i) => {
      const s = (await i.snapshots()).find((x) => x.name === snapshot);
      if (!s) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} does not exist`, 'not-found');
      if (!s.protected) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} is not protected`, 'not-protected');
      if (s.children > 0) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} has ${s.children} clone(s)`, 'has-children');
      await i.snapUnprotect(snapshot);
    }, true);
  }

  async clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string): Promise<ImageDetails> {
    checkName('snapshot', snapshot);
    checkName('pool', childPool);
    checkName('image', childImage);
    // Clone v2 (the cluster's min compat client is mimic or newer): no protect needed. The
    // child gets the parent's object size and ceph-iscsi's features.
    const parent = await this.info(pool, image);
    const snaps = await this.listSnapshots(pool, image);
    if (!snaps.some((s) => s.name === snapshot)) throw new ImageError(`snapshot ${pool}/${image}@${snapshot} does not exist`, 'not-found');
    await guard(`clone ${pool}/${image}@${snapshot} to ${childPool}/${childImage}`,
      () => this.client.clone(pool, image, snapshot, childPool, childImage, { features: CEPH_ISCSI_DEFAULT_FEATURES, objectSize: parent.objectSize }),
      { 17: 'exists' });
    return this.info(childPool, childImage);
  }

  flatten(pool: string, image: string): Promise<void> {
    return this.withImage(pool, image, `flatten ${pool}/${image}`, async (i) => {
      if ((await i.info()).parent === null) throw new ImageError(`${pool}/${image} is not a clone`, 'invalid-argument');
      await i.flatten();
    }, true);
  }

  async open(pool: string, image: string, options: OpenOptions = {}): Promise<BlockDevice> {
    checkName('pool', pool);
    checkName('image', image);
    if (options.snapshot !== undefined) checkName('snapshot', options.snapshot);
    const readOnly = options.readOnly === true || options.snapshot !== undefined;
    const name = `${pool}/${image}${options.snapshot !== undefined ? `@${options.snapshot}` : ''}`;
    const activeActive = options.activeActive === true && !readOnly;
    // Active/active: librbd's cache would acknowledge a write before the OSDs have it (writearound
    // after the first flush), and a read through another gateway would miss it. The image-level
    // override turns the cache off for every client of the image; it must be in place before
    // the data handle opens (librbd reads it at open).
    if (activeActive) await this.withImage(pool, image, `disable the librbd cache of ${name}`, async (h) => {
      if ((await h.metadataGet(NO_CACHE_METADATA.key)) !== NO_CACHE_METADATA.value) await h.metadataSet(NO_CACHE_METADATA.key, NO_CACHE_METADATA.value);
    }, true);
    const i = await guard(`open ${name}`, () => this.client.open(pool, image, { readOnly, ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}) }));
    try {
      const info = await guard(`open ${name}`, () => i.info());
      // The writer owns the exclusive lock for as long as it serves the LUN (when the image has
      // the feature: an `rbd` backstore image may lack it, then librbd has no lock to take).
      if (!readOnly && !activeActive && (info.features & 4) !== 0) {
        await guard(`lock ${name}`, () => i.lockExclusive(), { 16: 'busy', 30: 'busy', 110: 'busy' });
      }
      return await RbdBackstore.open(i, {
        name, readOnly, activeActive, objectSize: info.objectSize, stripeUnit: info.stripeUnit, stripeCount: info.stripeCount,
        ...(this.options.queueDepth !== undefined ? { queueDepth: this.options.queueDepth } : {}),
        ...(this.options.onError ? { onError: this.options.onError } : {}),
      });
    } catch (e) {
      await i.close().catch(() => undefined);
      throw e;
    }
  }

  lockState(pool: string, image: string): Promise<LockState> {
    // librbd answers lock owners only on a handle opened for writing (opening does not take
    // the lock). Images without exclusive-lock have no owner.
    return this.withImage(pool, image, `lock state of ${pool}/${image}`, async (i) => {
      const info = await i.info();
      const owners = (info.features & 4) !== 0 ? await i.lockOwners() : [];
      // Owners are client addresses, watchers "client.<id> <address>": name the owner by its
      // client id; the other watchers are the other clients (this probe's own watch shares the
      // process's address and is left out with it).
      const watchers = await i.watchers();
      const address = (w: string) => w.slice(w.indexOf(' ') + 1);
      const owner = owners[0] === undefined ? undefined : watchers.find((w) => address(w) === owners[0]) ?? owners[0];
      const self = await i.ownAddress();
      const others = [...new Set(watchers.filter((w) => !owners.includes(address(w)) && address(w) !== self))];
      return { owner, watchers: others };
    }, true);
  }

  usage(pool: string, image: string): Promise<number> {
    return this.withImage(pool, image, `usage of ${pool}/${image}`, (i) => i.usedBytes());
  }

  /**
   * Header updates of the image (resize, snapshots, features, lock owner) through librbd's
   * update watch on a read-only handle: no polling. `intervalMs` is ignored (the embedded
   * provider's polling period).
   */
  watch(pool: string, image: string, listener: (info: ImageDetails) => void, _intervalMs?: number): () => void {
    let stopped = false;
    let stop: (() => Promise<void>) | undefined;
    let handle: RbdOpenImage | undefined;
    const report = (what: string, e: unknown) => this.options.onError?.(what, e);
    const teardown = async () => {
      const s = stop;
      const h = handle;
      stop = undefined;
      handle = undefined;
      this.watches.delete(teardown);
      await s?.().catch((e: unknown) => report(`unwatch ${pool}/${image}`, e));
      await h?.close().catch((e: unknown) => report(`close ${pool}/${image}`, e));
    };
    void (async () => {
      try {
        const h = await this.client.open(pool, image, { readOnly: true });
        handle = h;
        this.watches.add(teardown);
        if (stopped) return void (await teardown());
        const unwatch = await h.watch(() => {
          void (async () => {
            try {
              listener(details(pool, image, await h.info(), await h.snapshotCount()));
            } catch (e) {
              // Removed meanwhile: the caller unsubscribes when it learns of the removal.
              report(`refresh ${pool}/${image} after an update`, e);
            }
          })();
        });
        stop = unwatch;
        if (stopped) await teardown();
      } catch (e) {
        report(`watch ${pool}/${image}`, e);
        await teardown();
      }
    })();
    return () => {
      stopped = true;
      void teardown();
    };
  }

  async close(): Promise<void> {
    for (const teardown of [...this.watches]) await teardown();
    await this.client.close();
  }
}

function details(pool: string, image: string, i: RbdImageInfo, snapshotCount: number): ImageDetails {
  return {
    pool,
    image,
    id: i.id,
    size: i.size,
    objectSize: i.objectSize,
    features: featureNames(i.features),
    featureMask: i.features,
    stripeUnit: i.stripeUnit,
    stripeCount: i.stripeCount,
    snapshotCount,
    parent: i.parent,
    createTime: i.createTime,
  };
}

function snap(s: RbdSnapshot): SnapshotDetails {
  return { id: s.id, name: s.name, size: s.size, protected: s.protected, children: s.children, createTime: s.createTime };
}

/** log2 of an object size (librbd's "order", 12..25). */
function objectOrder(objectSize: number): number {
  const order = Math.log2(objectSize);
  if (!Number.isInteger(order) || order < 12 || order > 25) {
    throw new ImageError(`object size ${objectSize} must be a power of two between 4 KiB and 32 MiB`, 'invalid-argument');
  }
  return order;
}
