/**
 * Positional whole-range I/O and fdatasync on file descriptors: the data path of the file
 * backstore, the atomic journal and the image store.
 *
 * Engines, chosen once per process (ISCSI_GATEWAY_IO_ENGINE=uring|threadpool|fs overrides):
 *  - `uring`: io_uring through the native addon. Requests issued during one turn of the
 *    event loop go to the kernel with one system call; completions wake the loop through
 *    the ring's descriptor. No libuv thread-pool hop, no per-request promise in native code.
 *  - `threadpool`: the addon without io_uring (built without liburing, or the kernel
 *    refuses it): the writes of one turn go to libuv's pool as one job; reads and fdatasync
 *    through node:fs.
 *  - `fs`: no addon: node:fs's callback API.
 * Whatever the engine, reads of cached data are copied at once on this thread (preadv2
 * RWF_NOWAIT) and page-aligned writes go into the page cache on this thread while that cannot
 * block (see InlineWrites), because either costs less than any hand-off to another thread.
 *
 * Concurrent writes to overlapping ranges have no defined order (as with pwrite from several
 * threads): callers serialize them (the SCSI layer's range locks, the store's awaits).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Uring, nativeAvailable, preadNowait, pwriteBatch, pwriteSync, uringInit } from './native';

const RESOLVED = Promise.resolve();

export type IoEngine = 'uring' | 'threadpool' | 'fs';

function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0] ?? 'EIO';
  return Object.assign(new Error(`${code}: ${syscall} failed (errno ${errno})`), { errno: -errno, code, syscall });
}

// ---------------------------------------------------------------------------------------------
// io_uring requests

interface RingRequest {
  op: 'read' | 'write' | 'fsync';
  fd: number;
  /** Kept referenced until the completion: the kernel uses its memory until then. */
  buf: Buffer;
  off: number;
  len: number;
  pos: number;
  done: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Completion pairs (id, result) copied per wake-up; more arrive in further calls. */
const COMPLETION_BATCH = 256;
const RING_ENTRIES = 256;
const EMPTY = Buffer.alloc(0);

class RingEngine {
  private readonly slots: Array<RingRequest | undefined> = [];
  private readonly free: number[] = [];
  private readonly completions = new Int32Array(COMPLETION_BATCH * 2);
  private readonly ring: Uring;

  constructor() {
    this.ring = uringInit(RING_ENTRIES, this.completions, (n) => this.complete(n));
  }

  private take(req: RingRequest): number {
    const id = this.free.pop() ?? this.slots.length;
    this.slots[id] = req;
    return id;
  }

  /** Queue `req` (its remaining part); false when the ring is full. */
  private issue(id: number, req: RingRequest): boolean {
    const { fd, buf, off, done, len, pos } = req;
    if (req.op === 'fsync') return this.ring.fsync(id, fd, true);
    if (req.op === 'write') return this.ring.write(id, fd, buf, off + done, len - done, pos + done);
    return this.ring.read(id, fd, buf, off + done, len - done, pos + done);
  }

  /** Submit; false (nothing queued) when the ring is at capacity. */
  submit(req: RingRequest): boolean {
    const id = this.take(req);
    if (this.issue(id, req)) return true;
    this.release(id);
    return false;
  }

  private release(id: number): void {
    this.slots[id] = undefined;
    this.free.push(id);
  }

  private finish(id: number, req: RingRequest, err?: Error): void {
    this.release(id);
    if (err) req.reject(err);
    else req.resolve();
  }

  private complete(count: number): void {
    const c = this.completions;
    for (let i = 0; i < count; i++) {
      const id = c[2 * i];
      const res = c[2 * i + 1];
      const req = this.slots[id];
      if (!req) continue;
      if (res < 0) {
        this.finish(id, req, errnoError(-res, req.op === 'read' ? 'pread' : req.op === 'write' ? 'pwrite' : 'fdatasync'));
        continue;
      }
      if (req.op === 'fsync') {
        this.finish(id, req);
        continue;
      }
      if (res === 0 && req.op === 'read') {
        req.buf.fill(0, req.off + req.done, req.off + req.len); // past end of file: zeros
        req.done = req.len;
      } else if (res === 0) {
        this.finish(id, req, errnoError(os.constants.errno.EIO, 'pwrite'));
        continue;
      } else {
        req.done += res;
      }
      if (req.done >= req.len) {
        this.finish(id, req);
        continue;
      }
      // A short transfer: queue the rest under the same id (or finish it on the slow path).
      if (!this.issue(id, req)) this.finishElsewhere(id, req);
    }
  }

  private finishElsewhere(id: number, req: RingRequest): void {
    const rest = req.op === 'write'
      ? fsWrite(req.fd, req.buf, req.off + req.done, req.len - req.done, req.pos + req.done)
      : fsRead(req.fd, req.buf, req.off + req.done, req.len - req.done, req.pos + req.done);
    rest.then(() => this.finish(id, req), (e: Error) => this.finish(id, req, e));
  }
}

// ---------------------------------------------------------------------------------------------
// engine selection

