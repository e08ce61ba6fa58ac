/**
 * Where things live on disk (docs/store-format.md describes the format). Every data file is a
 * sparse file addressed by image offset.
 *
 *   <root>/store.json
 *   <root>/run/<pid>-<rand>.sock            notification socket of a process with images open
 *   <root>/pools/<pool>/pool.json
 *   <root>/pools/<pool>/pool.lock           flock: pool-level metadata operations
 *   <root>/pools/<pool>/names/<image>       symlink -> <image id>
 *   <root>/pools/<pool>/trash/<id>/         image being removed
 *   <root>/pools/<pool>/images/<id>/
 *       header.json                         image metadata, replaced atomically
 *       head                                current data (size = image size)
 *       head.cmap                           clones: 1 byte per object, 1 = copied up (owned)
 *       head.omap                           object map (advisory): 16-byte header + 1 byte/object
 *       snap-<snapid>.data                  objects preserved for snapshot <snapid>
 *       snap-<snapid>.pmap                  1 byte per object: 0 look newer, 1 preserved here, 2 parent
 *       locks.json                          advisory locks (rbd lock add)
 *       meta.lock                           flock: image metadata operations
 *       exclusive.lock                      flock: EX = exclusive writer, SH = shared writers
 *       objects.lock                        OFD byte-range locks: byte N = object N (COW, copy-up)
 *       watchers/<token>.json               one per process with the image open (flock held)
 */
import * as path from 'node:path';

export const STORE_FILE = 'store.json';
export const STORE_MAGIC = 'iscsi-gateway-store';
export const FORMAT = 1;

export class PoolPaths {
  constructor(readonly root: string, readonly pool: string) {}
  get dir(): string {
    return path.join(this.root, 'pools', this.pool);
  }
  get poolFile(): string {
    return path.join(this.dir, 'pool.json');
  }
  get lockFile(): string {
    return path.join(this.dir, 'pool.lock');
  }
  get namesDir(): string {
    return path.join(this.dir, 'names');
  }
  get imagesDir(): string {
    return path.join(this.dir, 'images');
  }
  get trashDir(): string {
    return path.join(this.dir, 'trash');
  }
  nameLink(name: string): string {
    return path.join(this.namesDir, name);
  }
  image(id: string): ImagePaths {
    return new ImagePaths(path.join(this.imagesDir, id));
  }
}

export class ImagePaths {
  constructor(readonly dir: string) {}
  get header(): string {
    return path.join(this.dir, 'header.json');
  }
  get head(): string {
    return path.join(this.dir, 'head');
  }
  get cmap(): string {
    return path.join(this.dir, 'head.cmap');
  }
  get omap(): string {
    return path.join(this.dir, 'head.omap');
  }
  snapData(id: number): string {
    return path.join(this.dir, `snap-${id}.data`);
  }
  snapMap(id: number): string {
    return path.join(this.dir, `snap-${id}.pmap`);
  }
  get locks(): string {
    return path.join(this.dir, 'locks.json');
  }
  get metaLock(): string {
    return path.join(this.dir, 'meta.lock');
  }
  get exclusiveLock(): string {
    return path.join(this.dir, 'exclusive.lock');
  }
  get objectsLock(): string {
    return path.join(this.dir, 'objects.lock');
  }
  /** Write-ahead record of an atomic write in progress (exclusive writer only). */
  get atomicJournal(): string {
    return path.join(this.dir, 'atomic.journal');
  }
  get watchersDir(): string {
    return path.join(this.dir, 'watchers');
  }
}

/** Per-snapshot object states (snap-<id>.pmap). */
export const PMAP_NONE = 0; // not preserved here: look at the next newer snapshot, then the head
export const PMAP_DATA = 1; // preserved in snap-<id>.data
export const PMAP_PARENT = 2; // the clone did not own the object then: read the parent (at the snapshot's overlap)

/** Clone copy-up map (head.cmap). */
export const CMAP_PARENT = 0;
export const CMAP_OWNED = 1;
