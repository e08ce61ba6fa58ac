/**
 * Backstore on a sparse local file (or a block device node). Plain pread/pwrite through
 * node:fs's callback API (cheapest path into libuv's thread pool), fdatasync for flush/FUA.
 */
import * as fs from 'node:fs';
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, WriteOptions } from './block-device';

export interface FileBackstoreOptions {
  readonly path: string;
  /** Create the file with this size (bytes) when it does not exist. */
  readonly createSize?: number;
  readonly readOnly?: boolean;
}

function readAt(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeAt(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export class FileBackstore implements BlockDevice {
  readonly name: string;
  readonly readOnly: boolean;
  readonly capabilities: BlockDeviceCapabilities = {
    discard: false,
    discardZeroes: false,
    mapStatus: false,
    atomicWriteBytes: 0,
  };
  private sizeBytes: number;
  private closed = false;
  private readonly resizeListeners = new Set<(n: number) => void>();

  private constructor(private readonly fd: number, options: FileBackstoreOptions, size: number) {
    this.name = options.path;
    this.readOnly = options.readOnly ?? false;
    this.sizeBytes = size;
  }

  static async open(options: FileBackstoreOptions): Promise<FileBackstore> {
    const exists = fs.existsSync(options.path);
    if (!exists && options.createSize === undefined) {
      throw new BlockDeviceError(`backing file ${options.path} does not exist`, 'io');
    }
    const flags = options.readOnly ? 'r' : exists ? 'r+' : 'w+';
    const fd = fs.openSync(options.path, flags, 0o600);
    try {
      if (!exists && options.createSize !== undefined) fs.ftruncateSync(fd, options.createSize);
      const size = fs.fstatSync(fd).size;
      return new FileBackstore(fd, options, size);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  size(): number {
    return this.sizeBytes;
  }

  private check(offset: number, length: number, write: boolean): void {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (write && this.readOnly) throw new BlockDeviceError(`${this.name} is read-only`, 'read-only');
    if (offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new BlockDeviceError(`range ${offset}+${length} outside ${this.name} (${this.sizeBytes} bytes)`, 'out-of-range');
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.check(offset, length, false);
    const buf = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = await readAt(this.fd, buf, done, length - done, offset + done);
      if (n === 0) {
        // A file shrunk behind our back reads as zeros rather than stale memory.
        buf.fill(0, done, length);
        break;
      }
      done += n;
    }
    return buf;
  }

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
    let done = 0;
    while (done < data.length) {
      done += await writeAt(this.fd, data, done, data.length - done, offset + done);
    }
    if (options?.fua) await fdatasync(this.fd);
  }

  async flush(): Promise<void> {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (!this.readOnly) await fdatasync(this.fd);
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
    throw new BlockDeviceError('discard is not supported by this backstore', 'io');
  }

  async writeSame(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void> {
    this.check(offset, length, true);
    // Expand the pattern into a chunk of up to 1 MiB and write it repeatedly.
    const reps = Math.max(1, Math.floor(Math.min(length, 1 << 20) / pattern.length));
    const chunk = Buffer.allocUnsafe(reps * pattern.length);
    for (let i = 0; i < reps; i++) pattern.copy(chunk, i * pattern.length);
    let done = 0;
    while (done < length) {
      const n = Math.min(chunk.length, length - done);
      await this.write(offset + done, n === chunk.length ? chunk : chunk.subarray(0, n));
      done += n;
    }
    if (options?.fua) await fdatasync(this.fd);
  }

  async mapStatus(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, false);
    return [{ offset, length, state: 'mapped' }];
  }

  onResize(listener: (newSize: number) => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.readOnly) await fdatasync(this.fd);
    fs.closeSync(this.fd);
  }
}
