/**
 * The generic guard every backstore gets (the SCSI layer wraps each LU's BlockDevice in one):
 *
 *  - Bounded time: an operation that has not completed after `timeoutMs` (the LU's
 *    cmd_time_out, as LIO/tcmu) fails with BlockDeviceError('timeout'); one whose AbortSignal
 *    fires (ABORT TASK, LOGICAL UNIT RESET, nexus loss) fails with 'aborted' at once. The
 *    caller stops waiting either way, so a backstore that never answers pins no range lock,
 *    no COMPARE AND WRITE, no reservation and no task.
 *  - Orphans: an operation given up on may still be running inside the backstore (a pwrite
 *    stuck in a frozen file system, a librados op). It is remembered until it settles. A later
 *    write, discard or WRITE SAME overlapping an orphaned one waits for it first (within its
 *    own time), so stale data can never land on top of newer data. Errors of abandoned
 *    operations carry `abandoned: true`: the backstore may still use their buffers, so the
 *    transport must not recycle them. While too many are orphaned, new operations fail at
 *    once instead of piling up behind a dead backstore.
 *  - Write-back errors, errseq style: every failed flush (and every write-back failure of a
 *    FUA write) advances a sequence. Each observer (an I_T nexus) remembers the sequence it
 *    has seen; its next SYNCHRONIZE CACHE fails if the sequence moved since, even when the
 *    backstore's own flush succeeds (Linux reports an fdatasync error once per open file,
 *    so the second caller would otherwise get GOOD after data was lost).
 *  - Errno errors become typed BlockDeviceErrors (ENOSPC -> no-space, EIO -> io).
 */
import {
  BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, IoOptions, WriteOptions, WriteSameOptions, toBlockDeviceError,
} from './block-device';

/** LIO/tcmu's cmd_time_out default. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Orphaned operations tolerated before new ones fail fast (each may hold a data buffer). */
const MAX_ORPHANS = 256;

export interface GuardOptions {
  /** Longest an operation may take, in ms (>= 1). */
  readonly timeoutMs?: number;
  /** Told about every operation given up on (for the log). */
  readonly onAbandon?: (op: string, reason: 'timeout' | 'aborted') => void;
}

/** Who asks for SYNCHRONIZE CACHE: the write-back error sequence it has already been told. */
export interface WriteBackObserver {
  seen: number;
}

/** An operation that was given up on but may still be running in the backstore. */
interface Orphan {
  readonly start: number;
  readonly end: number;
  readonly write: boolean;
  readonly settled: Promise<void>;
}

interface InFlight {
  readonly op: string;
  readonly deadline: number;
  readonly start: number;
  readonly end: number;
  readonly write: boolean;
  /** A flush, or a FUA write: its failure loses data written earlier. */
  readonly flushes: boolean;
  done: boolean;
  readonly fail: (reason: 'timeout' | 'aborted') => void;
}

export function isAbandoned(e: unknown): boolean {
  return e instanceof BlockDeviceError && (e as AbandonedError).abandoned === true;
}

class AbandonedError extends BlockDeviceError {
  readonly abandoned = true;
}

export class GuardedDevice implements BlockDevice {
  readonly timeoutMs: number;
  /** Sweep interval: an operation fails between timeoutMs - tick and timeoutMs. */
  private readonly tick: number;
  private readonly inflight = new Set<InFlight>();
  private readonly orphans = new Set<Orphan>();
  private timer: NodeJS.Timeout | undefined;
  private writeBackSeq = 0;
  private readonly onAbandon?: GuardOptions['onAbandon'];
  /** The inner device's ORWRITE offload, guarded; absent when the inner device has none. */
  readonly orWrite?: (offset: number, data: Buffer, options?: WriteOptions) => Promise<void>;

