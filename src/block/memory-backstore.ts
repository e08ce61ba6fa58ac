/**
 * A real in-memory BlockDevice (RAM disk): a sparse map of fixed-size chunks. Unwritten and
 * discarded chunks hold no memory and read as zeros; mapStatus reports exactly which chunks
 * are allocated. Every operation completes synchronously inside the returned promise, so a
 * single write is atomic against every other write.
 */
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, WriteOptions } from './block-device';

export interface MemoryBackstoreOptions {
  /** Size in bytes. */
  readonly size: number;
  readonly name?: string;
  readonly readOnly?: boolean;
  /** Allocation unit in bytes (power of two, >= 4096); default 64 KiB. */
  readonly chunkSize?: number;
  /**
   * Physical block to report (capabilities.physicalBlockBytes). Default 512: RAM has no
   * read-modify-write unit above the smallest logical block.
   */
  readonly physicalBlockBytes?: number;
}

export class MemoryBackstore implements BlockDevice {
  readonly name: string;
  readonly readOnly: boolean;
  readonly capabilities: BlockDeviceCapabilities;
  readonly chunkSize: number;
  private readonly chunks = new Map<number, Buffer>();
  private bytes: number;
  private closed = false;
  private readonly listeners = new Set<(newSize: number) => void>();

  constructor(options: MemoryBackstoreOptions) {
    const chunkSize = options.chunkSize ?? 65536;
    if (!Number.isInteger(chunkSize) || chunkSize < 4096 || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new RangeError(`chunkSize must be a power of two >= 4096, got ${chunkSize}`);
    }
    checkSize(options.size);
    this.chunkSize = chunkSize;
    this.bytes = options.size;
    this.name = options.name ?? 'memory';
    this.readOnly = options.readOnly ?? false;
    this.capabilities = {
      discard: true,
      discardZeroes: true,
      mapStatus: true,
      atomicWriteBytes: 0x80000000,
      physicalBlockBytes: options.physicalBlockBytes ?? 512,
    };
  }

  size(): number {
    return this.bytes;
  }

  /** Bytes of memory currently allocated for data. */
  allocatedBytes(): number {
    return this.chunks.size * this.chunkSize;
  }

  /** Online resize: grow, or shrink (dropping the data beyond the new end). */
  resize(newSize: number): void {
    this.checkOpen();
    checkSize(newSize);
    if (newSize < this.bytes) {
      const cs = this.chunkSize;
      for (const idx of [...this.chunks.keys()]) {
        const start = idx * cs;
        if (start >= newSize) this.chunks.delete(idx);
        else if (start + cs > newSize) this.chunks.get(idx)?.fill(0, newSize - start);
      }
    }
    this.bytes = newSize;
    for (const l of [...this.listeners]) l(newSize);
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.checkRange(offset, length);
    const out = into ?? Buffer.allocUnsafe(length);
    if (out.length < length) throw new RangeError(`read buffer of ${out.length} bytes is smaller than ${length}`);
    const cs = this.chunkSize;
    let pos = offset;
    let at = 0;
    while (at < length) {
      const idx = Math.floor(pos / cs);
      const within = pos - idx * cs;
      const n = Math.min(cs - within, length - at);
      const chunk = this.chunks.get(idx);
      if (chunk) chunk.copy(out, at, within, within + n);
      else out.fill(0, at, at + n);
      at += n;
      pos += n;
    }
    return out;
  }

  async write(offset: number, data: Buffer, _options?: WriteOptions): Promise<void> {
    this.checkWritable(offset, data.length);
    const cs = this.chunkSize;
    let pos = offset;
    let at = 0;
    while (at < data.length) {
      const idx = Math.floor(pos / cs);
      const within = pos - idx * cs;
      const n = Math.min(cs - within, data.length - at);
      data.copy(this.chunk(idx), within, at, at + n);
      at += n;
      pos += n;
    }
  }

  /** RAM is the medium: there is no volatile cache in front of it. */
  async flush(): Promise<void> {
    this.checkOpen();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable(offset, length);
    const cs = this.chunkSize;
    const end = offset + length;
    for (let idx = Math.floor(offset / cs); idx * cs < end; idx++) {
      const start = idx * cs;
      const from = Math.max(offset, start);
      const to = Math.min(end, start + cs);
      if (from === start && to === start + cs) this.chunks.delete(idx);
      else this.chunks.get(idx)?.fill(0, from - start, to - start);
    }
  }

  async writeSame(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void> {
    this.checkWritable(offset, length);
    if (pattern.length === 0 || length % pattern.length !== 0) {
      throw new RangeError(`writeSame length ${length} is not a multiple of the pattern length ${pattern.length}`);
    }
    if (options?.deallocate && isZero(pattern)) return this.discard(offset, length);
    const cs = this.chunkSize;
    const end = offset + length;
    for (let idx = Math.floor(offset / cs); idx * cs < end; idx++) {
      const start = idx * cs;
      const from = Math.max(offset, start);
      const to = Math.min(end, start + cs);
      const phase = (from - offset) % pattern.length;
      const p = phase === 0 ? pattern : Buffer.concat([pattern.subarray(phase), pattern.subarray(0, phase)]);
      this.chunk(idx).fill(p, from - start, to - start);
    }
  }

  async mapStatus(offset: number, length: number): Promise<Extent[]> {
    this.checkRange(offset, length);
    const cs = this.chunkSize;
    const end = offset + length;
    const out: Extent[] = [];
    let runStart = offset;
    let runState: 'mapped' | 'deallocated' | undefined;
    for (let idx = Math.floor(offset / cs); idx * cs < end; idx++) {
      const from = Math.max(offset, idx * cs);
      const state = this.chunks.has(idx) ? 'mapped' : 'deallocated';
      if (runState !== undefined && state !== runState) {
        out.push({ offset: runStart, length: from - runStart, state: runState });
        runStart = from;
      }
      runState = state;
    }
    if (runState !== undefined) out.push({ offset: runStart, length: end - runStart, state: runState });
    return out;
  }

  onResize(listener: (newSize: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.chunks.clear();
    this.listeners.clear();
  }

  private chunk(idx: number): Buffer {
    let c = this.chunks.get(idx);
    if (!c) {
      c = Buffer.alloc(this.chunkSize);
      this.chunks.set(idx, c);
    }
    return c;
  }

  private checkOpen(): void {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
  }

  private checkRange(offset: number, length: number): void {
    this.checkOpen();
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.bytes) {
      throw new BlockDeviceError(`${this.name}: range ${offset}+${length} is outside 0..${this.bytes}`, 'out-of-range');
    }
  }

  private checkWritable(offset: number, length: number): void {
    this.checkRange(offset, length);
    if (this.readOnly) throw new BlockDeviceError(`${this.name} is read-only`, 'read-only');
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid size ${size}`);
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
