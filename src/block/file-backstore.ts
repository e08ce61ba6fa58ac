/**
 * Backstore on a sparse local file (or a block device node). Reads and writes through
 * src/sys/io.ts (io_uring, page-cache fast paths); flush and FUA/write-through writes share
 * fdatasyncs (group commit, SyncGroup).
 * Thin provisioning through the native addon: discard = FALLOC_FL_PUNCH_HOLE, WRITE SAME of
 * zeros = FALLOC_FL_ZERO_RANGE (or a punched hole when deallocation is allowed), allocation
 * status from FIEMAP (falling back to SEEK_DATA/SEEK_HOLE). Atomic writes beyond one page
 * go through a journal next to a regular file (`<file>.atomic-journal`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allocExtents, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, fallocate, nativeAvailable, punchHole, zeroRange } from '../sys/native';
import { fdatasyncFd, preadFull, pwriteFull } from '../sys/io';
import { AtomicJournal, JournalTarget, MAX_JOURNALED_ATOMIC_WRITE } from './atomic-journal';
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, WriteOptions, expandPattern } from './block-device';
import { SyncGroup } from './sync-group';

export interface FileBackstoreOptions {
  readonly path: string;
  /** Create the file with this size (bytes) when it does not exist. */
  readonly createSize?: number;
  readonly readOnly?: boolean;
  /**
   * How the file is made durable (default: fdatasync through the I/O engine). Tests wrap it to
   * observe or fail the real call.
   */
  readonly fdatasync?: (fd: number) => Promise<void>;
}


function isZero(buf: Buffer): boolean {
  // Compare against a shared zero page in page-sized steps (Buffer.compare is a memcmp).
  for (let off = 0; off < buf.length; off += ZERO_PAGE.length) {
    const n = Math.min(ZERO_PAGE.length, buf.length - off);
    if (buf.compare(ZERO_PAGE, 0, n, off, off + n) !== 0) return false;
  }
  return true;
}
const ZERO_PAGE = Buffer.alloc(65536);
/** The smallest page size of the platforms we run on (x86-64, arm64). */
const PAGE_SIZE = 4096;

/** Whether fallocate(PUNCH_HOLE) works on this file: punch one block at EOF (a no-op on data). */
async function probePunch(fd: number, size: number): Promise<boolean> {
  if (!nativeAvailable()) return false;
  try {
    await fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size, 4096);
    return true;
  } catch {
    return false;
  }
}

/** What a FileBackstore on this open file offers (`size`: where the discard probe may punch). */
async function fileCapabilities(fd: number, st: fs.Stats, size: number, readOnly: boolean): Promise<BlockDeviceCapabilities> {
  // A regular file reports real allocation; a block device node has none to report.
  const punch = !readOnly && (await probePunch(fd, size));
  // One pwrite within one page of the page cache is copied under that page's lock and a
  // fatal signal is only noticed between pages: all or nothing, for readers too. Larger
  // atomic writes need the journal (regular, writable files only).
  const journaled = st.isFile() && !readOnly;
  return {
    discard: punch,
    discardZeroes: punch,
    mapStatus: st.isFile() && nativeAvailable(),
    atomicWriteBytes: journaled ? MAX_JOURNALED_ATOMIC_WRITE : PAGE_SIZE,
    atomicWriteAlignment: journaled ? 0 : PAGE_SIZE,
    // LBPPBE: the file system's block (a smaller write is a read-modify-write of it).
    physicalBlockBytes: st.isFile() && st.blksize > 0 ? st.blksize : undefined,
  };
}

/**
 * The capabilities a read-write FileBackstore on `file` will have, without opening it as one
 * (a gateway that does not own the file yet announces what the owner offers). The discard
 * probe punches past the end of the file only.
 */
