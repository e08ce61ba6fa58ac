/**
 * ImageCore: the state one process keeps for one open image, shared by the layers above it
 * (image-io.ts: the data path; image-writers.ts: writer locks and the object map;
 * image-maintenance.ts: flatten, shrink and snapshot-removal work; image.ts: life cycle and
 * reloads). This layer holds the current Generation, pins it for I/O, gates writes while
 * another process changes metadata, and says where an object's bytes come from.
 */
import { CMAP_PARENT, ImagePaths, PMAP_DATA, PMAP_PARENT } from './disk';
import { StoreError } from './errors';
import { Generation, Src, StoreContext } from './image-generation';
import { ImageHeader } from './header';
import { Layout } from './layout';
import { FileLock, ObjectLocks } from './locks';
import { ObjectMap } from './object-map';
import { Agent, Registration, WatchHandler } from './watch';

export abstract class ImageCore implements WatchHandler {
  protected gen!: Generation;
  protected headFd = -1;
  protected objLocks!: ObjectLocks;
  protected registration: Registration | undefined;
  protected agent: Agent | undefined;
  protected exclusiveLock: FileLock | undefined;
  protected sharedLock: FileLock | undefined;
  protected writers = { exclusive: 0, shared: 0 };
  protected omap: ObjectMap | undefined;
  protected omapTimer: NodeJS.Timeout | undefined;
  protected gateClosed = 0;
  protected gateWaiters: Array<() => void> = [];
  protected inflight = 0;
  protected drainWaiters: Array<() => void> = [];
  protected broken: Error | undefined;
  protected readonly resizeListeners = new Set<(size: number) => void>();
  protected readonly openSnaps = new Map<number, number>();
  protected closed = false;

  protected constructor(
    readonly ctx: StoreContext,
    readonly pool: string,
    readonly id: string,
    readonly paths: ImagePaths,
  ) {}

  get header(): ImageHeader {
    return this.gen.header;
  }

  get size(): number {
    return this.gen.size;
  }

  get token(): string | undefined {
    return this.registration?.token;
  }

  /** This process holds the exclusive lock: nobody else changes data or maps behind our back. */
  get authoritative(): boolean {
    return this.exclusiveLock !== undefined;
  }

  get isWriterHere(): boolean {
    return this.writers.exclusive + this.writers.shared > 0;
  }

  get layout(): Layout {
    return this.gen.layout;
  }

  /** The file descriptor of the head (for export/copy fast paths of plain images). */
  get headDescriptor(): number {
    return this.headFd;
  }

  // ---------------------------------------------------------------- write gate (quiesce)

  /** Reload the header, then let writes continue (image.ts). */
  abstract unquiesce(): Promise<void>;

  abstract reload(): Promise<void>;

  async quiesce(): Promise<void> {
    this.gateClosed++;
    if (this.inflight > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  /** Release one quiesce without reloading (the caller reloaded already). */
  resume(): void {
    if (this.gateClosed === 0) return;
    if (--this.gateClosed === 0) {
      const w = this.gateWaiters;
      this.gateWaiters = [];
      for (const f of w) f();
    }
  }

  snapshotInUse(snapId: number): boolean {
    return (this.openSnaps.get(snapId) ?? 0) > 0;
  }

  noteSnapshotOpen(snapId: number, delta: 1 | -1): void {
    const n = (this.openSnaps.get(snapId) ?? 0) + delta;
    if (n > 0) this.openSnaps.set(snapId, n);
    else this.openSnaps.delete(snapId);
  }

  onResize(listener: (size: number) => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }

  // ---------------------------------------------------------------- I/O plumbing

  protected pin(): Generation {
    if (this.broken) throw new StoreError(`image ${this.pool}/${this.id} is unusable: ${this.broken.message}`, 'io');
    if (this.closed) throw new StoreError('image is closed', 'io');
    const g = this.gen;
    g.pins++;
    return g;
  }

  protected unpin(g: Generation): void {
    if (--g.pins === 0 && g.retired) {
      g.dispose().catch((e) => this.ctx.log.warn({ err: e }, 'closing retired files failed'));
    }
  }

  protected enterWrite(): Promise<void> | undefined {
    if (this.gateClosed === 0) {
      this.inflight++;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      const retry = (): void => {
        if (this.gateClosed === 0) {
          this.inflight++;
          resolve();
        } else this.gateWaiters.push(retry);
      };
      this.gateWaiters.push(retry);
    });
  }

  protected leaveWrite(): void {
    if (--this.inflight === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  protected ownedByRule(g: Generation, n: number): boolean {
    return g.parent !== null && g.layout.objectStart(n) >= g.parent.overlap;
  }

  protected headSrc(g: Generation, n: number): Src {
    if (g.parent && g.cmap && g.cmap.value.get(n) === CMAP_PARENT && !this.ownedByRule(g, n)) {
      return { k: 'parent', overlap: g.parent.overlap };
    }
    return { k: 'file', fd: this.headFd };
  }

  protected src(g: Generation, snapId: number | null, n: number): Src {
    if (snapId !== null) {
      for (const s of g.snaps) {
        if (s.meta.id < snapId || n >= s.count) continue;
        const v = s.res.value.pmap.get(n);
        if (v === PMAP_DATA) return { k: 'file', fd: s.res.value.dataFd };
        if (v === PMAP_PARENT) return { k: 'parent', overlap: s.meta.parentOverlap };
      }
    }
    return this.headSrc(g, n);
  }

  checkRange(off: number, len: number, size: number): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > size) {
      throw new StoreError(`range ${off}+${len} is outside the image (${size} bytes)`, 'invalid-argument');
    }
  }

  sizeOf(snapId: number | null): number {
    if (snapId === null) return this.gen.size;
    const s = this.gen.snapById.get(snapId);
    if (!s) throw new StoreError(`snapshot id ${snapId} no longer exists`, 'not-found');
    return s.meta.size;
  }
}
