/**
 * A pool of large data buffers (Data-Out assembly, Data-In reads). Allocating a fresh
 * ArrayBuffer per 128 KiB I/O made a third of the CPU time garbage collection; recycled
 * buffers keep memory flat instead.
 *
 * Rules: take() hands out a Buffer whose backing store belongs to the pool; give() returns
 * it once nothing references it any more (after the backstore write completed, after the
 * socket has taken the data). A buffer that is never given back is simply collected.
 */

/** Power-of-two size classes from MIN_CLASS to MAX_CLASS; smaller requests use Node's own pool. */
const MIN_CLASS = 16 * 1024;
const MAX_CLASS = 16 * 1024 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Backing buffer of every buffer handed out, by its ArrayBuffer. */
  private readonly backing = new WeakMap<ArrayBufferLike, Buffer>();
  /** Backings currently in a free list (guards against giving twice). */
  private readonly idle = new WeakSet<ArrayBufferLike>();
  private idleBytes = 0;

  constructor(private readonly maxIdleBytes = 64 * 1024 * 1024) {}

  static classOf(length: number): number {
    let c = MIN_CLASS;
    while (c < length) c *= 2;
    return c;
  }

  take(length: number): Buffer {
    if (length < MIN_CLASS || length > MAX_CLASS) return Buffer.allocUnsafe(length);
    const cls = BufferPool.classOf(length);
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
  }

  get idleByteCount(): number {
    return this.idleBytes;
  }
}

/** The process-wide pool for I/O data. */
export const dataBuffers = new BufferPool();
