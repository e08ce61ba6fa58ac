/**
 * The block-device interface: the seam between the SCSI layer and every backstore
 * (sparse file, embedded image store, Ceph RBD). Byte ranges and Buffers only; no per-block
 * calls, so a backstore can turn one SCSI command into one system call.
 *
 * Offsets and lengths are in bytes and are always multiples of the LU's logical block size
 * (the SCSI layer guarantees it). Sizes fit in a JS number (2^53 bytes = 8 PiB).
 */

/** Allocation state of a byte range, as GET LBA STATUS reports it (SBC-3 §5.7). */
export type ExtentState = 'mapped' | 'deallocated' | 'anchored';

export interface Extent {
  readonly offset: number;
  readonly length: number;
  readonly state: ExtentState;
}

export interface WriteOptions {
  /** Force Unit Access: the data is on stable storage when the promise resolves. */
  readonly fua?: boolean;
  /**
   * All or nothing, against concurrent I/O and any crash (WRITE ATOMIC). Only within
   * capabilities.atomicWriteBytes / atomicWriteAlignment.
   */
  readonly atomic?: boolean;
}

export interface BlockDeviceCapabilities {
  /** discard() frees space (thin provisioning). */
  readonly discard: boolean;
  /** A discarded range reads back as zeros (LBPRZ). */
  readonly discardZeroes: boolean;
  /** mapStatus() reports real allocation (otherwise everything is 'mapped'). */
  readonly mapStatus: boolean;
  /**
   * Largest write() with `atomic: true` the backstore makes all-or-nothing, against concurrent
   * I/O and against a crash in the middle (0 = not offered); it must start at a multiple of
   * atomicWriteAlignment.
   */
  readonly atomicWriteBytes: number;
  /** Alignment (and granularity) in bytes of atomic writes (0 or absent: any block). */
  readonly atomicWriteAlignment?: number;
}

export interface BlockDevice {
  /** Human-readable identity (path, pool/image). */
  readonly name: string;
  readonly readOnly: boolean;
  readonly capabilities: BlockDeviceCapabilities;

  /** Current size in bytes (may change while open: online resize). */
  size(): number;

  /**
   * Read `length` bytes at `offset`. If `into` is given the data lands there (it must be at
   * least `length` bytes) and that same Buffer is returned, so callers can read straight into
   * a buffer they will transmit.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void>;

  /** Make every completed write durable (SYNCHRONIZE CACHE). */
  flush(): Promise<void>;

  /** Deallocate a range. Afterwards it reads as zeros when capabilities.discardZeroes. */
  discard(offset: number, length: number): Promise<void>;

  /**
   * Fill [offset, offset+length) with repetitions of `pattern` (WRITE SAME). `length` is a
   * multiple of pattern.length. A backstore may store an all-zero pattern as a hole only when
   * `deallocate` is true; otherwise the range must end up allocated (provisioned).
   */
  writeSame(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void>;

  /** Allocation extents covering [offset, offset+length), in order, without gaps. */
  mapStatus(offset: number, length: number): Promise<Extent[]>;

  /** Called with the new size in bytes whenever the device is resized. Returns an unsubscribe. */
  onResize(listener: (newSize: number) => void): () => void;

  close(): Promise<void>;
}

/** Typed errors a backstore may throw; the SCSI layer maps them to sense data. */
export class BlockDeviceError extends Error {
  constructor(
    message: string,
    readonly kind: 'io' | 'out-of-range' | 'read-only' | 'no-space' | 'closed',
  ) {
    super(message);
    this.name = 'BlockDeviceError';
  }
}