let engine: IoEngine | undefined;
let ring: RingEngine | undefined;
let ringFailure: string | undefined;

function startRing(): boolean {
  if (ring) return true;
  try {
    ring = new RingEngine();
    return true;
  } catch (e) {
    ringFailure = (e as Error).message;
    return false;
  }
}

function chooseEngine(): IoEngine {
  const wanted = process.env.ISCSI_GATEWAY_IO_ENGINE;
  if (!nativeAvailable()) return 'fs';
  if (wanted === 'fs' || wanted === 'threadpool') return wanted;
  return startRing() ? 'uring' : 'threadpool';
}

/** The engine in use (chosen on first use). */
export function ioEngine(): IoEngine {
  return (engine ??= chooseEngine());
}

/** Why io_uring is not in use, when it was tried and failed (for the start-up log). */
export function ioEngineNote(): string | undefined {
  ioEngine();
  return ringFailure;
}

/**
 * Switch the engine (tests, benchmarks). Requests in flight finish on the engine that took
 * them. Throws when the engine cannot run here.
 */
export function setIoEngine(wanted: IoEngine): void {
  if (wanted !== 'fs' && !nativeAvailable()) throw new Error(`I/O engine ${wanted} needs the native addon`);
  if (wanted === 'uring' && !startRing()) throw new Error(`io_uring is not available: ${ringFailure}`);
  engine = wanted;
}

// ---------------------------------------------------------------------------------------------
// node:fs paths

function fsRead(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
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
    step(0);
  });
}

function fsWrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
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

function ringRequest(op: RingRequest['op'], fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> | undefined {
  if (!ring) return undefined;
  let req: RingRequest | undefined;
  const p = new Promise<void>((resolve, reject) => {
    req = { op, fd, buf, off, len, pos, done: 0, resolve, reject };
  });
  return ring.submit(req!) ? p : undefined;
}

// ---------------------------------------------------------------------------------------------
// reads

/**
 * pread until `len` bytes are in buf[off..]; bytes past end of file read as zeros. Data in the
 * page cache is copied at once on this thread (no round trip); the rest is read asynchronously.
 */
export function preadFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  if (len === 0) return RESOLVED;
  const e = ioEngine();
  let first = 0;
  if (e !== 'fs' && turn.take(len)) {
    try {
      first = Math.max(0, preadNowait(fd, buf, off, len, pos));
    } catch {
      first = 0; // let the asynchronous read report the error
    }
    if (first === len) return RESOLVED;
  }
  if (e === 'uring') {
    const p = ringRequest('read', fd, buf, off + first, len - first, pos + first);
    if (p) return p;
  }
  return fsRead(fd, buf, off + first, len - first, pos + first);
}

// ---------------------------------------------------------------------------------------------
// writes

const PAGE = 4096;

/**
 * Synchronous I/O (page-cache reads and inline writes) done on the event loop within one turn.
 * A caller that awaits one resolved operation after another (a copy loop, a client writing in a
 * loop) would otherwise never yield to the poll phase: sockets, timers and TMFs would starve.
 * Past TURN_BYTES the next operation goes asynchronous, which ends the turn.
 */
class TurnBudget {
  static readonly TURN_BYTES = 4 * 1024 * 1024;
  private used = 0;
  private resetPending = false;
  private readonly reset = (): void => {
    this.used = 0;
    this.resetPending = false;
  };

  take(len: number): boolean {
    if (this.used + len > TurnBudget.TURN_BYTES) return false;
    this.used += len;
    if (!this.resetPending) {
      this.resetPending = true;
      setImmediate(this.reset);
    }
    return true;
  }
}
const turn = new TurnBudget();

/**
 * When a write may go into the page cache on the event loop. A buffered write of whole
 * cached-or-new pages costs a memcpy (~1.4 µs for 4 KiB here), several times less than any
 * hand-off, but it can block: under dirty-page throttling (balance_dirty_pages pauses the
 * writer for up to 200 ms), in direct reclaim, behind a journal commit, or reading the rest
 * of a partly written page from disk. So a write goes inline only when
 *  - it covers whole pages (no read-modify-write) and is at most INLINE_MAX bytes,
 *  - the system's dirty + writeback pages are below the background-writeback threshold
 *    (/proc/vmstat, sampled every DIRTY_SAMPLE_MS; throttling starts well above it), and
 *  - inline writes have not been stalling: STALLS writes slower than STALL_MS within a second
 *    (one such write can be mere preemption on a busy machine; throttling makes them all
 *    slow), or one slower than BLOCKED_MS, pause inline writes for a back-off that doubles
 *    up to 60 s (any cause, e.g. a cgroup's own dirty limit that /proc/vmstat does not show).
 * The cost of being wrong is a few stalls of the event loop per back-off period.
 */
class InlineWrites {
  static readonly INLINE_MAX = 128 * 1024;
  static readonly STALL_MS = 10;
  static readonly STALLS = 3;
  static readonly BLOCKED_MS = 100;
  static readonly DIRTY_SAMPLE_MS = 100;
  private pausedUntil = 0;
  private backoffMs = 1000;
  private dirtyOk = true;
  private sampledAt = -Infinity;
  private vmstat: boolean = fs.existsSync('/proc/vmstat');
  /** Start of the current one-second window and the slow writes in it. */
  private windowStart = 0;
  private slowInWindow = 0;
  /** Times inline writes were paused since start (diagnostics). */
  pauses = 0;

