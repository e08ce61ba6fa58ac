/**
 * The object map (feature object-map): one byte per object of the head, 1 = the object may
 * hold data, 0 = it certainly holds none. It lets GET LBA STATUS skip empty objects without a
 * system call. It is advisory, kept only by the exclusive-lock owner, updated in memory before
 * each write and written back lazily; the file header says whether it is CLEAN. An owner marks
 * it dirty on disk before its first write and clean after a final write-back, so after a crash
 * the next owner finds it dirty and rebuilds it from the head file (SEEK_DATA), as RBD
 * rebuilds an object map flagged invalid.
 *
 * File: "IGWOMAP1" | u32le flags (bit 0 CLEAN) | u32le object count | count bytes.
 */
import { dataBitmap } from '../sys/native';
import { isErrno } from './errors';
import { closeFd, ftruncate, openFd } from './fsutil';
import { fdatasync } from '../sys/durable';
import { preadFull, pwriteFull } from '../sys/io';
import { Layout } from './layout';

const MAGIC = Buffer.from('IGWOMAP1');
const HEADER = 16;
const CLEAN = 1;

export const OMAP_NONEXISTENT = 0;
export const OMAP_EXISTS = 1;

export class ObjectMap {
  private dirtyOnDisk = false;
  private dirtyInMemory = false;

  private constructor(
    private fd: number,
    private map: Buffer,
  ) {}

  /** Read the map if it is present, clean and of the right size; undefined otherwise. */
  static async readClean(file: string, count: number): Promise<Buffer | undefined> {
    let fd: number;
    try {
      fd = await openFd(file, 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
    try {
      const h = Buffer.alloc(HEADER);
      await preadFull(fd, h, 0, HEADER, 0);
      if (!h.subarray(0, 8).equals(MAGIC) || (h.readUInt32LE(8) & CLEAN) === 0 || h.readUInt32LE(12) !== count) return undefined;
      const map = Buffer.alloc(count);
      await preadFull(fd, map, 0, count, HEADER);
      return map;
    } finally {
      await closeFd(fd);
    }
  }

  /** Build the map from the head file's allocation. */
  static async scan(headFd: number, layout: Layout, size: number): Promise<Buffer> {
    const count = layout.objectCount(size);
    const map = Buffer.alloc(count);
    if (count === 0) return map;
    if (layout.simple) {
      const bits = await dataBitmap(headFd, layout.objectSize, count);
      bits.copy(map);
      // The last object may extend past the file end; dataBitmap only looked at real bytes.
      return map;
    }
    const units = Math.ceil(size / layout.stripeUnit);
    const bits = await dataBitmap(headFd, layout.stripeUnit, units);
    for (let u = 0; u < units; u++) if (bits[u]) map[layout.objectOf(u * layout.stripeUnit)] = OMAP_EXISTS;
    return map;
  }

  /**
   * Open for an exclusive owner: use the clean map or rebuild it, then mark the file dirty
   * (durably) so that a crash before close() is detected.
   */
  static async openForOwner(file: string, headFd: number, layout: Layout, size: number): Promise<ObjectMap> {
    const count = layout.objectCount(size);
    const map = (await ObjectMap.readClean(file, count)) ?? (await ObjectMap.scan(headFd, layout, size));
    const fd = await openFd(file, 'a+'); // create if missing
    await closeFd(fd);
    const om = new ObjectMap(await openFd(file, 'r+'), map);
    await om.writeAll(false);
    om.dirtyOnDisk = true;
    return om;
  }

  /** A new, empty image: every object is known not to exist. */
  static async createClean(file: string, count: number): Promise<void> {
    const fd = await openFd(file, 'wx');
    try {
      const h = Buffer.alloc(HEADER);
      MAGIC.copy(h, 0);
      h.writeUInt32LE(CLEAN, 8);
      h.writeUInt32LE(count, 12);
      await pwriteFull(fd, h, 0, HEADER, 0);
      await ftruncate(fd, HEADER + count);
      await fdatasync(fd);
    } finally {
      await closeFd(fd);
    }
  }

  /** Mark an on-disk map invalid (a shared writer is about to write without keeping it). */
  static async invalidate(file: string): Promise<void> {
    let fd: number;
    try {
      fd = await openFd(file, 'r+');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw e;
    }
    try {
      const f = Buffer.alloc(4);
      await pwriteFull(fd, f, 0, 4, 8);
      await fdatasync(fd);
    } finally {
      await closeFd(fd);
    }
  }

  get count(): number {
    return this.map.length;
  }

  get(n: number): number {
    return n < this.map.length ? this.map[n] : OMAP_EXISTS;
  }

  markExists(first: number, last: number): void {
    for (let n = first; n <= last && n < this.map.length; n++) {
      if (this.map[n] !== OMAP_EXISTS) {
        this.map[n] = OMAP_EXISTS;
        this.dirtyInMemory = true;
      }
    }
  }

  markExistsList(objects: readonly number[]): void {
    for (const n of objects) {
      if (n < this.map.length && this.map[n] !== OMAP_EXISTS) {
        this.map[n] = OMAP_EXISTS;
        this.dirtyInMemory = true;
      }
    }
  }

  /** Replace the contents (after a rebuild or a resize). */
  replace(map: Buffer): void {
    this.map = map;
    this.dirtyInMemory = true;
  }

  private async writeAll(clean: boolean): Promise<void> {
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h, 0);
    h.writeUInt32LE(0, 8);
    h.writeUInt32LE(this.map.length, 12);
    await pwriteFull(this.fd, this.map, 0, this.map.length, HEADER);
    await pwriteFull(this.fd, h, 0, HEADER, 0);
    await ftruncate(this.fd, HEADER + this.map.length);
    await fdatasync(this.fd);
    if (clean) {
      const f = Buffer.alloc(4);
      f.writeUInt32LE(CLEAN, 0);
      await pwriteFull(this.fd, f, 0, 4, 8);
      await fdatasync(this.fd);
    }
    this.dirtyInMemory = false;
  }

  /** Lazy write-back (the file stays marked dirty). */
  async persist(): Promise<void> {
    if (this.dirtyInMemory) await this.writeAll(false);
  }

  /** Final write-back: the map is complete and marked clean. */
  async close(): Promise<void> {
    if (this.fd < 0) return;
    if (this.dirtyOnDisk || this.dirtyInMemory) await this.writeAll(true);
    await closeFd(this.fd);
    this.fd = -1;
  }
}
