/**
 * A pool of large data buffers (Data-Out assembly, Data-In reads). Allocating a fresh
 * ArrayBuffer per 128 KiB I/O made a third of the CPU time garbage collection; recycled
 * buffers keep memory flat instead.
 *
 * Rules: take() hands out a Buffer whose backing store belongs to the pool; give() returns
 * it once nothing references it any more (after the backstore write completed, after the
 * socket has taken the data). A buffer that is never given back is simply collected.
 */
import { collectGarbage } from './gc';

/** Power-of-two size classes from MIN_CLASS to MAX_CLASS; smaller requests use Node's own pool. */
const MIN_CLASS = 16 * 1024;
const MAX_CLASS = 16 * 1024 * 1024;
/** A trim that lets go of this much asks V8 to collect (see util/gc.ts). */
const RELEASE_GC_BYTES = 16 * 1024 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Backing buffer of every buffer handed out, by its ArrayBuffer. */
  private readonly backing = new WeakMap<ArrayBufferLike, Buffer>();
  /** Backings currently in a free list (guards against giving twice). */
  private readonly idle = new WeakSet<ArrayBufferLike>();
  private idleBytes = 0;
  /** Size classes taken from since the last trim. */
  private readonly used = new Set<number>();
  private trimTimer: NodeJS.Timeout | undefined;

  /**
   * `trimMs`: idle buffers of a size class nobody took from for that long are let go, so memory
   * taken during a burst (or by peers that have gone) returns to the system. 0: never.
   */
  constructor(
    private readonly maxIdleBytes = 64 * 1024 * 1024,
    private readonly trimMs = 5000,
  ) {}

  static classOf(length: number): number {
    let c = MIN_CLASS;
    while (c < length) c *= 2;
    return c;
  }

  take(length: number): Buffer {
    if (length < MIN_CLASS || length > MAX_CLASS) return Buffer.allocUnsafe(length);
    const cls = BufferPool.classOf(length);
    this.used.add(cls);
    const list = this.free.get(cls);
    let b = list?.pop();
    if (b) {
      this.idle.delete(b.buffer);
      this.idleBytes -= cls;
    } else {
      b = Buffer.allocUnsafeSlow(cls);
      this.backing.set(b.buffer, b);
    }
    return b.subarray(0, length);
  }

  /** Return a buffer obtained from take(). Anything else (or a second give) is ignored. */
  give(buffer: Buffer | undefined): void {
    if (!buffer) return;
    const b = this.backing.get(buffer.buffer);
    if (!b || this.idle.has(b.buffer) || this.idleBytes + b.length > this.maxIdleBytes) return;
    let list = this.free.get(b.length);
    if (!list) this.free.set(b.length, (list = []));
    list.push(b);
    this.idle.add(b.buffer);
    this.idleBytes += b.length;
    if (this.trimMs > 0 && !this.trimTimer) {
      this.trimTimer = setInterval(() => this.trim(), this.trimMs);
      this.trimTimer.unref();
    }
  }

  /** Let go of idle buffers of every size class not taken from since the last trim. */
  trim(): void {
    let released = 0;
    for (const [cls, list] of this.free) {
      if (this.used.has(cls)) continue;
      for (const b of list) this.idle.delete(b.buffer);
      released += cls * list.length;
      this.free.delete(cls);
    }
    this.idleBytes -= released;
    // Large amounts go back to the system only once V8 collects them; an idle process may not.
    // (From a fresh stack: this frame may still reference what it just dropped.)
    if (released >= RELEASE_GC_BYTES) setImmediate(collectGarbage).unref();
    this.used.clear();
    if (this.free.size === 0 && this.trimTimer) {
      clearInterval(this.trimTimer);
      this.trimTimer = undefined;
    }
  }

  get idleByteCount(): number {
    return this.idleBytes;
  }
}

/** The process-wide pool for I/O data. */
export const dataBuffers = new BufferPool();
