/** Small file helpers of the store. Durability primitives are in sys/durable, whole-range positional I/O in sys/io. */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { isErrno } from './errors';

/** Create a file of `size` bytes (sparse), fsynced. Fails if it exists. */
export async function createSparseFile(file: string, size: number): Promise<void> {
  const h = await fsp.open(file, 'wx', 0o644);
  try {
    await h.truncate(size);
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw e;
  }
}

export function ftruncate(fd: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, size, (err) => (err ? reject(err) : resolve())));
}

export function openFd(file: string, flags: string, mode = 0o644): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const ZERO = Buffer.alloc(65536);
export function isZero(buf: Buffer, off = 0, len = buf.length - off): boolean {
  for (let p = off; p < off + len; p += ZERO.length) {
    const n = Math.min(ZERO.length, off + len - p);
    if (buf.compare(ZERO, 0, n, p, p + n) !== 0) return false;
  }
  return true;
}
