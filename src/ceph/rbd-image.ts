/**
 * One open RBD image over the addon: asynchronous data path (rbd_aio_*), header state, snapshots,
 * clones, metadata, the exclusive lock and update watches. Failures are CephError (errno + code).
 */
import type { CephCluster } from './cluster';
import type { NativeChildInfo, NativeImage, NativeImageInfo, NativeLockOwners, NativeSnapInfo, NativeWatcher } from './binding';
import { CephError, ceph, cephSync } from './errors';
import { featureNames } from './features';

export interface OpenImageOptions {
  /** Open at this snapshot (read-only). */
  readonly snapshot?: string;
  /** No writes, no exclusive lock. */
  readonly readOnly?: boolean;
}

/** A byte range of the image and whether it holds data (GET LBA STATUS: mapped / deallocated). */
export interface ImageExtent {
  readonly offset: number;
  readonly length: number;
  readonly allocated: boolean;
}

/** The most librbd's compare-and-write handles: one sector, not crossing a sector boundary. */
export const CAW_MAX_BYTES = 512;

export type CompareAndWriteResult = { readonly matched: true } | { readonly matched: false; readonly mismatchOffset: number };

export interface ImageInfo extends NativeImageInfo {
  readonly featureNames: string[];
}

export class RbdImage {
  private closed: Promise<void> | undefined;

  private constructor(
    readonly native: NativeImage,
    readonly pool: string,
    readonly image: string,
    readonly snapshot: string | undefined,
  ) {}

  /** Open pool/image (through a pool context of `cluster`, closed again: the image keeps its own). */
  static async open(cluster: CephCluster, pool: string, image: string, options: OpenImageOptions = {}): Promise<RbdImage> {
    const io = await cluster.openIoCtx(pool);
    try {
      const native = await ceph(() => cluster.addon.rbdOpen(io, image, { snapshot: options.snapshot ?? null, readOnly: options.readOnly ?? false }));
      return new RbdImage(native, pool, image, options.snapshot);
    } finally {
      io.close();
    }
  }

  /** "pool/image" or "pool/image@snap". */
  get spec(): string {
    return `${this.pool}/${this.image}${this.snapshot ? `@${this.snapshot}` : ''}`;
  }

  get readOnly(): boolean {
    return this.native.readOnly;
  }

  inFlight(): number {
    return this.native.inFlight();
  }

  /** Size in bytes as librbd last saw it (no I/O; follows resizes seen through the header watch). */
  size(): number {
    return cephSync(() => this.native.size());
  }

