/**
 * One byte per object, cached in memory and mirrored in a file: the clone copy-up map and the
 * per-snapshot preservation maps. Bits only ever move away from 0 while the file exists, so a
 * cached 0 may be stale (re-read it from disk under the object lock) but a cached non-zero is
 * always true. setDurable() updates memory only after the byte is on stable storage: the fast
 * write path trusts memory.
 */
import * as fs from 'node:fs';
import { StoreError } from './errors';
import { closeFd, ftruncate, openFd } from './fsutil';
import { fdatasync } from '../sys/durable';
import { preadFull, pwriteFull } from '../sys/io';

export class ByteMap {
  private constructor(
    readonly file: string,
    private fd: number,
    private buf: Buffer,
  ) {}

  /** Open an existing map of `count` objects (the file may be longer; extra bytes are ignored). */
  static async open(file: string, count: number, writable: boolean): Promise<ByteMap> {
    let fd: number;
    try {
      fd = await openFd(file, writable ? 'r+' : 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError(`${file} is missing`, 'corrupt');
      throw e;
    }
    const size = fs.fstatSync(fd).size;
    if (size < count) {
      await closeFd(fd);
      throw new StoreError(`${file} holds ${size} entries, expected ${count}`, 'corrupt');
    }
    const buf = Buffer.alloc(count);
    await preadFull(fd, buf, 0, count, 0);
    return new ByteMap(file, fd, buf);
  }

  get count(): number {
    return this.buf.length;
  }

  get(n: number): number {
    return n < this.buf.length ? this.buf[n] : 0;
  }

  /** Cached bytes [first, last] (clipped), copied. */
  slice(first: number, last: number): Buffer {
    return Buffer.from(this.buf.subarray(Math.min(first, this.buf.length), Math.min(last + 1, this.buf.length)));
  }

  /** Re-read [first, last] from the file into the cache. */
  async refresh(first = 0, last = this.buf.length - 1): Promise<void> {
    const a = Math.min(first, this.buf.length);
    const b = Math.min(last + 1, this.buf.length);
    if (b > a) await preadFull(this.fd, this.buf, a, b - a, a);
  }

  /** Read [first, last] from the file without touching the cache. */
  async readDisk(first: number, last: number): Promise<Buffer> {
    const a = Math.min(first, this.buf.length);
    const b = Math.min(last + 1, this.buf.length);
    const out = Buffer.alloc(Math.max(0, b - a));
    if (b > a) await preadFull(this.fd, out, 0, b - a, a);
    return out;
  }

  /** Set entries durably (one fdatasync for all), then in memory. */
  async setDurable(entries: readonly number[], value: number): Promise<void> {
    if (entries.length === 0) return;
    const one = Buffer.from([value]);
    for (const n of entries) {
      if (n >= this.buf.length) throw new StoreError(`${this.file}: object ${n} beyond ${this.buf.length}`, 'io');
      await pwriteFull(this.fd, one, 0, 1, n);
    }
    await fdatasync(this.fd);
    for (const n of entries) this.buf[n] = value;
  }

  /** Change the number of entries (new entries are 0), durably. */
  async resize(count: number): Promise<void> {
    await ftruncate(this.fd, count);
    await fdatasync(this.fd);
    const nb = Buffer.alloc(count);
    this.buf.copy(nb, 0, 0, Math.min(count, this.buf.length));
    this.buf = nb;
  }

  /** Grow the cache to `count` entries after someone else grew the file. */
  async adopt(count: number): Promise<void> {
    if (count !== this.buf.length) {
      const nb = Buffer.alloc(count);
      this.buf.copy(nb, 0, 0, Math.min(count, this.buf.length));
      this.buf = nb;
    }
    await this.refresh();
  }

  async close(): Promise<void> {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      await closeFd(fd);
    }
  }
}
