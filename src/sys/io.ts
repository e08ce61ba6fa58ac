/**
 * Positional whole-range I/O on file descriptors, with callbacks underneath: one libuv
 * request per system call and no extra promise per retry, because this is the data path.
 */
import * as fs from 'node:fs';
import { preadNowait } from './native';

const RESOLVED = Promise.resolve();

/**
 * pread until `len` bytes are in buf[off..]; bytes past end of file read as zeros. Data in the
 * page cache is copied at once on this thread (no thread-pool round trip); the rest is read
 * asynchronously.
 */
export function preadFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  if (len === 0) return RESOLVED;
  let first = 0;
  try {
    first = Math.max(0, preadNowait(fd, buf, off, len, pos));
  } catch {
    first = 0; // let the asynchronous read report the error
  }
  if (first === len) return RESOLVED;
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      fs.read(fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) reject(err);
        else if (n === 0) {
          buf.fill(0, off + done, off + len);
          resolve();
        } else if (done + n >= len) resolve();
        else step(done + n);
      });
    };
    step(first);
  });
}

/** pwrite all of buf[off, off+len) at pos. */
export function pwriteFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (len === 0) {
      resolve();
      return;
    }
    const step = (done: number): void => {
      fs.write(fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) reject(err);
        else if (done + n >= len) resolve();
        else step(done + n);
      });
    };
    step(0);
  });
}

export function fdatasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
