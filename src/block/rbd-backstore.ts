/**
 * Backstore on a Ceph RBD image through librbd (the `rbd` and `user:rbd` backstores when Ceph
 * is the image provider). Every operation is one librbd aio call on the caller's Buffer:
 * reads land in the Buffer that is transmitted, writes go out of the Data-Out Buffer.
 *
 *  - Bounded queue depth per image: at most `queueDepth` operations are inside librbd at a
 *    time; the rest wait in a FIFO (itself bounded by the LU's task set, and refused beyond
 *    MAX_WAITING), so a slow cluster never gets an unbounded pile of ops from one gateway.
 *  - Durability: librbd's cache (writearound by default) may complete a write before the OSD
 *    committed it, so SYNCHRONIZE CACHE and FUA writes end in rbd_aio_flush.
 *  - UNMAP and WRITE SAME of zeros: rbd_aio_write_zeroes (whole objects are deallocated, the
 *    rest zeroed, so a discarded range reads as zeros: LBPRZ); other WRITE SAME patterns:
 *    rbd_aio_writesame (the OSDs expand the pattern).
 *  - COMPARE AND WRITE: rbd_aio_compare_and_write, atomic at the OSD, so it holds across
 *    gateways (VMware ATS: one 512-byte block); librbd only offers it within one 512-byte
 *    sector, larger ones fall back to the SCSI layer's range-locked read-compare-write.
 *  - GET LBA STATUS: rbd_diff_iterate2 of the head (object map when fast-diff is on).
 *  - Size: an update watch (rbd_update_watch) re-reads the size when the image changes
 *    (`rbd resize` anywhere), and onResize listeners (the LU: CAPACITY DATA HAS CHANGED) hear it.
 *  - Time: librados' rados_osd_op_timeout fails an op the OSDs do not answer (ETIMEDOUT ->
 *    'timeout'); GuardedDevice's cmd_time_out bounds the rest.
 */
import {
  BlockDevice, BlockDeviceCapabilities, BlockDeviceError, BlockDeviceErrorKind, Extent, IoOptions, PAGE_SIZE, WriteOptions, WriteSameOptions,
} from './block-device';

/**
 * What this backstore needs of one open librbd image (src/images/ceph.ts adapts the native
 * binding to it). Rejections carry a negative errno in `errno` (librbd's return value).
 */
