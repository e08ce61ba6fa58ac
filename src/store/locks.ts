/**
 * Locks between async operations in one process (KeyedMutex) and between processes
 * (flock on lock files, OFD byte-range locks for objects). The cross-process calls are
 * non-blocking and polled so that no libuv thread ever sleeps in the kernel holding up I/O.
 */
import * as fs from 'node:fs';
import { flock, LOCK_EX, LOCK_SH, LOCK_UN, ofdLock } from '../sys/native';
import { StoreError } from './errors';
import { sleep } from './fsutil';

/** FIFO mutex per key. */
export class KeyedMutex<K> {
  private readonly tails = new Map<K, Promise<void>>();

  async lock(key: K): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }

  isLocked(key: K): boolean {
    return this.tails.has(key);
  }
}

const inProcess = new KeyedMutex<string>();

export interface LockOptions {
  /** Give up after this many milliseconds (default 30 s). 0 = try once. */
  readonly timeoutMs?: number;
  /** Message for the 'busy' error when the lock cannot be had. */
  readonly busyMessage?: () => string;
}

/**
 * An flock(2) on a lock file, serialized in-process first (flock does not order waiters).
 * Released on close or process death: a crash never leaves it held.
 */
export class FileLock {
  private fd = -1;
  private releaseLocal: (() => void) | undefined;

  private constructor(readonly file: string) {}

  static async acquire(file: string, mode: 'shared' | 'exclusive', options: LockOptions = {}): Promise<FileLock> {
    const l = new FileLock(file);
    await l.take(mode, options);
    return l;
  }

  /** Try once; undefined when another holder has a conflicting lock. */
  static tryAcquire(file: string, mode: 'shared' | 'exclusive'): FileLock | undefined {
    const l = new FileLock(file);
    l.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    if (flock(l.fd, mode === 'shared' ? LOCK_SH : LOCK_EX)) return l;
    fs.closeSync(l.fd);
    return undefined;
  }

  private async take(mode: 'shared' | 'exclusive', options: LockOptions): Promise<void> {
    const timeout = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeout;
    if (mode === 'exclusive') this.releaseLocal = await inProcess.lock(this.file);
    try {
      this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      let wait = 1;
      while (!flock(this.fd, mode === 'shared' ? LOCK_SH : LOCK_EX)) {
        if (Date.now() >= deadline) {
          throw new StoreError(options.busyMessage?.() ?? `${this.file} is locked by another process`, 'busy');
        }
        await sleep(wait);
        wait = Math.min(wait * 2, 25);
      }
    } catch (e) {
      this.release();
      throw e;
    }
  }

  release(): void {
    if (this.fd >= 0) {
      try {
        flock(this.fd, LOCK_UN);
      } finally {
        fs.closeSync(this.fd);
        this.fd = -1;
      }
    }
    this.releaseLocal?.();
    this.releaseLocal = undefined;
  }
}

/** Run fn holding an exclusive FileLock. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const l = await FileLock.acquire(file, 'exclusive', options);
  try {
    return await fn();
  } finally {
    l.release();
  }
}

/**
 * Per-object locks for the slow paths (copy-on-write, copy-up, snapshot merge): an in-process
 * mutex per object, then an OFD write lock on byte N of objects.lock so that other processes
 * touching the same image (a flatten in the CLI, a second writer) serialize too.
 */
export class ObjectLocks {
  private readonly local = new KeyedMutex<number>();
  private fd: number;

  constructor(file: string) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  }

  async lock(objectNo: number): Promise<() => void> {
    const releaseLocal = await this.local.lock(objectNo);
    let wait = 1;
    try {
      while (!ofdLock(this.fd, 'write', objectNo, 1)) {
        await sleep(wait);
        wait = Math.min(wait * 2, 10);
      }
    } catch (e) {
      releaseLocal();
      throw e;
    }
    return () => {
      if (this.fd >= 0) ofdLock(this.fd, 'unlock', objectNo, 1);
      releaseLocal();
    };
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