export async function probeFileCapabilities(file: string): Promise<BlockDeviceCapabilities> {
  if (!fs.existsSync(file)) {
    // The owner creates it (with the disk's size): a regular file in that directory.
    const dir = fs.statSync(path.dirname(file));
    const punch = nativeAvailable();
    return {
      discard: punch, discardZeroes: punch, mapStatus: nativeAvailable(),
      atomicWriteBytes: MAX_JOURNALED_ATOMIC_WRITE, atomicWriteAlignment: 0,
      physicalBlockBytes: dir.blksize > 0 ? dir.blksize : undefined,
    };
  }
  const fd = fs.openSync(file, 'r+');
  try {
    const st = fs.fstatSync(fd);
    return await fileCapabilities(fd, st, st.isBlockDevice() ? blockDeviceSize(fd) : st.size, false);
  } finally {
    fs.closeSync(fd);
  }
}

export class FileBackstore implements BlockDevice {
  readonly name: string;
  readonly readOnly: boolean;
  readonly capabilities: BlockDeviceCapabilities;
  private sizeBytes: number;
  private closed = false;
  private readonly resizeListeners = new Set<(n: number) => void>();
  /** Every fdatasync of the data, shared by concurrent callers. */
  readonly syncs: SyncGroup;

  private constructor(
    private readonly fd: number,
    options: FileBackstoreOptions,
    size: number,
    capabilities: BlockDeviceCapabilities,
  ) {
    this.name = options.path;
    this.readOnly = options.readOnly ?? false;
    this.sizeBytes = size;
    this.capabilities = capabilities;
    const sync = options.fdatasync ?? fdatasyncFd;
    this.syncs = new SyncGroup(options.path, () => sync(fd));
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
      const st = fs.fstatSync(fd);
      const size = st.isBlockDevice() ? blockDeviceSize(fd) : st.size;
      const capabilities = await fileCapabilities(fd, st, size, options.readOnly ?? false);
      const dev = new FileBackstore(fd, options, size, capabilities);
      if (capabilities.atomicWriteBytes === MAX_JOURNALED_ATOMIC_WRITE) dev.journal = await AtomicJournal.open(`${options.path}.atomic-journal`, dev.inPlace);
      return dev;
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

  /** Operations under way: close() waits for them, so the descriptor is never reused under them. */
  private inflight = 0;
  private whenIdle: (() => void) | undefined;

  private begin(): void {
    this.inflight++;
  }

  private end(): void {
    if (--this.inflight === 0 && this.whenIdle) this.whenIdle();
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.check(offset, length, false);
    const buf = into ?? Buffer.allocUnsafe(length);
    this.begin();
    try {
      // Past end of file (a file shrunk behind our back) reads as zeros, not stale memory.
      await preadFull(this.fd, buf, 0, length, offset);
    } catch (e) {
      throw ioError(this.name, 'read', e);
    } finally {
      this.end();
    }
    return buf;
  }

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
    this.begin();
    try {
      if (options?.atomic && this.journal && !withinOnePage(offset, data.length)) {
        await this.journal.write(offset, data, this.inPlace); // durable on return, FUA or not
        return;
      }
      try {
        await pwriteFull(this.fd, data, 0, data.length, offset);
      } catch (e) {
        throw ioError(this.name, 'write', e);
      }
      if (options?.fua) await this.syncs.sync();
    } finally {
      this.end();
    }
  }

  private journal: AtomicJournal | undefined;

  /** How the atomic journal writes in place and makes it durable. */
  private readonly inPlace: JournalTarget = {
    apply: (offset, data) => pwriteFull(this.fd, data, 0, data.length, offset),
    flush: () => this.syncs.sync(),
  };

  async flush(): Promise<void> {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (!this.readOnly) await this.syncs.sync();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
    if (!this.capabilities.discard) throw new BlockDeviceError('discard is not supported by this backstore', 'unsupported');
    if (length === 0) return;
    this.begin();
    try {
      await punchHole(this.fd, offset, length);
    } catch (e) {
      throw ioError(this.name, 'discard', e);
    } finally {
      this.end();
    }
  }