  /** Read `length` bytes at `offset` into `into` (or a new Buffer); resolves with the filled slice. */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(length);
    const n = await ceph(() => this.native.read(offset, length, buf));
    if (n < length) buf.fill(0, n, length); // short only at the end of the image
    return buf.length === length ? buf : buf.subarray(0, length);
  }

  write(offset: number, data: Buffer, options: { readonly fua?: boolean } = {}): Promise<void> {
    return ceph(() => this.native.write(offset, data, options.fua ?? false));
  }

  writeSame(offset: number, length: number, pattern: Buffer, options: { readonly fua?: boolean } = {}): Promise<void> {
    return ceph(() => this.native.writeSame(offset, length, pattern, options.fua ?? false));
  }

  discard(offset: number, length: number): Promise<void> {
    return ceph(() => this.native.discard(offset, length));
  }

  /** Zero a range; `thick` keeps it allocated (provisioned). */
  writeZeroes(offset: number, length: number, options: { readonly thick?: boolean } = {}): Promise<void> {
    return ceph(() => this.native.writeZeroes(offset, length, options.thick ?? false));
  }

  /**
   * COMPARE AND WRITE: atomically write `data` if the range equals `compare`. librbd (Pacific)
   * does this within one 512-byte sector only (CAW_MAX_BYTES); a longer or sector-crossing range
   * is refused with EINVAL before anything is sent.
   */
  async compareAndWrite(offset: number, compare: Buffer, data: Buffer, options: { readonly fua?: boolean } = {}): Promise<CompareAndWriteResult> {
    const len = data.length;
    if (len === 0 || Math.floor(offset / CAW_MAX_BYTES) !== Math.floor((offset + len - 1) / CAW_MAX_BYTES)) {
      throw new CephError(
        `rbd_aio_compare_and_write ${this.spec}: librbd compares and writes within one ${CAW_MAX_BYTES}-byte sector only (offset ${offset}, length ${len})`,
        22,
        'EINVAL',
        'rbd_aio_compare_and_write',
      );
    }
    const r = await ceph(() => this.native.compareAndWrite(offset, compare, data, options.fua ?? false));
    return r < 0 ? { matched: true } : { matched: false, mismatchOffset: r };
  }

  flush(): Promise<void> {
    return ceph(() => this.native.flush());
  }

  async info(): Promise<ImageInfo> {
    const i = await ceph(() => this.native.info());
    return { ...i, featureNames: featureNames(i.features) };
  }

  resize(size: number, options: { readonly allowShrink?: boolean } = {}): Promise<void> {
    return ceph(() => this.native.resize(size, options.allowShrink ?? false));
  }

  /** Enable or disable features by mask (rbd_update_features). */
  updateFeatures(mask: number, enabled: boolean): Promise<void> {
    return ceph(() => this.native.updateFeatures(mask, enabled));
  }

  /**
   * Allocation of [offset, offset+length) (rbd_diff_iterate2 from the beginning of time, parent
   * included, fast with the object map): contiguous extents in order, covering the whole range.
   * With `wholeObject` the granularity is the object (cheaper, coarser); `includeParent: false`
   * leaves a clone's parent out (its own data only, as rbd du counts).
   */
  async extents(offset: number, length: number, options: { readonly wholeObject?: boolean; readonly fromSnapshot?: string; readonly includeParent?: boolean } = {}): Promise<ImageExtent[]> {
    const flat = await ceph(() => this.native.diffIterate(options.fromSnapshot ?? null, offset, length, options.includeParent ?? true, options.wholeObject ?? false));
    const out: ImageExtent[] = [];
    let pos = offset;
    const end = offset + length;
    const push = (o: number, l: number, allocated: boolean): void => {
      if (l <= 0) return;
      const last = out[out.length - 1];
      if (last && last.allocated === allocated && last.offset + last.length === o) out[out.length - 1] = { offset: last.offset, length: last.length + l, allocated };
      else out.push({ offset: o, length: l, allocated });
    };
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const o = Math.max(flat[i], offset);
      const e = Math.min(flat[i] + flat[i + 1], end);
      if (e <= o) continue;
      push(pos, o - pos, false);
      push(o, e - o, flat[i + 2] === 1);
      pos = e;
    }
    push(pos, end - pos, false);
    return out;
  }

  snapCreate(name: string): Promise<void> {
    return ceph(() => this.native.snapCreate(name));
  }
  snapRemove(name: string): Promise<void> {
    return ceph(() => this.native.snapRemove(name));
  }
  snapRollback(name: string): Promise<void> {
    return ceph(() => this.native.snapRollback(name));
  }
  snapProtect(name: string): Promise<void> {
    return ceph(() => this.native.snapProtect(name));
  }
  snapUnprotect(name: string): Promise<void> {
    return ceph(() => this.native.snapUnprotect(name));
  }
  snapIsProtected(name: string): Promise<boolean> {
    return ceph(() => this.native.snapIsProtected(name));
  }
  snapList(): Promise<NativeSnapInfo[]> {
    return ceph(() => this.native.snapList());
  }
  /** Copy the parent's data in and detach from it. */
  flatten(): Promise<void> {
    return ceph(() => this.native.flatten());
  }
  /** Children of the snapshot this image is open at. */
  listChildren(): Promise<NativeChildInfo[]> {
    return ceph(() => this.native.listChildren());
  }

  metadataGet(key: string): Promise<string> {
    return ceph(() => this.native.metadataGet(key));
  }
  metadataSet(key: string, value: string): Promise<void> {
    return ceph(() => this.native.metadataSet(key, value));
  }
  metadataRemove(key: string): Promise<void> {
    return ceph(() => this.native.metadataRemove(key));
  }
  metadataList(): Promise<Record<string, string>> {
    return ceph(() => this.native.metadataList());
  }

  /** Take the exclusive lock and keep it (other clients' writes then wait or fail). */
  lockAcquire(): Promise<void> {
    return ceph(() => this.native.lockAcquire());
  }
  lockRelease(): Promise<void> {
    return ceph(() => this.native.lockRelease());
  }
  lockOwners(): Promise<NativeLockOwners> {
    return ceph(() => this.native.lockGetOwners());
  }
  /** Break another client's exclusive lock (blocklisting it); `owner` from lockOwners(). */
  lockBreak(owner: string): Promise<void> {
    return ceph(() => this.native.lockBreak(owner));
  }
  isLockOwner(): Promise<boolean> {
    return ceph(() => this.native.isLockOwner());
  }
  watchers(): Promise<NativeWatcher[]> {
    return ceph(() => this.native.watchers());
  }

  /**
   * Call `listener` (JS thread) after any header change by any client: resize, snapshot,
   * features, lock. Resolves with the function that removes it.
   */
  async onUpdate(listener: () => void): Promise<() => Promise<void>> {
    const handle = await ceph(() => this.native.updateWatch(listener));
    let removed = false;
    return async () => {
      if (removed || this.closed) return;
      removed = true;
      await ceph(() => this.native.updateUnwatch(handle));
    };
  }

  /** Close (waits for in-flight operations, flushes, releases the lock). Idempotent. */
  close(): Promise<void> {
    this.closed ??= ceph(() => this.native.close());
    return this.closed;
  }
}