export interface RbdImageHandle {
  /** rbd_get_size (off the JS thread). */
  size(): Promise<number>;
  read(offset: number, length: number, into: Buffer): Promise<number>;
  write(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  writeSame(offset: number, length: number, pattern: Buffer): Promise<void>;
  /** Resolves -1 when written, otherwise the offset of the first differing byte from `offset`. */
  compareAndWrite(offset: number, compare: Buffer, data: Buffer): Promise<number>;
  /** Allocated extents of the head within [offset, offset+length), in order. */
  allocated(offset: number, length: number): Promise<Array<{ offset: number; length: number }>>;
  /** rbd_update_watch: `listener` runs on the JS thread after each header update. */
  watch(listener: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface RbdBackstoreOptions {
  /** "pool/image" or "pool/image@snap". */
  readonly name: string;
  readonly readOnly: boolean;
  /**
   * Other gateways write the image at the same time (src/ha/active-active.ts): COMPARE AND
   * WRITE only as one OSD operation (capabilities.sharedCompareAndWriteBytes).
   */
  readonly activeActive?: boolean;
  readonly objectSize: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  /** Operations inside librbd at once (default DEFAULT_QUEUE_DEPTH). */
  readonly queueDepth?: number;
  /** Called (for the log) when the watch or a size refresh fails. */
  readonly onError?: (what: string, e: unknown) => void;
}

export const DEFAULT_QUEUE_DEPTH = 128;
/** Operations allowed to wait for a slot; more means the SCSI layer's own bounds failed. */
const MAX_WAITING = 4096;
/** librbd (Pacific) compares and writes within one 512-byte sector only (EINVAL otherwise). */
const COMPARE_AND_WRITE_SECTOR = 512;

const ERRNO_KINDS: Readonly<Record<number, BlockDeviceErrorKind>> = {
  28: 'no-space', // ENOSPC
  122: 'no-space', // EDQUOT
  30: 'read-only', // EROFS
  110: 'timeout', // ETIMEDOUT: rados_osd_op_timeout
  125: 'aborted', // ECANCELED
  95: 'unsupported', // EOPNOTSUPP
  108: 'closed', // ESHUTDOWN: this client was blocklisted (another gateway took the image over)
};

/** The negative errno a binding rejection carries, if any. */
export function rbdErrno(e: unknown): number | undefined {
  const n = (e as { errno?: unknown } | undefined)?.errno;
  return typeof n === 'number' && Number.isInteger(n) ? Math.abs(n) : undefined;
}

function rbdError(e: unknown, name: string, op: string): BlockDeviceError {
  if (e instanceof BlockDeviceError) return e;
  const errno = rbdErrno(e);
  const kind = (errno !== undefined ? ERRNO_KINDS[errno] : undefined) ?? 'io';
  const message = `${op} on ${name} failed: ${(e as Error | undefined)?.message ?? String(e)}`;
  return new BlockDeviceError(message, op === 'flush' && kind === 'io' ? 'write-back' : kind);
}

function allZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export class RbdBackstore implements BlockDevice {
  readonly name: string;
  readonly readOnly: boolean;
  readonly capabilities: BlockDeviceCapabilities;
  private sizeBytes: number;
  private closed = false;
  private readonly listeners = new Set<(n: number) => void>();
  private readonly depth: number;
  private inside = 0;
  private readonly waiting: Array<() => void> = [];
  private unwatch: (() => Promise<void>) | undefined;
  /** One object (or one stripe unit when striped): what one OSD op covers. */
  private readonly unit: number;

  private constructor(private readonly image: RbdImageHandle, options: RbdBackstoreOptions, size: number) {
    this.name = options.name;
    this.readOnly = options.readOnly;
    this.sizeBytes = size;
    this.depth = Math.max(1, options.queueDepth ?? DEFAULT_QUEUE_DEPTH);
    this.unit = options.stripeCount > 1 ? options.stripeUnit : options.objectSize;
    this.capabilities = {
      discard: !options.readOnly,
      // write_zeroes: a discarded range reads back as zeros (unlike rbd_aio_discard, which
      // skips parts smaller than rbd_discard_granularity_bytes).
      discardZeroes: true,
      mapStatus: true,
      // One write within one object is one OSD transaction: all or nothing. An aligned 4 KiB
      // write never spans two objects (stripe units are >= 4 KiB, export rules), so any
      // aligned page may be written atomically, as on the embedded store.
      atomicWriteBytes: options.readOnly ? 0 : Math.min(this.unit, PAGE_SIZE),
      atomicWriteAlignment: Math.min(this.unit, PAGE_SIZE),
      physicalBlockBytes: PAGE_SIZE,
      // The SCSI layer's fallback (read, compare, write under its own range lock) would not be
      // atomic against the other gateways' writes: only librbd's OSD-side one counts.
      ...(options.activeActive && !options.readOnly ? { sharedCompareAndWriteBytes: COMPARE_AND_WRITE_SECTOR } : {}),
    };
  }

  /** Wrap an open image; subscribes to its header updates (resize elsewhere). */
  static async open(image: RbdImageHandle, options: RbdBackstoreOptions): Promise<RbdBackstore> {
    const dev = new RbdBackstore(image, options, await image.size());
    try {
      dev.unwatch = await image.watch(() => void dev.refreshSize(options.onError));
    } catch (e) {
      await image.close().catch(() => undefined);
      throw rbdError(e, options.name, 'watch');
    }
    return dev;
  }

  size(): number {
    return this.sizeBytes;
  }

  onResize(listener: (newSize: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-read the size after a header update; tell the listeners when it changed. */
  async refreshSize(onError?: (what: string, e: unknown) => void): Promise<void> {
    if (this.closed) return;
    try {
      const n = await this.image.size();
      if (n === this.sizeBytes || this.closed) return;
      this.sizeBytes = n;
      for (const l of [...this.listeners]) l(n);
    } catch (e) {
      onError?.('size refresh after an image update', e);
    }
  }

  private check(offset: number, length: number, write: boolean): void {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (write && this.readOnly) throw new BlockDeviceError(`${this.name} is read-only`, 'read-only');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new BlockDeviceError(`range ${offset}+${length} outside ${this.name} (${this.sizeBytes} bytes)`, 'out-of-range');
    }
  }

  /** Run `fn` in one of the `depth` slots (FIFO), mapping librbd errors. */
  private async slot<T>(op: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.inside >= this.depth) {
      if (this.waiting.length >= MAX_WAITING) {
        throw new BlockDeviceError(`${this.name}: ${MAX_WAITING} operations already wait for librbd`, 'timeout');
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      // A slot was handed over to us (inside stays counted).
    } else {
      this.inside++;
    }
    try {
      // Given up on while queued (TMF, cmd_time_out): never submitted.
      if (signal?.aborted) throw new BlockDeviceError(`${op} on ${this.name} aborted`, 'aborted');
      if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
      return await fn();
    } catch (e) {
      throw rbdError(e, this.name, op);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inside--;
    }
  }

  /** Operations inside librbd and waiting for a slot (metrics, tests). */
  get queue(): { inside: number; waiting: number; depth: number } {
    return { inside: this.inside, waiting: this.waiting.length, depth: this.depth };
  }

  async read(offset: number, length: number, into?: Buffer, options?: IoOptions): Promise<Buffer> {
    this.check(offset, length, false);
    const buf = into ?? Buffer.allocUnsafe(length);
    if (buf.length < length) throw new RangeError(`read buffer of ${buf.length} bytes is smaller than ${length}`);
    if (length === 0) return buf;
    const target = buf.length === length ? buf : buf.subarray(0, length);
    const n = await this.slot('read', options?.signal, () => this.image.read(offset, length, target));
    // librbd returns short only at the end of the image (a concurrent shrink): zeros beyond.
    if (n < length) target.fill(0, Math.max(0, n));
    return buf;
  }

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
    if (data.length === 0) return;
    await this.slot('write', options?.signal, () => this.image.write(offset, data));
    if (options?.fua) await this.slot('flush', options.signal, () => this.image.flush());
  }

  async flush(options?: IoOptions): Promise<void> {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (this.readOnly) return;
    await this.slot('flush', options?.signal, () => this.image.flush());
  }

  async discard(offset: number, length: number, options?: IoOptions): Promise<void> {
    this.check(offset, length, true);
    if (length === 0) return;
    await this.slot('discard', options?.signal, () => this.image.writeZeroes(offset, length));
  }

  async writeSame(offset: number, length: number, pattern: Buffer, options?: WriteSameOptions): Promise<void> {
    this.check(offset, length, true);
    if (pattern.length === 0 || length % pattern.length !== 0) {
      throw new BlockDeviceError(`WRITE SAME length ${length} is not a multiple of the pattern (${pattern.length} bytes)`, 'io');
    }
    if (length === 0) return;
    // Zeros: write_zeroes (it deallocates whole objects; a zeroed RBD range reads as zeros
    // either way, and a thick-provisioned image is not something RBD offers).
    if (allZero(pattern)) await this.slot('write same', options?.signal, () => this.image.writeZeroes(offset, length));
    else await this.slot('write same', options?.signal, () => this.image.writeSame(offset, length, pattern));
    if (options?.fua) await this.slot('flush', options.signal, () => this.image.flush());
  }

  /**
   * COMPARE AND WRITE at the OSD. -1: compared equal and written; otherwise the offset of the
   * first differing byte. 'unsupported' beyond one 512-byte sector (the caller falls back).
   */
  async compareAndWrite(offset: number, compare: Buffer, data: Buffer, options?: WriteOptions): Promise<number> {
    this.check(offset, data.length, true);
    if (compare.length !== data.length) throw new RangeError('compare and write buffers differ in length');
    if (data.length === 0) return -1;
    if (Math.floor(offset / COMPARE_AND_WRITE_SECTOR) !== Math.floor((offset + data.length - 1) / COMPARE_AND_WRITE_SECTOR)) {
      throw new BlockDeviceError(`${this.name}: librbd compares and writes within one ${COMPARE_AND_WRITE_SECTOR}-byte sector only`, 'unsupported');
    }
    const at = await this.slot('compare and write', options?.signal, () => this.image.compareAndWrite(offset, compare, data).catch((e: unknown) => {
      // Any other librbd restriction (EINVAL on a range it will not do): the caller falls back.
      if (rbdErrno(e) === 22) throw new BlockDeviceError(`${this.name}: librbd refused compare and write of ${data.length} bytes at ${offset}`, 'unsupported');
      throw e;
    }));
    if (at < 0 && options?.fua) await this.slot('flush', options.signal, () => this.image.flush());
    return at;
  }

  async mapStatus(offset: number, length: number, options?: IoOptions): Promise<Extent[]> {
    this.check(offset, length, false);
    if (length === 0) return [];
    const mapped = await this.slot('map status', options?.signal, () => this.image.allocated(offset, length));
    const out: Extent[] = [];
    let at = offset;
    const end = offset + length;
    for (const m of mapped) {
      const s = Math.max(at, m.offset);
      const e = Math.min(end, m.offset + m.length);
      if (e <= s) continue;
      if (s > at) out.push({ offset: at, length: s - at, state: 'deallocated' });
      push(out, { offset: s, length: e - s, state: 'mapped' });
      at = e;
    }
    if (at < end) out.push({ offset: at, length: end - at, state: 'deallocated' });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Pending ops finish (librbd completes them) before the image is closed.
    if (!this.readOnly) await this.flush().catch(() => undefined);
    this.closed = true;
    // Waiters wake into a slot of their own and find the device closed.
    for (const w of this.waiting.splice(0)) {
      this.inside++;
      w();
    }
    const unwatch = this.unwatch;
    this.unwatch = undefined;
    try {
      await unwatch?.();
    } finally {
      await this.image.close();
    }
  }
}

/** Append, merging with the previous extent of the same state. */
function push(out: Extent[], e: Extent): void {
  const prev = out[out.length - 1];
  if (prev && prev.state === e.state && prev.offset + prev.length === e.offset) out[out.length - 1] = { ...prev, length: prev.length + e.length };
  else out.push(e);
}
