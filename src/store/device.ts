/**
 * Store images as BlockDevices: the head (read-write, or read-only) and snapshots (always
 * read-only). Thin wrappers over the shared ImageState of the image; errors become
 * BlockDeviceErrors the SCSI layer maps to sense data.
 */
import { AtomicJournal, JournalTarget, MAX_JOURNALED_ATOMIC_WRITE } from '../block/atomic-journal';
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, WriteOptions, expandPattern } from '../block/block-device';
import { isZero } from './fsutil';
import { ImageState, WriterMode } from './image';
import { StoreError } from './errors';

export interface StoreImageDevice extends BlockDevice {
  readonly pool: string;
  readonly image: string;
  readonly imageId: string;
  /** Snapshot name when this device is a snapshot. */
  readonly snapshot: string | undefined;
}

function toBlockError(name: string, e: unknown): BlockDeviceError {
  if (e instanceof BlockDeviceError) return e;
  if (e instanceof StoreError) {
    if (e.kind === 'invalid-argument') return new BlockDeviceError(`${name}: ${e.message}`, 'out-of-range');
    if (e.kind === 'read-only') return new BlockDeviceError(`${name}: ${e.message}`, 'read-only');
    return new BlockDeviceError(`${name}: ${e.message}`, 'io');
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') return new BlockDeviceError(`${name}: ${err.message}`, 'no-space');
  return new BlockDeviceError(`${name}: ${err?.message ?? String(e)}`, 'io');
}

/**
 * A head write within one page that lies in one object is a single pwrite of the head file
 * (after any copy-on-write of that object), so it is atomic; with fancy striping a page may
 * span stripe units of different objects, so the unit shrinks to the stripe unit.
 */
function singleWriteUnit(state: ImageState): number {
  const layout = state.layout;
  return layout.simple ? PAGE_SIZE : Math.min(PAGE_SIZE, layout.stripeUnit);
}

const EXCLUSIVE_WRITER_ATOMIC_WRITES = { atomicWriteBytes: MAX_JOURNALED_ATOMIC_WRITE, atomicWriteAlignment: 0 } as const;

/**
 * What the image's exclusive writer offers, given a reader's capabilities of it: discard and the
 * journaled atomic writes (a gateway that does not own the image yet announces what the owner does).
 */
export function exclusiveWriterCapabilities(reader: BlockDeviceCapabilities): BlockDeviceCapabilities {
  return { ...reader, discard: true, ...EXCLUSIVE_WRITER_ATOMIC_WRITES };
}

function atomicWrites(state: ImageState): Pick<BlockDeviceCapabilities, 'atomicWriteBytes' | 'atomicWriteAlignment'> {
  const unit = singleWriteUnit(state);
  return { atomicWriteBytes: unit, atomicWriteAlignment: unit };
}
const PAGE_SIZE = 4096;

abstract class BaseDevice implements StoreImageDevice {
  protected closed = false;
  private readonly unsubscribes = new Set<() => void>();

  constructor(
    protected readonly state: ImageState,
    readonly name: string,
    readonly pool: string,
    readonly image: string,
    readonly snapshot: string | undefined,
    readonly readOnly: boolean,
    readonly capabilities: BlockDeviceCapabilities,
  ) {}

  get imageId(): string {
    return this.state.id;
  }

  abstract size(): number;
  protected abstract readonly snapId: number | null;

  protected live(write: boolean): void {
    if (this.closed) throw new BlockDeviceError(`${this.name} is closed`, 'closed');
    if (write && this.readOnly) throw new BlockDeviceError(`${this.name} is read-only`, 'read-only');
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    // Not async: the read path is hot and every await level costs a microtask.
    if (this.closed) return Promise.reject(new BlockDeviceError(`${this.name} is closed`, 'closed'));
    const buf = into ?? Buffer.allocUnsafe(length);
    if (buf.length < length) return Promise.reject(new BlockDeviceError(`${this.name}: read buffer of ${buf.length} bytes is shorter than ${length}`, 'io'));
    return this.state.read(this.snapId, offset, length, buf, 0).then(
      () => buf,
      (e: unknown) => {
        throw toBlockError(this.name, e);
      },
    );
  }

  async mapStatus(offset: number, length: number): Promise<Extent[]> {
    this.live(false);
    try {
      return await this.state.mapStatus(this.snapId, offset, length);
    } catch (e) {
      throw toBlockError(this.name, e);
    }
  }

  /** Set on an exclusively opened head: makes atomic writes larger than one unit crash-safe. */
  protected journal: AtomicJournal | undefined;

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.live(true);
    try {
      if (options?.atomic && this.journal) {
        const unit = singleWriteUnit(this.state);
        if (Math.floor(offset / unit) !== Math.floor((offset + data.length - 1) / unit)) {
          await this.journal.write(offset, data, this.inPlace);
          return;
        }
      }
      await this.state.write(offset, data, options?.fua ?? false);
    } catch (e) {
      throw toBlockError(this.name, e);
    }
  }

  /** How the atomic journal writes in place (through copy-on-write) and makes it durable. */
  protected readonly inPlace: JournalTarget = {
    apply: (offset, data) => this.state.write(offset, data, false),
    flush: () => this.state.flush(),
  };

  async flush(): Promise<void> {
    this.live(false);
    if (this.readOnly) return;
    try {
      await this.state.flush();
    } catch (e) {
      throw toBlockError(this.name, e);
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.live(true);
    try {
      await this.state.modifyRange('punch', offset, length, false);
    } catch (e) {
      throw toBlockError(this.name, e);
    }
  }

  async writeSame(offset: number, length: number, pattern: Buffer, options?: { deallocate?: boolean; fua?: boolean }): Promise<void> {
    this.live(true);
    if (pattern.length === 0 || length % pattern.length !== 0) {
      throw new BlockDeviceError(`${this.name}: WRITE SAME length ${length} is not a multiple of the pattern (${pattern.length} bytes)`, 'io');
    }
    try {
      if (isZero(pattern)) {
        await this.state.modifyRange(options?.deallocate ? 'punch' : 'zero', offset, length, options?.fua ?? false);
        return;
      }
      this.state.checkRange(offset, length, this.size());
      const chunk = expandPattern(pattern, length);
      for (let done = 0; done < length; ) {
        const n = Math.min(chunk.length, length - done);
        await this.state.write(offset + done, n === chunk.length ? chunk : chunk.subarray(0, n), false);
        done += n;
      }
      if (options?.fua) await this.state.flush();
    } catch (e) {
      throw toBlockError(this.name, e);
    }
  }

  onResize(listener: (newSize: number) => void): () => void {
    const off = this.state.onResize(listener);
    this.unsubscribes.add(off);
    return () => {
      off();
      this.unsubscribes.delete(off);
    };
  }

  protected async releaseState(): Promise<void> {
    for (const u of this.unsubscribes) u();
    this.unsubscribes.clear();
    await this.state.release();
  }

  abstract close(): Promise<void>;
}

/** The image head. */
export class HeadDevice extends BaseDevice {
  protected readonly snapId = null;

  constructor(
    state: ImageState,
    name: string,
    pool: string,
    image: string,
    private readonly writer: WriterMode | undefined,
  ) {
    super(state, name, pool, image, undefined, writer === undefined, {
      discard: writer !== undefined,
      discardZeroes: true,
      mapStatus: true,
      // Image data lives in files of the host file system: its 4 KiB block is the unit below
      // which a write is a read-modify-write (LBPPBE), as for a file backstore.
      physicalBlockBytes: 4096,
      // The exclusive writer owns the image's atomic-write journal; a shared writer cannot.
      ...(writer === 'exclusive' ? EXCLUSIVE_WRITER_ATOMIC_WRITES : atomicWrites(state)),
    });
  }

  /** Open the atomic-write journal, replaying a write a crash interrupted. */
  async openJournal(): Promise<void> {
    if (this.writer === 'exclusive') this.journal = await AtomicJournal.open(this.state.paths.atomicJournal, this.inPlace);
  }

  size(): number {
    return this.state.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.journal?.close();
    if (this.writer) {
      await this.state.flush().catch(() => undefined);
      await this.state.removeWriter(this.writer);
    }
    await this.releaseState();
  }
}

/** A snapshot, read-only, of fixed size. */
export class SnapshotDevice extends BaseDevice {
  private readonly sizeBytes: number;

  constructor(
    state: ImageState,
    name: string,
    pool: string,
    image: string,
    snapshot: string,
    protected readonly snapId: number,
  ) {
    super(state, name, pool, image, snapshot, true, { discard: false, discardZeroes: true, mapStatus: true, ...atomicWrites(state) });
    this.sizeBytes = state.sizeOf(snapId);
    state.noteSnapshotOpen(snapId, 1);
  }

  size(): number {
    return this.sizeBytes;
  }

  /** A snapshot never changes size: resizing the image resizes only its head. */
  override onResize(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state.noteSnapshotOpen(this.snapId, -1);
    await this.releaseState();
  }
}
