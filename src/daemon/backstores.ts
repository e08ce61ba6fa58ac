/**
 * Opens the block device behind a configured disk, for the access state this gateway has on
 * it. One place that knows every backstore kind; the SCSI layer only sees BlockDevice.
 *
 * Only the owner writes: an image is opened read-write with the store's exclusive lock (a
 * second gateway cannot open it for writing), a file disk with an exclusive flock beside it.
 * A standby path gets a StandbyDevice over a read-only view (size only, no data access).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice, BlockDeviceError } from '../block/block-device';
import { FileBackstore, probeFileCapabilities } from '../block/file-backstore';
import { NullBackstore } from '../block/null-backstore';
import { storeRoot } from '../config/paths';
import { DiskConfig, isImageBackstore } from '../config/schema';
import { isActiveActive } from '../ha/active-active';
import { AccessState } from '../ha/ownership';
import { StandbyDevice } from '../ha/standby-device';
import { exportProblem } from '../images/disk-rules';
import type { ImageProvider } from '../images/provider';
import { ImageStore, featureMask } from '../store';
import { exclusiveWriterCapabilities } from '../store/device';
import { FileLock } from '../store/locks';
import type { Logger } from '../util/log';
import type { RbdLocks } from '../ha/rbd-lock';

/** A file disk's device with the lock that keeps other gateways from writing the file. */
class LockedFileDevice {
  static async open(file: string, createSize: number | undefined): Promise<BlockDevice> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    const lock = FileLock.tryAcquire(`${file}.lock`, 'exclusive');
    if (!lock) throw new BlockDeviceError(`${file} is open for writing by another gateway`, 'io');
    try {
      const dev = await FileBackstore.open({ path: file, createSize });
      const close = dev.close.bind(dev);
      dev.close = async () => {
        try {
          await close();
        } finally {
          lock.release();
        }
      };
      return dev;
    } catch (e) {
      lock.release();
      throw e;
    }
  }
}

export class Backstores {
  private store: ImageStore | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly client: string,
    private readonly log: Logger,
    /** Images from another provider than the embedded store (Ceph RBD, when configured). */
    private readonly provider?: ImageProvider,
    /** The RBD exclusive lock of `user:rbd` disks on Ceph (src/ha/rbd-lock.ts). */
    private readonly rbdLocks?: RbdLocks,
  ) {}

  /** The embedded image store of this data dir (opened on first use). */
  async imageStore(): Promise<ImageStore> {
    if (!this.store) {
      this.store = await ImageStore.open(storeRoot(this.dataDir), {
        client: this.client,
        logger: this.log.child({ component: 'store' }),
      });
    }
    return this.store;
  }

  filePath(disk: DiskConfig): string {
    return path.resolve(this.dataDir, disk.path!);
  }

  async open(id: string, disk: DiskConfig, access: AccessState): Promise<BlockDevice> {
    if (isImageBackstore(disk.backstore) && this.provider) {
      const { pool, image } = disk as { pool: string; image: string };
      // rbd on Ceph: every gateway writes the image at once (src/ha/active-active.ts).
      const activeActive = isActiveActive(disk, this.provider.kind);
      const problem = exportProblem(disk.backstore, await this.provider.info(pool, image), { activeActive });
      if (problem) throw new BlockDeviceError(problem, 'unsupported');
      if (disk.snapshot) return this.provider.open(pool, image, { snapshot: disk.snapshot });
      if (access === 'active') return this.provider.open(pool, image, activeActive ? { activeActive } : {});
      return new StandbyDevice(id, await this.provider.open(pool, image, { readOnly: true }));
    }
    if (isImageBackstore(disk.backstore)) {
      const store = await this.imageStore();
      const spec = `${disk.pool}/${disk.image}`;
      const info = await store.imageInfo(spec);
      const problem = exportProblem(disk.backstore, { pool: info.pool, image: info.name, featureMask: featureMask(info.features), stripeUnit: info.stripeUnit, stripeCount: info.stripeCount });
      if (problem) throw new BlockDeviceError(problem, 'unsupported');
      // A snapshot is read-only: every gateway may serve it.
      if (disk.snapshot) return store.openImage(spec, { snapshot: disk.snapshot });
      if (access === 'active') return store.openImage(spec);
      // Same host, same page cache: the read-only view sees every write the owner acknowledged.
      return new StandbyDevice(id, await store.openImage(spec, { readOnly: true }), true);
    }
    switch (disk.backstore) {
      case 'file': {
        const file = this.filePath(disk);
        if (access === 'active') return LockedFileDevice.open(file, disk.size);
        const size = await fs.promises.stat(file).then((s) => s.size, () => disk.size ?? 0);
        return new StandbyDevice(id, size);
      }
      case 'null':
        this.log.warn({ disk: id, size: disk.size }, 'null backstore: reads return zeros and writes are discarded');
        return new NullBackstore({ size: disk.size!, name: `null:${disk.wwn}` });
    }
    throw new BlockDeviceError(`disk ${id}: unknown backstore ${String(disk.backstore)}`, 'io');
  }

  /**
   * The parts of a disk whose owner changes at run time (src/ha): its lock key, a view for
   * size and capabilities, and how to open it read-write. Undefined for disks every gateway
   * serves alike (snapshots, null).
   */
  async managedParts(id: string, disk: DiskConfig): Promise<{ key: string; view: BlockDevice; openRw: () => Promise<BlockDevice>; viewReads: boolean } | undefined> {
    if (isImageBackstore(disk.backstore)) {
      if (disk.snapshot) return undefined;
      // On Ceph `user:rbd` is active/passive under RBD's exclusive lock (fenced by blocklisting);
      // `rbd` is active/active, out of the lock.
      if (this.provider) {
        if (disk.backstore !== 'user:rbd' || !this.rbdLocks) return undefined;
        return this.rbdLocks.managedParts(id, disk.backstore, disk.pool, disk.image, this.provider);
      }
      const store = await this.imageStore();
      const spec = `${disk.pool}/${disk.image}`;
      const reader = await store.openImage(spec, { readOnly: true });
      return {
        key: `image:${spec}`,
        // Same host, same page cache: the read-only view sees every write the owner acknowledged.
        view: new StandbyDevice(id, reader, true, exclusiveWriterCapabilities(reader.capabilities)),
        openRw: () => store.openImage(spec),
        viewReads: true,
      };
    }
    if (disk.backstore === 'file') {
      const file = this.filePath(disk);
      const size = await fs.promises.stat(file).then((s) => s.size, () => disk.size ?? 0);
      const capabilities = await probeFileCapabilities(file).catch(() => undefined);
      return { key: `file:${file}`, view: new StandbyDevice(id, size, false, capabilities), openRw: () => LockedFileDevice.open(file, disk.size), viewReads: false };
    }
    return undefined;
  }

  async close(): Promise<void> {
    await this.store?.close();
    this.store = undefined;
  }
}
