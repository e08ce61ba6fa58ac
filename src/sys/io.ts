/**
 * Positional whole-range I/O on file descriptors, with callbacks underneath: one libuv
 * request per system call and no extra promise per retry, because this is the data path.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { nativeAvailable, preadNowait, pwriteBatch } from './native';

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

interface QueuedWrite {
  readonly fd: number;
  readonly data: Buffer;
  readonly pos: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** Writes issued during the current event-loop turn, submitted together at its end. */
let queued: QueuedWrite[] = [];
let flushScheduled = false;
/** One job stays small enough that big writes still spread over the pool's threads. */
const BATCH_MAX_WRITES = 64;
const BATCH_MAX_BYTES = 1024 * 1024;
let batching: boolean | undefined;

function errnoError(errno: number): NodeJS.ErrnoException {
  const code = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0] ?? 'EIO';
  return Object.assign(new Error(`${code}: pwrite failed (errno ${errno})`), { errno: -errno, code, syscall: 'pwrite' });
}

function submit(batch: QueuedWrite[]): void {
  pwriteBatch(
    batch.map((w) => w.fd),
    batch.map((w) => w.data),
    batch.map((w) => w.pos),
  ).then(
    (errs) => batch.forEach((w, i) => (errs[i] ? w.reject(errnoError(errs[i])) : w.resolve())),
    (e: Error) => batch.forEach((w) => w.reject(e)),
  );
}

function flushWrites(): void {
  flushScheduled = false;
  const all = queued;
  queued = [];
  let batch: QueuedWrite[] = [];
  let bytes = 0;
  for (const w of all) {
    if (batch.length > 0 && (batch.length >= BATCH_MAX_WRITES || bytes + w.data.length > BATCH_MAX_BYTES)) {
      submit(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(w);
    bytes += w.data.length;
  }
  if (batch.length > 0) submit(batch);
}

/**
 * pwrite all of buf[off, off+len) at pos. Writes issued during one turn of the event loop go
 * to the thread pool as one job (one hand-off instead of one per write), in issue order.
 */
export function pwriteFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  if (len === 0) return RESOLVED;
  if (batching === undefined) batching = nativeAvailable();
  if (batching) {
    return new Promise((resolve, reject) => {
      queued.push({ fd, data: buf.subarray(off, off + len), pos, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushWrites);
      }
    });
  }
  return new Promise((resolve, reject) => {
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
