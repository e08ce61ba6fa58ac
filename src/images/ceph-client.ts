/**
 * The Ceph binding's wrappers (src/ceph: RbdAdmin, RbdImage over one connected CephCluster) seen
 * as the RbdClient / RbdOpenImage that CephImageProvider and RbdBackstore use. Failures keep the
 * binding's errno (CephError) so the callers map them to ImageError / BlockDeviceError kinds.
 */
import type { CephCluster } from '../ceph/cluster';
import { isCephError } from '../ceph/errors';
import { RbdAdmin } from '../ceph/rbd-admin';
import type { RbdImage } from '../ceph/rbd-image';
import type { RbdClient, RbdImageInfo, RbdOpenImage, RbdSnapshot } from './ceph';

function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

/**
 * The data path of an open RbdImage as RbdBackstore uses it (RbdImageHandle): straight onto the
 * aio calls, the caller's Buffers. Subclasses say what closing means.
 */
export abstract class RbdImageData {
  constructor(protected readonly image: RbdImage) {}

  async size(): Promise<number> {
    // rbd_stat refreshes a header an update notification marked stale.
    return (await this.image.info()).size;
  }
  async read(offset: number, length: number, into: Buffer): Promise<number> {
    await this.image.read(offset, length, into);
    return length;
  }
  write(offset: number, data: Buffer): Promise<void> {
    return this.image.write(offset, data);
  }
  flush(): Promise<void> {
    return this.image.flush();
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.image.writeZeroes(offset, length);
  }
  writeSame(offset: number, length: number, pattern: Buffer): Promise<void> {
    return this.image.writeSame(offset, length, pattern);
  }
  async compareAndWrite(offset: number, compare: Buffer, data: Buffer): Promise<number> {
    const r = await this.image.compareAndWrite(offset, compare, data);
    return r.matched ? -1 : r.mismatchOffset;
  }
  async allocated(offset: number, length: number): Promise<Array<{ offset: number; length: number }>> {
    // Byte-exact extents of the head (parent data included: it reads as data, not zeros).
    return (await this.image.extents(offset, length)).filter((e) => e.allocated).map((e) => ({ offset: e.offset, length: e.length }));
  }
  watch(listener: () => void): Promise<() => Promise<void>> {
    return this.image.onUpdate(listener);
  }
  abstract close(): Promise<void>;
}

class OpenImage extends RbdImageData implements RbdOpenImage {
  constructor(
    image: RbdImage,
    private readonly client: CephRbdClient,
  ) {
    super(image);
  }

  close(): Promise<void> {
    return this.image.close();
  }

  // ---- metadata ----

  async usedBytes(): Promise<number> {
    // rbd_diff_iterate2 from the beginning of time over the head (fast with fast-diff).
    const size = (await this.image.info()).size;
    if (size === 0) return 0;
    const extents = await this.image.extents(0, size, { includeParent: false });
    return extents.reduce((n, e) => (e.allocated ? n + e.length : n), 0);
  }

  async info(): Promise<RbdImageInfo> {
    const i = await this.image.info();
    return {
      id: i.id,
      size: i.size,
      objectSize: i.objectSize,
      features: i.features,
      stripeUnit: i.stripeUnit,
      stripeCount: i.stripeCount,
      createTime: isoTime(i.createTimestamp),
      parent: i.parent ? { pool: i.parent.pool, image: i.parent.image, snapshot: i.parent.snapshot, overlap: i.parent.overlap } : null,
    };
  }
  lockExclusive(): Promise<void> {
    return this.image.lockAcquire();
  }
  async lockOwners(): Promise<string[]> {
    return (await this.image.lockOwners()).owners;
  }
  async watchers(): Promise<string[]> {
    return (await this.image.watchers()).map((w) => `client.${w.id} ${w.address}`);
  }
  async ownAddress(): Promise<string> {
    return this.client.cluster.address();
  }
  resize(size: number): Promise<void> {
    return this.image.resize(size);
  }
  async snapshotCount(): Promise<number> {
    return (await this.image.snapList()).length;
  }
  async snapshots(): Promise<RbdSnapshot[]> {
    const out: RbdSnapshot[] = [];
    for (const s of await this.image.snapList()) {
      const children = (await this.client.admin.children(this.image.pool, this.image.image, s.name)).filter((c) => !c.trash).length;
      out.push({ id: s.id, name: s.name, size: s.size, protected: s.protected, children, createTime: isoTime(s.timestamp) });
    }
    return out;
  }
  snapCreate(name: string): Promise<void> {
    return this.image.snapCreate(name);
  }
  snapRemove(name: string): Promise<void> {
    return this.image.snapRemove(name);
  }
  snapRollback(name: string): Promise<void> {
    return this.image.snapRollback(name);
  }
  snapProtect(name: string): Promise<void> {
    return this.image.snapProtect(name);
  }
  snapUnprotect(name: string): Promise<void> {
    return this.image.snapUnprotect(name);
  }
  flatten(): Promise<void> {
    return this.image.flatten();
  }
  async metadataGet(key: string): Promise<string | undefined> {
    try {
      return await this.image.metadataGet(key);
    } catch (e) {
      if (isCephError(e, 'ENOENT')) return undefined;
      throw e;
    }
  }
  metadataSet(key: string, value: string): Promise<void> {
    return this.image.metadataSet(key, value);
  }
}

export class CephRbdClient implements RbdClient {
  readonly admin: RbdAdmin;

  /** `ownsCluster`: close() shuts the connection down (false when it is shared with the RADOS config store). */
  constructor(readonly cluster: CephCluster, private readonly ownsCluster = true) {
    this.admin = new RbdAdmin(cluster);
  }

  pools(): Promise<string[]> {
    return this.cluster.poolList();
  }

  async images(pool: string): Promise<string[]> {
    return (await this.admin.list(pool)).map((s) => s.name);
  }

  create(pool: string, image: string, size: number, options: { features: readonly string[]; objectSize?: number }): Promise<void> {
    return this.admin.create(pool, image, size, options);
  }

  remove(pool: string, image: string): Promise<void> {
    return this.admin.remove(pool, image);
  }

  clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string, options: { features: readonly string[]; objectSize?: number }): Promise<void> {
    return this.admin.clone(pool, image, snapshot, childPool, childImage, options);
  }

  async open(pool: string, image: string, options: { readOnly?: boolean; snapshot?: string }): Promise<RbdOpenImage> {
    const img = await this.admin.open(pool, image, {
      readOnly: options.readOnly === true || options.snapshot !== undefined,
      ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}),
    });
    return new OpenImage(img, this);
  }

  async close(): Promise<void> {
    if (this.ownsCluster) await this.cluster.shutdown();
  }
}
