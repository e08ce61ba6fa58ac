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

/**
 * Cancellation of one operation. A backstore that can give up an operation (io_uring cancel,
 * a librados op timeout) should do so when the signal fires and reject with
 * BlockDeviceError('aborted'); one that cannot may ignore it. Either way the caller stops
 * waiting (see GuardedDevice), so an operation that never completes pins nothing.
 */
export interface IoOptions {
  readonly signal?: AbortSignal;
}

export interface WriteOptions extends IoOptions {
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
  /**
   * The smallest unit the backstore writes without a read-modify-write: the file system's
   * block size (st_blksize) or the image's allocation unit. Reported as the physical block
   * (LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT). Absent: PAGE_SIZE, the unit of the page
   * cache every backstore here goes through.
   */
  readonly physicalBlockBytes?: number;
  /**
   * Set when other writers the SCSI layer cannot see share the medium (an RBD image written by
   * several gateways at once): COMPARE AND WRITE must be done by compareAndWrite() where the
   * data lives, never emulated with a read and a write, and only up to this many bytes (what
   * the backstore makes atomic; 0: not at all). Absent: any length, emulated where needed.
   */
  readonly sharedCompareAndWriteBytes?: number;
}

/** The page size of the platforms we run on (x86-64, arm64). */
export const PAGE_SIZE = 4096;

export interface WriteSameOptions extends IoOptions {
  readonly deallocate?: boolean;
  readonly fua?: boolean;
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
  read(offset: number, length: number, into?: Buffer, options?: IoOptions): Promise<Buffer>;

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void>;

  /**
   * Make every completed write durable (SYNCHRONIZE CACHE). Must reject when any write
   * completed since the previous successful flush could not be made durable (a write-back
   * error), even if that error was already consumed by another caller (group commit): the
   * generic layer (GuardedDevice) remembers failures per observer, the backstore must never
   * swallow one.
   */
  flush(options?: IoOptions): Promise<void>;

  /** Deallocate a range. Afterwards it reads as zeros when capabilities.discardZeroes. */
  discard(offset: number, length: number, options?: IoOptions): Promise<void>;

  /**
   * Fill [offset, offset+length) with repetitions of `pattern` (WRITE SAME). `length` is a
   * multiple of pattern.length. A backstore may store an all-zero pattern as a hole only when
   * `deallocate` is true; otherwise the range must end up allocated (provisioned).
   */
  writeSame(offset: number, length: number, pattern: Buffer, options?: WriteSameOptions): Promise<void>;

  /**
   * Optional COMPARE AND WRITE offload: atomically, where the data lives (an RBD image: at the
   * OSD, so across gateways), compare `compare` with the medium at `offset` and, if equal,
   * write `data` (same length). Resolves -1 when written, else the offset from `offset` of
   * the first differing byte. Rejects 'unsupported' for a range it cannot do; the SCSI layer
   * then compares and writes itself under its range lock.
   */
  compareAndWrite?(offset: number, compare: Buffer, data: Buffer, options?: WriteOptions): Promise<number>;

  /**
   * Optional ORWRITE offload: each byte at `offset` becomes (medium OR data), with no other
   * writer of the image between the read and the write (a device whose writer can change at
   * run time, src/ha/owned-device.ts, does both in one turn of ownership). Without it the SCSI
   * layer reads and writes under its range lock, which only this LU's commands respect.
   */
  orWrite?(offset: number, data: Buffer, options?: WriteOptions): Promise<void>;

  /** Allocation extents covering [offset, offset+length), in order, without gaps. */
  mapStatus(offset: number, length: number, options?: IoOptions): Promise<Extent[]>;

  /** Called with the new size in bytes whenever the device is resized. Returns an unsubscribe. */
  onResize(listener: (newSize: number) => void): () => void;

  close(): Promise<void>;
}

