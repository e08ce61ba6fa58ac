/**
 * The null backstore: reads return zeros, writes are discarded, flushes succeed at once (like
 * LIO's rd_mcp with nullio=1 or tgt's "null" backing store). It measures what the gateway
 * costs without any storage underneath — the ceiling the benchmark compares the file and
 * store backstores with — and serves as a sink for protocol testing. Data written to it is
 * lost by design; the gateway logs a warning when it opens one.
 */
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, WriteOptions } from './block-device';

export interface NullBackstoreOptions {
  /** Size in bytes the LU reports. */
  readonly size: number;
  readonly name?: string;
  readonly readOnly?: boolean;
}

export class NullBackstore implements BlockDevice {
  readonly name: string;
  readonly readOnly: boolean;
  /** Every range reads as zeros, so discards "free" it and it reads back as zeros (LBPRZ). */
  readonly capabilities: BlockDeviceCapabilities = {
    discard: true,
    discardZeroes: true,
    mapStatus: false,
    atomicWriteBytes: 1024 * 1024,
  };
  private readonly bytes: number;
  private closed = false;

  constructor(options: NullBackstoreOptions) {
    if (!Number.isSafeInteger(options.size) || options.size <= 0) {
      throw new RangeError(`a null backstore needs a positive size in bytes, got ${options.size}`);
    }
    this.bytes = options.size;
    this.name = options.name ?? 'null';
    this.readOnly = options.readOnly ?? false;
  }

  size(): number {
    return this.bytes;
  }

  private check(offset: number, length: number, write: boolean): void {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (write && this.readOnly) throw new BlockDeviceError(`${this.name} is read-only`, 'read-only');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.bytes) {
      throw new BlockDeviceError(`range ${offset}+${length} outside ${this.name} (${this.bytes} bytes)`, 'out-of-range');
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.check(offset, length, false);
    if (!into) return Buffer.alloc(length);
    if (into.length < length) throw new RangeError(`read buffer of ${into.length} bytes is smaller than ${length}`);
    return into.fill(0, 0, length);
  }

  async write(offset: number, data: Buffer, _options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
  }

  async flush(): Promise<void> {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
  }

  async writeSame(offset: number, length: number, pattern: Buffer): Promise<void> {
    this.check(offset, length, true);
    if (pattern.length === 0 || length % pattern.length !== 0) {
      throw new BlockDeviceError(`WRITE SAME length ${length} is not a multiple of the pattern (${pattern.length} bytes)`, 'io');
    }
  }

  async mapStatus(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, false);
    return length === 0 ? [] : [{ offset, length, state: 'mapped' }];
  }

  /** The size is fixed by the configuration; there is nothing to resize. */
  onResize(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