  constructor(readonly inner: BlockDevice, options: GuardOptions = {}) {
    const t = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(t) || t < 1) throw new RangeError(`invalid timeout ${t} ms`);
    this.timeoutMs = t;
    this.tick = Math.min(250, Math.max(10, Math.floor(t / 50)));
    this.onAbandon = options.onAbandon;
    const orWrite = inner.orWrite?.bind(inner);
    if (orWrite) {
      this.orWrite = (offset, data, o) => this.run('orwrite', offset, data.length, true, o?.signal, () => orWrite(offset, data, o), o?.fua === true);
    }
  }

  get name(): string {
    return this.inner.name;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  get capabilities(): BlockDeviceCapabilities {
    return this.inner.capabilities;
  }

  size(): number {
    return this.inner.size();
  }

  onResize(listener: (newSize: number) => void): () => void {
    return this.inner.onResize(listener);
  }

  /** Operations given up on that the backstore has not finished yet. */
  get orphanCount(): number {
    return this.orphans.size;
  }

  /**
   * Resolves once every orphaned operation has settled, or after `ms` (whichever is first):
   * before the owner closes the backstore, so that no late operation meets a closed (or
   * reused) file descriptor. Returns whether all settled.
   */
  async drain(ms: number): Promise<boolean> {
    if (this.orphans.size === 0 && this.inflight.size === 0) return true;
    const until = Date.now() + ms;
    // New orphans may appear while in-flight operations time out: poll until none is left.
    while (this.orphans.size > 0 || this.inflight.size > 0) {
      const left = until - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.orphans].map((o) => o.settled)),
        new Promise((resolve) => (timer = setTimeout(resolve, Math.min(50, left)))),
      ]);
      clearTimeout(timer);
    }
    return true;
  }

  /** Current write-back error sequence (a new observer starts here). */
  get writeBackSequence(): number {
    return this.writeBackSeq;
  }

  read(offset: number, length: number, into?: Buffer, options?: IoOptions): Promise<Buffer> {
    return this.run('read', offset, length, false, options?.signal, () => this.inner.read(offset, length, into, options));
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.run('write', offset, data.length, true, options?.signal, () => this.inner.write(offset, data, options), options?.fua === true);
  }

  discard(offset: number, length: number, options?: IoOptions): Promise<void> {
    return this.run('discard', offset, length, true, options?.signal, () => this.inner.discard(offset, length, options));
  }

  writeSame(offset: number, length: number, pattern: Buffer, options?: WriteSameOptions): Promise<void> {
    return this.run('write same', offset, length, true, options?.signal,
      () => this.inner.writeSame(offset, length, pattern, options), options?.fua === true);
  }

  /** The backstore's COMPARE AND WRITE offload, when it has one ('unsupported' otherwise). */
  compareAndWrite(offset: number, compare: Buffer, data: Buffer, options?: WriteOptions): Promise<number> {
    const inner = this.inner;
    if (!inner.compareAndWrite) return Promise.reject(new BlockDeviceError(`${this.name} has no compare and write offload`, 'unsupported'));
    return this.run('compare and write', offset, data.length, true, options?.signal,
      () => inner.compareAndWrite!(offset, compare, data, options), options?.fua === true);
  }

  mapStatus(offset: number, length: number, options?: IoOptions): Promise<Extent[]> {
    return this.run('map status', offset, length, false, options?.signal, () => this.inner.mapStatus(offset, length, options));
  }

  /** Flush without an observer (internal callers: SANITIZE, START STOP UNIT). */
  flush(options?: IoOptions): Promise<void> {
    return this.run('flush', 0, 0, false, options?.signal, () => this.inner.flush(options));
  }

  /**
   * SYNCHRONIZE CACHE for one observer: fails when this flush fails, and also when a
   * write-back failure happened since the observer last heard of one (errseq semantics:
   * every observer learns of every failure once).
   */
  async flushFor(observer: WriteBackObserver, options?: IoOptions): Promise<void> {
    await this.flush(options).catch((e: unknown) => {
      if (writeBackFailure(e)) observer.seen = this.writeBackSeq;
      throw e;
    });
    if (observer.seen !== this.writeBackSeq) {
      observer.seen = this.writeBackSeq;
      throw new BlockDeviceError(`${this.name}: data written earlier was lost before it became durable (a flush failed)`, 'write-back');
    }
  }

  /** Note a write-back failure observed outside flushFor (an IMMED flush). */
  private writeBackFailed(): void {
    this.writeBackSeq++;
  }

  close(): Promise<void> {
    this.stopTimer();
    return this.inner.close();
  }

  // ---------------------------------------------------------------------------------------

  private run<T>(
    op: string, offset: number, length: number, write: boolean, signal: AbortSignal | undefined,
    exec: () => Promise<T>, fua = false,
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(new BlockDeviceError(`${op} on ${this.name} aborted`, 'aborted'));
    if (this.orphans.size >= MAX_ORPHANS) {
      return Promise.reject(new BlockDeviceError(
        `${this.name}: ${this.orphans.size} earlier operations never completed; the backstore is not answering`, 'timeout'));
    }
    const end = offset + length;
    const fence = write ? this.fenceFor(offset, end) : undefined;
    return new Promise<T>((resolve, reject) => {
      let started: Promise<T> | undefined;
      const rec: InFlight = {
        op, deadline: Date.now() + Math.max(1, this.timeoutMs - this.tick), start: offset, end, write, flushes: op === 'flush' || fua, done: false,
        fail: (reason) => {
          if (rec.done) return;
          finish();
          this.abandon(rec, started, reason);
          const message = reason === 'timeout'
            ? `${op} on ${this.name} did not complete within ${this.timeoutMs} ms`
            : `${op} on ${this.name} aborted`;
          reject(new AbandonedError(message, reason));
        },
      };
      const onAbort = () => rec.fail('aborted');
      const finish = () => {
        rec.done = true;
        this.inflight.delete(rec);
        signal?.removeEventListener('abort', onAbort);
      };
      this.inflight.add(rec);
      this.startTimer();
      signal?.addEventListener('abort', onAbort, { once: true });
      const begin = (): Promise<T> => {
        // Given up on while waiting behind an orphan: never submitted.
        if (rec.done) return Promise.reject(new BlockDeviceError(`${op} on ${this.name} was not started`, 'aborted'));
        started = exec();
        return started;
      };
      const p = fence ? fence.then(begin) : begin();
      p.then(
        (v) => {
          if (rec.done) return;
          finish();
          resolve(v);
        },
        (e: unknown) => {
          if (rec.done) return;
          finish();
          // Anything but a typed or errno error is a bug in the backstore: let it through
          // (the SCSI layer reports it as an internal target failure).
          if (!(e instanceof BlockDeviceError) && typeof (e as NodeJS.ErrnoException | undefined)?.code !== 'string') {
            reject(e);
            return;
          }
          let err = toBlockDeviceError(e, this.name, op);
          if (rec.flushes && writeBackFailure(err)) this.writeBackFailed();
          if (err.direction === undefined) err = new BlockDeviceError(err.message, err.kind, write || rec.flushes ? 'write' : 'read');
          reject(err);
        },
      );
    });
  }

  /** Orphaned writes overlapping [start, end): a later write waits for them. */
  private fenceFor(start: number, end: number): Promise<void> | undefined {
    let waits: Promise<void>[] | undefined;
    for (const o of this.orphans) {
      if (o.write && o.start < end && start < o.end) (waits ??= []).push(o.settled);
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  private abandon(rec: InFlight, started: Promise<unknown> | undefined, reason: 'timeout' | 'aborted'): void {
    this.onAbandon?.(rec.op, reason);
    // Not yet submitted (still behind a fence): nothing runs in the backstore for it.
    if (!started) return;
    const orphan: Orphan = {
      start: rec.start, end: rec.end, write: rec.write,
      settled: started.then(
        () => undefined,
        (e: unknown) => {
          // A flush or FUA write that fails after we stopped waiting still lost data.
          if (rec.flushes && writeBackFailure(toBlockDeviceError(e, this.name, rec.op))) this.writeBackFailed();
        },
      ).finally(() => this.orphans.delete(orphan)),
    };
    this.orphans.add(orphan);
  }

  /** One sweep timer per device while anything is in flight (no timer per operation). */
  private startTimer(): void {
    if (this.timer) return;
    // Referenced: an operation in flight is pending work; the timer stops once none is left.
    this.timer = setInterval(() => this.sweep(), this.tick);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    if (this.inflight.size === 0) {
      this.stopTimer();
      return;
    }
    const now = Date.now();
    for (const rec of [...this.inflight]) if (rec.deadline <= now) rec.fail('timeout');
  }
}

/** A failure that says data may be lost (not: we stopped waiting, or the device is closed). */
function writeBackFailure(e: unknown): boolean {
  return e instanceof BlockDeviceError && e.kind !== 'timeout' && e.kind !== 'aborted' && e.kind !== 'closed'
    && e.kind !== 'out-of-range' && e.kind !== 'read-only' && e.kind !== 'unsupported';
}