  allowed(len: number, pos: number): boolean {
    if (len > InlineWrites.INLINE_MAX || len % PAGE !== 0 || pos % PAGE !== 0) return false;
    const now = performance.now();
    if (now < this.pausedUntil) return false;
    if (now - this.sampledAt >= InlineWrites.DIRTY_SAMPLE_MS) this.sample(now);
    return this.dirtyOk;
  }

  private sample(now: number): void {
    this.sampledAt = now;
    if (!this.vmstat) return;
    try {
      const text = fs.readFileSync('/proc/vmstat', 'latin1');
      const get = (key: string) => {
        const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
        return m ? Number(m[1]) : undefined;
      };
      const dirty = (get('nr_dirty') ?? 0) + (get('nr_writeback') ?? 0);
      const background = get('nr_dirty_background_threshold');
      this.dirtyOk = background === undefined || dirty < background;
    } catch {
      this.vmstat = false; // no /proc: only the stall detector guards
    }
  }

  /** Account for an inline write that ended at `end` after `ms`. */
  took(ms: number, end: number): void {
    if (ms <= InlineWrites.STALL_MS) return;
    if (end - this.windowStart > 1000) {
      this.windowStart = end;
      this.slowInWindow = 0;
    }
    this.slowInWindow++;
    if (ms <= InlineWrites.BLOCKED_MS && this.slowInWindow < InlineWrites.STALLS) return;
    // Calm for ten back-off periods since the last pause: start again from one second.
    if (end > this.pausedUntil + 10 * this.backoffMs) this.backoffMs = 1000;
    this.pauses++;
    this.pausedUntil = end + this.backoffMs;
    this.backoffMs = Math.min(60_000, this.backoffMs * 2);
    this.slowInWindow = 0;
  }
}

const inline = new InlineWrites();
// Off by default: a write into a frozen or hung file system (fsfreeze, a stuck NFS or FUSE
// server) would block the event loop itself, and with it every session, TMF and timer — the
// backstore timeouts (cmd_time_out) could no longer act. ISCSI_GATEWAY_INLINE_WRITES=1 opts in
// where the host file system is local and never frozen.
let inlineEnabled = process.env.ISCSI_GATEWAY_INLINE_WRITES === '1';

/** Turn inline writes on or off (tests, benchmarks; ISCSI_GATEWAY_INLINE_WRITES=1 at start). */
export function setInlineWrites(on: boolean): void {
  inlineEnabled = on;
}

/** How often inline writes were paused because they stalled (diagnostics). */
export function inlineWritePauses(): number {
  return inline.pauses;
}

interface QueuedWrite {
  readonly fd: number;
  readonly data: Buffer;
  readonly pos: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** threadpool engine: writes issued during the current event-loop turn, submitted together. */
let queued: QueuedWrite[] = [];
let flushScheduled = false;
/** One job stays small enough that big writes still spread over the pool's threads. */
const BATCH_MAX_WRITES = 64;
const BATCH_MAX_BYTES = 1024 * 1024;

function submitBatch(batch: QueuedWrite[]): void {
  pwriteBatch(
    batch.map((w) => w.fd),
    batch.map((w) => w.data),
    batch.map((w) => w.pos),
  ).then(
    (errs) => batch.forEach((w, i) => (errs[i] ? w.reject(errnoError(errs[i], 'pwrite')) : w.resolve())),
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
      submitBatch(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(w);
    bytes += w.data.length;
  }
  if (batch.length > 0) submitBatch(batch);
}

function batchWrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    queued.push({ fd, data: buf.subarray(off, off + len), pos, resolve, reject });
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushWrites);
    }
  });
}

/** pwrite all of buf[off, off+len) at pos (inline when that cannot block, else asynchronously). */
export function pwriteFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  if (len === 0) return RESOLVED;
  const e = ioEngine();
  if (e === 'fs') return fsWrite(fd, buf, off, len, pos);
  if (inlineEnabled && inline.allowed(len, pos) && turn.take(len)) {
    const t0 = performance.now();
    try {
      pwriteSync(fd, buf, off, len, pos);
    } catch (err) {
      return Promise.reject(err as Error);
    } finally {
      const t1 = performance.now();
      inline.took(t1 - t0, t1);
    }
    return RESOLVED;
  }
  if (e === 'uring') {
    const p = ringRequest('write', fd, buf, off, len, pos);
    if (p) return p;
  }
  return batchWrite(fd, buf, off, len, pos);
}

/** fdatasync(2) through the engine (io_uring: no thread-pool hop). */
export function fdatasyncFd(fd: number): Promise<void> {
  if (ioEngine() === 'uring') {
    const p = ringRequest('fsync', fd, EMPTY, 0, 0, 0);
    if (p) return p;
  }
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