/**
 * What went wrong, for the SCSI layer's sense mapping (scsi/logical-unit.ts):
 *   io            the medium failed (EIO): MEDIUM ERROR, UNRECOVERED READ ERROR / WRITE ERROR
 *   no-space      the host ran out of space (ENOSPC, EDQUOT): DATA PROTECT, SPACE ALLOCATION
 *                 FAILED WRITE PROTECT
 *   write-back    data an earlier write handed over was lost before it became durable (a
 *                 failed fdatasync): MEDIUM ERROR, WRITE ERROR
 *   out-of-range  ILLEGAL REQUEST, LBA OUT OF RANGE
 *   read-only     DATA PROTECT, WRITE PROTECTED
 *   closed        NOT READY
 *   timeout       the backstore did not answer within the LU's cmd_time_out: NOT READY,
 *                 LOGICAL UNIT COMMUNICATION FAILURE (as LIO/tcmu after cmd_time_out)
 *   aborted       the operation was cancelled through its AbortSignal (a TMF, nexus loss)
 *   unsupported   the backstore cannot do this at all (e.g. discard on a device node)
 */
export type BlockDeviceErrorKind =
  | 'io' | 'no-space' | 'write-back' | 'out-of-range' | 'read-only' | 'closed' | 'timeout' | 'aborted' | 'unsupported';

/** Typed errors a backstore throws; the SCSI layer (and only it) maps them to sense data. */
export class BlockDeviceError extends Error {
  constructor(
    message: string,
    readonly kind: BlockDeviceErrorKind,
    /** Which way data was going (an 'io' error is a read or a write error); set by GuardedDevice. */
    readonly direction?: 'read' | 'write',
  ) {
    super(message);
    this.name = 'BlockDeviceError';
  }
}

/** errno codes and what they mean to an initiator. */
const ERRNO_KINDS: Readonly<Record<string, BlockDeviceErrorKind>> = {
  ENOSPC: 'no-space',
  EDQUOT: 'no-space',
  EROFS: 'read-only',
  EBADF: 'closed',
  ECANCELED: 'aborted',
  ETIMEDOUT: 'timeout',
  EOPNOTSUPP: 'unsupported',
  ENOTSUP: 'unsupported',
};

/**
 * Turn whatever a backstore operation rejected with into a BlockDeviceError: typed errors
 * pass through, errno errors are mapped (ENOSPC -> no-space, EIO and the rest -> io). A
 * failed flush lost data already handed over: write-back, unless it says why (no space).
 */
export function toBlockDeviceError(e: unknown, name: string, op: string): BlockDeviceError {
  if (e instanceof BlockDeviceError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const message = `${op} on ${name} failed: ${err?.message ?? String(e)}`;
  const kind = (code !== undefined ? ERRNO_KINDS[code] : undefined) ?? 'io';
  return new BlockDeviceError(message, op === 'flush' && kind === 'io' ? 'write-back' : kind);
}

/** Largest buffer a pattern is expanded into (WRITE SAME, SANITIZE OVERWRITE). */
export const PATTERN_CHUNK_BYTES = 1 << 20;

/**
 * `pattern` repeated into one buffer of whole patterns, at most max(PATTERN_CHUNK_BYTES,
 * one pattern) and at most `length` (rounded up to a pattern): WRITE SAME writes it again
 * and again. The one pattern expansion of the project.
 */
export function expandPattern(pattern: Buffer, length: number): Buffer {
  if (pattern.length === 0) throw new RangeError('empty pattern');
  const reps = Math.max(1, Math.floor(Math.min(length, PATTERN_CHUNK_BYTES) / pattern.length));
  if (reps === 1) return pattern;
  const chunk = Buffer.allocUnsafe(reps * pattern.length);
  pattern.copy(chunk, 0);
  // Doubling copies: log2(reps) memcpys instead of one per pattern.
  for (let filled = pattern.length; filled < chunk.length; filled *= 2) {
    chunk.copy(chunk, filled, 0, Math.min(filled, chunk.length - filled));
  }
  return chunk;
}
