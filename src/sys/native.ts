/**
 * Typed wrapper of the N-API addon in native/ (Linux file-system calls node:fs lacks).
 * Slow calls return Promises and run on libuv's thread pool; the lock calls are non-blocking.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** flock(2) operations. */
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_UN = 8;

interface Addon {
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<void>;
  dataExtents(fd: number, offset: number, length: number): Promise<number[]>;
  allocExtents(fd: number, offset: number, length: number): Promise<number[]>;
  dataBitmap(fd: number, unitSize: number, unitCount: number): Promise<Buffer>;
  copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, length: number, sparse: boolean): Promise<number>;
  flock(fd: number, op: number): boolean;
  ofdLock(fd: number, type: number, start: number, length: number): boolean;
  preadNowait(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  pwriteBatch(fds: number[], buffers: Buffer[], positions: number[]): Promise<number[]>;
  pwriteSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  uringAvailable(): boolean;
  uringInit(entries: number, completions: Int32Array, onComplete: (count: number) => void): number;
  uringRead(id: number, fd: number, buffer: Buffer, offset: number, length: number, position: number): boolean;
  uringWrite(id: number, fd: number, buffer: Buffer, offset: number, length: number, position: number): boolean;
  uringFsync(id: number, fd: number, datasync: boolean): boolean;
}

const ADDON_FILE = path.join('native', 'build', 'Release', 'iscsi_gateway_sys.node');
let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  // The addon sits in the package root; this file runs from dist/src/sys or src/sys.
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, ADDON_FILE);
    if (fs.existsSync(candidate)) {
      const mod = { exports: {} as unknown };
      process.dlopen(mod, candidate);
      addon = mod.exports as Addon;
      return addon;
    }
    dir = path.dirname(dir);
  }
  throw new Error(`native addon ${ADDON_FILE} is not built; run \`npm run build:native\` (needs gcc, make, python3)`);
}

/**
 * Read from the page cache without blocking (preadv2 RWF_NOWAIT): the bytes read (possibly
 * short), or -1 when nothing could be read without waiting for the disk.
 */
export function preadNowait(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  return load().preadNowait(fd, buffer, offset, length, position);
}

/**
 * Several whole positional writes in one thread-pool job, in order. Resolves with an errno per
 * write (0 = written completely).
 */
export function pwriteBatch(fds: number[], buffers: Buffer[], positions: number[]): Promise<number[]> {
  return load().pwriteBatch(fds, buffers, positions);
}

/** The whole pwrite on the calling thread (see src/sys/io.ts for when that is right). */
export function pwriteSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  return load().pwriteSync(fd, buffer, offset, length, position);
}

/**
 * io_uring submission (native/src/uring.c): one ring per process, requests identified by a
 * caller-chosen id; completions arrive as (id, result) pairs in `completions`, `count` pairs
 * per call of onComplete. Results are byte counts or -errno.
 */
export interface Uring {
  /** Completion-queue capacity: never more requests in flight. */
  readonly capacity: number;
  /** false: the ring is full (use another path). */
  read(id: number, fd: number, buffer: Buffer, offset: number, length: number, position: number): boolean;
  write(id: number, fd: number, buffer: Buffer, offset: number, length: number, position: number): boolean;
  fsync(id: number, fd: number, datasync: boolean): boolean;
}

/**
 * Set up the ring. Throws when the addon was built without liburing or the kernel refuses
 * io_uring (too old, kernel.io_uring_disabled, a seccomp filter): the caller falls back.
 */
export function uringInit(entries: number, completions: Int32Array, onComplete: (count: number) => void): Uring {
  const a = load();
  if (!a.uringAvailable()) throw Object.assign(new Error('the native addon was built without liburing'), { code: 'ENOSYS' });
  const capacity = a.uringInit(entries, completions, onComplete);
  return { capacity, read: a.uringRead, write: a.uringWrite, fsync: a.uringFsync };
}

/** True when the addon can be loaded (used to give a clear message early). */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** Deallocate [offset, offset+length); the range reads as zeros afterwards. File size unchanged. */
export function punchHole(fd: number, offset: number, length: number): Promise<void> {
  if (length === 0) return Promise.resolve();
  return load().fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Zero [offset, offset+length) leaving it allocated (unwritten extents). File size unchanged. */
export function zeroRange(fd: number, offset: number, length: number): Promise<void> {
  if (length === 0) return Promise.resolve();
  return load().fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Raw fallocate(2). */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return load().fallocate(fd, mode, offset, length);
}

export interface DataExtent {
  readonly offset: number;
  readonly length: number;
}

/** Data extents (SEEK_DATA/SEEK_HOLE) inside [offset, offset+length), merged and in order. */
export async function dataExtents(fd: number, offset: number, length: number): Promise<DataExtent[]> {
  if (length === 0) return [];
  const flat = await load().dataExtents(fd, offset, length);
  const out: DataExtent[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ offset: flat[i], length: flat[i + 1] });
  return out;
}

/**
 * Allocated extents (FIEMAP) inside [offset, offset+length): written data, but also unwritten
 * extents from ZERO_RANGE and delayed allocations, which SEEK_DATA reports as holes. This is
 * what provisioning status (GET LBA STATUS) needs.
 */
export async function allocExtents(fd: number, offset: number, length: number): Promise<DataExtent[]> {
  if (length === 0) return [];
  const flat = await load().allocExtents(fd, offset, length);
  const out: DataExtent[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ offset: flat[i], length: flat[i + 1] });
  return out;
}

/** One byte per unit of `unitSize` bytes from offset 0: 1 when the unit holds any data. */
export function dataBitmap(fd: number, unitSize: number, unitCount: number): Promise<Buffer> {
  return load().dataBitmap(fd, unitSize, unitCount);
}

/**
 * Copy [offIn, offIn+length) of fdIn to offOut in fdOut with copy_file_range(2). With `sparse`,
 * holes in the source become holes in the destination (punched), so thin data stays thin.
 * Resolves with the number of data bytes copied.
 */
export function copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, length: number, sparse = true): Promise<number> {
  if (length === 0) return Promise.resolve(0);
  return load().copyRange(fdIn, offIn, fdOut, offOut, length, sparse);
}

/** Non-blocking flock(2). Returns false when another open file description holds a conflicting lock. */
export function flock(fd: number, op: typeof LOCK_SH | typeof LOCK_EX | typeof LOCK_UN): boolean {
  return load().flock(fd, op);
}

/** Non-blocking open-file-description byte-range lock (F_OFD_SETLK). Returns false on conflict. */
export function ofdLock(fd: number, type: 'read' | 'write' | 'unlock', start: number, length: number): boolean {
  return load().ofdLock(fd, type === 'read' ? 0 : type === 'write' ? 1 : 2, start, length);
}
