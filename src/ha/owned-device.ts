/**
 * The block device of a LUN whose image may be owned by this gateway or another one, and whose
 * owner can change while initiators stay logged in: the LU keeps this one device for good, and
 * ownership swaps what is behind it.
 *
 * - Owner: operations go to the read-write device (opened with the image's exclusive lock).
 * - Not owner: size and capabilities come from a read-only view; the first media access asks
 *   `activate` to take the lock (implicit ALUA transition: hand-over or fenced break) and runs
 *   once this gateway owns the image.
 * - Giving ownership up (detach): new operations wait at a gate, those in flight finish
 *   (bounded), the device is flushed, and only then is it handed back for closing, so no
 *   acknowledged write is behind the new owner's back and no write of ours lands after it.
 * - COMPARE AND WRITE and ORWRITE run their read and their write as one operation of one
 *   ownership turn (never the read on the read-only view, nor a hand-over between the two), so
 *   they stay atomic against every other gateway's writes.
 * - `settle` tells the manager when the owner is not using the image (nothing in flight for
 *   a moment): a hand-over then costs this gateway nothing and need not wait.
 */
import {
  BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, IoOptions, WriteOptions, WriteSameOptions,
} from '../block/block-device';

export class OwnedDevice implements BlockDevice {
  readonly readOnly = false;
  readonly capabilities: BlockDeviceCapabilities;
  private rw: BlockDevice | undefined;
  private inflight = 0;
  private idle: Array<() => void> = [];
  /** When an operation last started or ended on the read-write device (ms). */
  private lastActivity = 0;
  /** Set while ownership changes: new operations wait for it. */
  private gate: Promise<void> | undefined;
  private closed = false;

  /**
   * `view`: size, capabilities and resize events without data access (a StandbyDevice);
   * `activate`: make this gateway the owner (resolves after attach(), rejects when it cannot).
   */
  constructor(
    readonly name: string,
    private readonly view: BlockDevice,
    private readonly activate: () => Promise<void>,
    /** The view serves reads that see every write the owner acknowledged. */
    private readonly viewReads = false,
  ) {
    this.capabilities = view.capabilities;
  }

  /** This gateway owns the image (operations run here without a transition). */
  get active(): boolean {
    return this.rw !== undefined;
  }

  /** Operations running on the read-write device now. */
  get inFlight(): number {
    return this.inflight;
  }

  size(): number {
    return (this.rw ?? this.view).size();
  }

