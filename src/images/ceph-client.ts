/**
 * The native Ceph binding (src/ceph) seen as the RbdClient / RbdOpenImage that
 * CephImageProvider and RbdBackstore use: one connected cluster per process, one IoCtx per
 * pool (opened on first use, kept), every call asynchronous in the addon. Failures keep the
 * binding's errno (CephError) so the callers map them to ImageError / BlockDeviceError kinds.
 */
import type { CephCluster } from '../ceph/cluster';
import type { NativeImage, NativeIoCtx } from '../ceph/binding';
import { ceph } from '../ceph/errors';
import type { RbdClient, RbdImageInfo, RbdOpenImage, RbdSnapshot } from './ceph';

function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

class OpenImage implements RbdOpenImage {
  constructor(
    private readonly image: NativeImage,
    private readonly client: CephRbdClient,
    private readonly pool: string,
    private readonly imageName: string,
  ) {}

  // ---- data path (RbdImageHandle): straight onto the aio calls, the caller's Buffers ----

  async size(): Promise<number> {
    // After an update notification librbd has refreshed its header: info() re-reads it.
    return (await ceph(() => this.image.info())).size;
  }
  read(offset: number, length: number, into: Buffer): Promise<number> {
    return ceph(() => this.image.read(offset, length, into));
  }
  write(offset: number, data: Buffer): Promise<void> {
    return ceph(() => this.image.write(offset, data, false));
  }
  flush(): Promise<void> {
    return ceph(() => this.image.flush());
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return ceph(() => this.image.writeZeroes(offset, length, false));
  }
  writeSame(offset: number, length: number, pattern: Buffer): Promise<void> {
    return ceph(() => this.image.writeSame(offset, length, pattern, false));
  }
  compareAndWrite(offset: number, compare: Buffer, data: Buffer): Promise<number> {
    return ceph(() => this.image.compareAndWrite(offset, compare, data, false));
  }
  async allocated(offset: number, length: number): Promise<Array<{ offset: number; length: number }>> {
    // Byte-exact extents of the head (parent data included: it reads as data, not zeros).
    const flat = await ceph(() => this.image.diffIterate(null, offset, length, true, false));
    const out: Array<{ offset: number; length: number }> = [];
    for (let k = 0; k + 2 < flat.length; k += 3) {
      if (flat[k + 2] !== 1) continue;
      const prev = out[out.length - 1];
      if (prev && prev.offset + prev.length === flat[k]) prev.length += flat[k + 1];
      else out.push({ offset: flat[k], length: flat[k + 1] });
    }
    return out.sort((a, b) => a.offset - b.offset);
  }
  async watch(listener: () => void): Promise<() => Promise<void>> {
    const handle = await ceph(() => this.image.updateWatch(listener));
    return () => ceph(() => this.image.updateUnwatch(handle));
  }
  close(): Promise<void> {
    return ceph(() => this.image.close());
  }

  // ---- metadata ----

  async info(): Promise<RbdImageInfo> {
    const i = await ceph(() => this.image.info());
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
    return ceph(() => this.image.lockAcquire());
  }
  async lockOwners(): Promise<string[]> {
    return (await ceph(() => this.image.lockGetOwners())).owners;
  }
  async watchers(): Promise<string[]> {
    return (await ceph(() => this.image.watchers())).map((w) => `client.${w.id} ${w.address}`);
  }
  async ownAddress(): Promise<string> {
    return this.client.cluster.address();
  }
  resize(size: number): Promise<void> {
    return ceph(() => this.image.resize(size, false));
  }
  async snapshotCount(): Promise<number> {
    return (await ceph(() => this.image.snapList())).length;
  }
  async snapshots(): Promise<RbdSnapshot[]> {
    const list = await ceph(() => this.image.snapList());
    const out: RbdSnapshot[] = [];
    for (const s of list) {
      out.push({ id: s.id, name: s.name, size: s.size, protected: s.protected, children: await this.client.childCount(this.pool, this.imageName, s.name), createTime: isoTime(s.timestamp) });
    }
    return out;
  }
  snapCreate(name: string): Promise<void> {
    return ceph(() => this.image.snapCreate(name));
  }
  snapRemove(name: string): Promise<void> {
    return ceph(() => this.image.snapRemove(name));
  }
  snapRollback(name: string): Promise<void> {
    return ceph(() => this.image.snapRollback(name));
  }
  snapProtect(name: string): Promise<void> {
    return ceph(() => this.image.snapProtect(name));
  }
  snapUnprotect(name: string): Promise<void> {
    return ceph(() => this.image.snapUnprotect(name));
  }
  flatten(): Promise<void> {
    return ceph(() => this.image.flatten());
  }
}

export class CephRbdClient implements RbdClient {
  private readonly ioctxs = new Map<string, Promise<NativeIoCtx>>();

  /** `ownsCluster`: close() shuts the connection down (false when it is shared with the RADOS config store). */
  constructor(readonly cluster: CephCluster, private readonly ownsCluster = true) {}

  private ioctx(pool: string): Promise<NativeIoCtx> {
    let p = this.ioctxs.get(pool);
    if (!p) {
      p = this.cluster.openIoCtx(pool);
      // A failed open (no such pool) is not kept: the pool may be created later.
      p.catch(() => this.ioctxs.delete(pool));
      this.ioctxs.set(pool, p);
    }
    return p;
  }

  pools(): Promise<string[]> {
    return this.cluster.poolList();
  }

  async images(pool: string): Promise<string[]> {
    return (await ceph(async () => this.cluster.addon.rbdList(await this.ioctx(pool)))).map((s) => s.name);
  }

  async create(pool: string, image: string, size: number, options: { features: number; order?: number }): Promise<void> {
    await ceph(async () => this.cluster.addon.rbdCreate(await this.ioctx(pool), image, size, options));
  }

  async remove(pool: string, image: string): Promise<void> {
    await ceph(async () => this.cluster.addon.rbdRemove(await this.ioctx(pool), image));
  }

  async clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string, options: { features: number; order?: number }): Promise<void> {
    await ceph(async () => this.cluster.addon.rbdClone(await this.ioctx(pool), image, snapshot, await this.ioctx(childPool), childImage, options));
  }

  async open(pool: string, image: string, options: { readOnly?: boolean; snapshot?: string }): Promise<RbdOpenImage> {
    const native = await ceph(async () => this.cluster.addon.rbdOpen(await this.ioctx(pool), image, {
      readOnly: options.readOnly === true || options.snapshot !== undefined,
      ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}),
    }));
    return new OpenImage(native, this, pool, image);
  }

  /** Clones of pool/image@snapshot (children listing needs the image opened at the snapshot). */
  async childCount(pool: string, image: string, snapshot: string): Promise<number> {
    const at = await ceph(async () => this.cluster.addon.rbdOpen(await this.ioctx(pool), image, { readOnly: true, snapshot }));
    try {
      return (await ceph(() => at.listChildren())).filter((c) => !c.trash).length;
    } finally {
      await ceph(() => at.close());
    }
  }

  async close(): Promise<void> {
    const all = [...this.ioctxs.values()];
    this.ioctxs.clear();
    for (const p of all) {
      const io = await p.catch(() => undefined);
      io?.close();
    }
    if (this.ownsCluster) await this.cluster.shutdown();
  }
}