  async writeSame(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void> {
    this.check(offset, length, true);
    if (pattern.length === 0 || length % pattern.length !== 0) {
      throw new BlockDeviceError(`WRITE SAME length ${length} is not a multiple of the pattern (${pattern.length} bytes)`, 'io');
    }
    if (length === 0) return;
    this.begin();
    try {
      await this.fill(offset, length, pattern, options);
    } finally {
      this.end();
    }
  }

  private async fill(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void> {
    if (isZero(pattern) && this.capabilities.discard) {
      try {
        // Zeros: a hole when deallocation is allowed, otherwise allocated zero extents.
        if (options?.deallocate) await punchHole(this.fd, offset, length);
        else await zeroRangeOrWrite(this.fd, offset, length);
      } catch (e) {
        throw ioError(this.name, 'write same', e);
      }
      if (options?.fua) await this.syncs.sync();
      return;
    }
    const chunk = expandPattern(pattern, length);
    let done = 0;
    while (done < length) {
      const n = Math.min(chunk.length, length - done);
      await this.write(offset + done, n === chunk.length ? chunk : chunk.subarray(0, n));
      done += n;
    }
    if (options?.fua) await this.syncs.sync();
  }

  async mapStatus(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, false);
    if (length === 0) return [];
    if (!this.capabilities.mapStatus) return [{ offset, length, state: 'mapped' }];
    let data;
    this.begin();
    try {
      data = await allocExtents(this.fd, offset, length);
    } catch (e) {
      throw ioError(this.name, 'map status', e);
    } finally {
      this.end();
    }
    return extentsFromData(offset, length, data);
  }

  onResize(listener: (newSize: number) => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.whenIdle = resolve));
    try {
      await this.journal?.close();
      if (!this.readOnly) await this.syncs.sync();
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

/** Inside one page of the page cache: a single pwrite is atomic by itself. */
export function withinOnePage(offset: number, length: number): boolean {
  return length === 0 || Math.floor(offset / PAGE_SIZE) === Math.floor((offset + length - 1) / PAGE_SIZE);
}

/** Turn data extents inside [offset, offset+length) into a gap-free mapped/deallocated list. */
export function extentsFromData(offset: number, length: number, data: readonly { offset: number; length: number }[]): Extent[] {
  const out: Extent[] = [];
  let pos = offset;
  const end = offset + length;
  for (const d of data) {
    const s = Math.max(d.offset, pos);
    const e = Math.min(d.offset + d.length, end);
    if (e <= s) continue;
    if (s > pos) out.push({ offset: pos, length: s - pos, state: 'deallocated' });
    out.push({ offset: s, length: e - s, state: 'mapped' });
    pos = e;
  }
  if (pos < end) out.push({ offset: pos, length: end - pos, state: 'deallocated' });
  return out;
}

async function zeroRangeOrWrite(fd: number, offset: number, length: number): Promise<void> {
  try {
    await zeroRange(fd, offset, length);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw e;
    // No ZERO_RANGE (e.g. some file systems): write real zeros, which stay allocated.
    let done = 0;
    while (done < length) {
      const n = Math.min(ZERO_PAGE.length, length - done);
      await pwriteFull(fd, ZERO_PAGE, 0, n, offset + done);
      done += n;
    }
  }
}

function ioError(name: string, what: string, e: unknown): BlockDeviceError {
  if (e instanceof BlockDeviceError) return e;
  const err = e as NodeJS.ErrnoException;
  const kind = err.code === 'ENOSPC' || err.code === 'EDQUOT' ? 'no-space' : err.code === 'EROFS' ? 'read-only' : 'io';
  return new BlockDeviceError(`${what} on ${name} failed: ${err.message}`, kind);
}

/** Size of a block device node (fstat reports 0 for devices). */
function blockDeviceSize(fd: number): number {
  // node:fs has no lseek(SEEK_END); sysfs knows the size in 512-byte sectors.
  try {
    const dev = fs.readlinkSync(`/proc/self/fd/${fd}`);
    const name = dev.replace(/^\/dev\//, '');
    const sectors = Number(fs.readFileSync(`/sys/class/block/${name}/size`, 'utf8').trim());
    return Number.isSafeInteger(sectors) ? sectors * 512 : 0;
  } catch {
    return 0;
  }
}