  /**
   * Resolves once no operation has run on the read-write device for `quietMs` (the owner is
   * idle: the next command of a busy initiator arrives well within it), or at `until` (ms since
   * the epoch), whichever comes first.
   */
  async settle(quietMs: number, until: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      if (now >= until || !this.rw) return;
      let timer: NodeJS.Timeout | undefined;
      if (this.inflight > 0) {
        await new Promise<void>((r) => {
          this.idle.push(r);
          timer = setTimeout(r, until - now);
        });
      } else {
        const quiet = now - this.lastActivity;
        if (quiet >= quietMs) return;
        await new Promise<void>((r) => (timer = setTimeout(r, Math.min(quietMs - quiet, until - now))));
      }
      if (timer) clearTimeout(timer);
    }
  }

  /** Become the owner's device: `rw` was opened read-write under the lock. */
  attach(rw: BlockDevice): void {
    if (this.closed) throw new BlockDeviceError(`${this.name}: closed`, 'closed');
    this.rw = rw;
  }

  /**
   * Give ownership up: hold new operations, wait up to `drainMs` for those in flight, flush.
   * Returns the read-write device for the caller to close (after which the lock is released).
   * Throws (and stays the owner) when in-flight operations do not finish or the flush fails:
   * handing over then would lose or reorder acknowledged data.
   */
  async detach(drainMs: number, flush = true): Promise<BlockDevice | undefined> {
    const rw = this.rw;
    if (!rw) return undefined;
    let open!: () => void;
    this.gate = new Promise<void>((r) => (open = r));
    try {
      if (this.inflight > 0) {
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          new Promise<boolean>((r) => this.idle.push(() => r(true))),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), drainMs))),
        ]);
        if (timer) clearTimeout(timer);
        if (!drained) throw new BlockDeviceError(`${this.name}: ${this.inflight} operations still in flight after ${drainMs} ms`, 'timeout');
      }
      if (flush) await rw.flush();
      this.rw = undefined;
      return rw;
    } finally {
      this.gate = undefined;
      open();
    }
  }

  /** Drop the read-write device at once (the lock was lost: no more writes, nothing to flush to). */
  forget(): BlockDevice | undefined {
    const rw = this.rw;
    this.rw = undefined;
    return rw;
  }

  private async enter(options?: IoOptions): Promise<BlockDevice> {
    // Bounded: an activation that succeeds but loses the lock again at once is retried twice.
    for (let attempt = 0; attempt < 3; attempt++) {
      while (this.gate) await this.gate;
      if (this.closed) throw new BlockDeviceError(`${this.name}: closed`, 'closed');
      if (options?.signal?.aborted) throw new BlockDeviceError(`${this.name}: aborted while waiting for ownership`, 'aborted');
      if (this.rw) {
        this.inflight++;
        this.lastActivity = Date.now();
        return this.rw;
      }
      try {
        await this.activate();
      } catch (e) {
        if (e instanceof BlockDeviceError) throw e;
        throw new BlockDeviceError(`${this.name}: cannot take ownership: ${(e as Error).message}`, 'aborted');
      }
    }
    throw new BlockDeviceError(`${this.name}: ownership moved away again during the transition`, 'aborted');
  }

  private leave(): void {
    this.inflight--;
    this.lastActivity = Date.now();
    if (this.inflight === 0 && this.idle.length > 0) {
      const w = this.idle;
      this.idle = [];
      for (const f of w) f();
    }
  }

  private async run<T>(options: IoOptions | undefined, fn: (d: BlockDevice) => Promise<T>): Promise<T> {
    const d = await this.enter(options);
    try {
      return await fn(d);
    } finally {
      this.leave();
    }
  }

  read(offset: number, length: number, into?: Buffer, options?: IoOptions): Promise<Buffer> {
    // Not the owner, and the view is coherent with the owner's writes (embedded store: one page
    // cache): reads need no transition, so readers on several paths do not bounce the lock.
    if (!this.rw && !this.gate && this.viewReads) return this.view.read(offset, length, into, options);
    return this.run(options, (d) => d.read(offset, length, into, options));
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.run(options, (d) => d.write(offset, data, options));
  }

  flush(options?: IoOptions): Promise<void> {
    // Not the owner: nothing of ours is unflushed (detach flushed it), no transition needed.
    if (!this.rw && !this.gate) return Promise.resolve();
    return this.run(options, (d) => d.flush(options));
  }

  /**
   * COMPARE AND WRITE in one turn of ownership: the backstore's own offload when it has one,
   * else read, compare and write on the read-write device as one operation (a hand-over waits
   * for it as for any operation in flight). Returns the offset of the first differing byte, or
   * -1 when the data matched and was written.
   */
  compareAndWrite(offset: number, compare: Buffer, data: Buffer, options?: WriteOptions): Promise<number> {
    return this.run(options, async (d) => {
      if (d.compareAndWrite) {
        const r = await d.compareAndWrite(offset, compare, data, options).catch((e: unknown) => {
          if (e instanceof BlockDeviceError && e.kind === 'unsupported') return undefined;
          throw e;
        });
        if (r !== undefined) return r;
      }
      const current = await d.read(offset, compare.length, Buffer.allocUnsafe(compare.length), { signal: options?.signal });
      if (!current.equals(compare)) {
        for (let i = 0; i < compare.length; i++) if (current[i] !== compare[i]) return i;
      }
      await d.write(offset, data, options);
      return -1;
    });
  }

  /** ORWRITE in one turn of ownership: the read is the owner's, and no hand-over comes between it and the write. */
  orWrite(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.run(options, async (d) => {
      const current = await d.read(offset, data.length, Buffer.allocUnsafe(data.length), { signal: options?.signal });
      for (let i = 0; i < data.length; i++) current[i] |= data[i];
      await d.write(offset, current, options);
    });
  }

  discard(offset: number, length: number, options?: IoOptions): Promise<void> {
    return this.run(options, (d) => d.discard(offset, length, options));
  }

  writeSame(offset: number, length: number, pattern: Buffer, options?: WriteSameOptions): Promise<void> {
    return this.run(options, (d) => d.writeSame(offset, length, pattern, options));
  }

  mapStatus(offset: number, length: number, options?: IoOptions): Promise<Extent[]> {
    if (!this.rw && !this.gate && this.viewReads) return this.view.mapStatus(offset, length, options);
    return this.run(options, (d) => d.mapStatus(offset, length, options));
  }

  onResize(listener: (newSize: number) => void): () => void {
    return this.view.onResize(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    const rw = this.rw;
    this.rw = undefined;
    try {
      if (rw) await rw.close();
    } finally {
      await this.view.close();
    }
  }
}
