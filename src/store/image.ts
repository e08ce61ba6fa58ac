/**
 * ImageState: everything one process knows about one open image, shared by all its handles
 * (the head device, snapshot devices, clones reading it as their parent). It owns the data
 * path:
 *
 *  - The head is one sparse file addressed by image offset. A write that needs no
 *    copy-on-write and no copy-up is one pwrite (the fast path; an in-memory check decides).
 *  - Snapshot S is created in O(1) (an empty sparse file plus an all-zero per-object map).
 *    The first head write to object N after the newest snapshot L copies N's current bytes
 *    into L's file (fdatasync), marks N preserved in L's map (fdatasync), and only then
 *    writes the head. Reading object N of snapshot S: the oldest snapshot >= S that preserved
 *    N, else the head.
 *  - A clone has its own head; objects it does not own (copy-up map 0) read through to the
 *    parent snapshot (up to the overlap). The first write to such an object copies the
 *    parent's bytes in, merges the write, fdatasyncs, and only then sets the owned bit.
 *  - A snapshot of a clone records "was the parent's" (PMAP_PARENT) instead of copying.
 *
 * Metadata (the header) changes only through ImageStore operations that hold the image's
 * meta lock, quiesce writers in every process and make them reload. Each reload makes a new
 * immutable Generation; I/O pins the generation it started with, so files a reload retires
 * are closed only when no I/O uses them any more.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { allocExtents, copyRange, punchHole, zeroRange } from '../sys/native';
import { Extent } from '../block/block-device';
import { Logger } from '../util/log';
import { ByteMap } from './bytemap';
import { CMAP_OWNED, CMAP_PARENT, ImagePaths, PMAP_DATA, PMAP_NONE, PMAP_PARENT } from './disk';
import { isErrno, StoreError } from './errors';
import { FeatureName } from './features';
import { closeFd, ftruncate, openFd } from './fsutil';
import { fdatasync } from '../sys/durable';
import { preadFull, pwriteFull } from '../sys/io';
import { ImageHeader, readHeader, SnapshotMeta } from './header';
import { Layout } from './layout';
import { FileLock, KeyedMutex, ObjectLocks } from './locks';
import { ObjectMap, OMAP_NONEXISTENT } from './object-map';
import { Agent, listWatchers, Registration, WatchHandler } from './watch';

export interface StoreContext {
  readonly root: string;
  readonly client: string;
  readonly log: Logger;
  imagePaths(pool: string, id: string): ImagePaths;
}

/** A reference-counted resource shared by generations. */
class Res<T> {
  private refs = 1;
  constructor(
    readonly value: T,
    private readonly dispose: () => Promise<void>,
  ) {}
  retain(): this {
    this.refs++;
    return this;
  }
  async release(): Promise<void> {
    if (--this.refs === 0) await this.dispose();
  }
}

interface SnapFiles {
  readonly dataFd: number;
  readonly pmap: ByteMap;
}

interface SnapEntry {
  readonly meta: SnapshotMeta;
  readonly count: number;
  readonly res: Res<SnapFiles>;
}

interface ParentLink {
  readonly res: Res<ImageState>;
  readonly snapId: number;
  readonly overlap: number;
}

class Generation {
  pins = 0;
  retired = false;
  readonly count: number;
  /** Newest active snapshot: where the head's copy-on-write goes. */
  readonly cowTarget: SnapEntry | undefined;
  /** Snapshots newer than cowTarget that are being removed (still hold preserved data). */
  readonly cowAlso: SnapEntry[];
  readonly snapById: Map<number, SnapEntry>;

  constructor(
    readonly header: ImageHeader,
    readonly layout: Layout,
    readonly snaps: SnapEntry[],
    readonly parent: ParentLink | null,
    readonly cmap: Res<ByteMap> | null,
  ) {
    this.count = layout.objectCount(header.size);
    this.snapById = new Map(snaps.map((s) => [s.meta.id, s]));
    let target = -1;
    for (let i = snaps.length - 1; i >= 0; i--) {
      if (snaps[i].meta.state === 'active') {
        target = i;
        break;
      }
    }
    this.cowTarget = target >= 0 ? snaps[target] : undefined;
    this.cowAlso = snaps.slice(target + 1);
  }

  get size(): number {
    return this.header.size;
  }

  hasFeature(f: FeatureName): boolean {
    return this.header.features.includes(f);
  }

  async dispose(): Promise<void> {
    for (const s of this.snaps) await s.res.release();
    if (this.parent) await this.parent.res.release();
    if (this.cmap) await this.cmap.release();
  }
}

/** A data source for one piece of an image view. */
type Src = { k: 'file'; fd: number } | { k: 'parent'; overlap: number } | { k: 'zero' };

/** A resolved byte range: from a file at the same offset, or zeros (fd -1). */
export interface Segment {
  readonly fd: number;
  readonly off: number;
  readonly len: number;
}

interface Check {
  readonly auth: boolean;
  readonly maps: ByteMap[];
  readonly first: number;
  readonly last: number;
  readonly copies: Buffer[];
}

type ModifyOp = { kind: 'data'; off: number; len: number; data: Buffer } | { kind: 'punch' | 'zero'; off: number; len: number };

export type WriterMode = 'exclusive' | 'shared';

const registry = new Map<string, ImageState>();
const registryLock = new KeyedMutex<string>();

export class ImageState implements WatchHandler {
  private gen!: Generation;
  private headFd = -1;
  private objLocks!: ObjectLocks;
  private refs = 0;
  private registration: Registration | undefined;
  private agent: Agent | undefined;
  private exclusiveLock: FileLock | undefined;
  private sharedLock: FileLock | undefined;
  private writers = { exclusive: 0, shared: 0 };
  private omap: ObjectMap | undefined;
  private omapTimer: NodeJS.Timeout | undefined;
  private gateClosed = 0;
  private gateWaiters: Array<() => void> = [];
  private inflight = 0;
  private drainWaiters: Array<() => void> = [];
  private reloading: Promise<void> = Promise.resolve();
  private broken: Error | undefined;
  private readonly resizeListeners = new Set<(size: number) => void>();
  private readonly openSnaps = new Map<number, number>();
  private closed = false;

  private constructor(
    readonly ctx: StoreContext,
    readonly pool: string,
    readonly id: string,
    readonly paths: ImagePaths,
  ) {}

  // ---------------------------------------------------------------- lifecycle

  /** The open state of pool/id in this process (opened and registered as a watcher if needed). */
  static async acquire(ctx: StoreContext, pool: string, id: string, opts: { metaLockHeld?: boolean } = {}): Promise<ImageState> {
    const paths = ctx.imagePaths(pool, id);
    const release = await registryLock.lock(paths.dir);
    try {
      let s = registry.get(paths.dir);
      if (!s) {
        s = new ImageState(ctx, pool, id, paths);
        await s.init(opts.metaLockHeld ?? false);
        registry.set(paths.dir, s);
      }
      s.refs++;
      return s;
    } finally {
      release();
    }
  }

  /** Number of images open in this process. */
  static openCount(): number {
    return registry.size;
  }

  /** The state of an image directory if this process has it open. */
  static lookup(dir: string): ImageState | undefined {
    return registry.get(dir);
  }

  /** Drop one reference; the last one closes files, locks and the watcher registration. */
  async release(): Promise<void> {
    const unlock = await registryLock.lock(this.paths.dir);
    try {
      if (--this.refs > 0) return;
      registry.delete(this.paths.dir);
      await this.shutdown();
    } finally {
      unlock();
    }
  }

  private async init(metaLockHeld: boolean): Promise<void> {
    // Open and register under the meta lock, so no metadata operation runs between reading
    // the header and becoming a watcher that operations will notify.
    const meta = metaLockHeld
      ? undefined
      : await FileLock.acquire(this.paths.metaLock, 'exclusive', {
          busyMessage: () => `image ${this.pool}/${this.id}: metadata is locked by another process (timed out)`,
        });
    try {
      const header = await readHeader(this.paths.header);
      try {
        this.headFd = await openFd(this.paths.head, 'r+');
      } catch (e) {
        if (isErrno(e, 'ENOENT')) throw new StoreError(`image ${this.pool}/${header.name}: data file ${this.paths.head} is missing`, 'corrupt');
        if (!isErrno(e, 'EACCES') && !isErrno(e, 'EROFS')) throw e;
        this.headFd = await openFd(this.paths.head, 'r');
      }
      this.objLocks = new ObjectLocks(this.paths.objectsLock);
      this.gen = await this.build(header, undefined);
      this.agent = await Agent.get(this.ctx.root);
      this.registration = await this.agent.register(this.paths.dir, this, { client: this.ctx.client, mode: 'read' });
    } catch (e) {
      await this.shutdown().catch(() => undefined);
      throw e;
    } finally {
      meta?.release();
    }
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    if (this.omapTimer) clearInterval(this.omapTimer);
    if (this.omap) await this.omap.close().catch((e) => this.ctx.log.warn({ err: e }, 'object map write-back failed'));
    this.omap = undefined;
    this.exclusiveLock?.release();
    this.sharedLock?.release();
    this.exclusiveLock = this.sharedLock = undefined;
    if (this.registration && this.agent) this.agent.unregister(this.paths.dir, this.registration);
    this.registration = undefined;
    if (this.gen) {
      this.gen.retired = true;
      if (this.gen.pins === 0) await this.gen.dispose();
    }
    this.objLocks?.close();
    if (this.headFd >= 0) await closeFd(this.headFd);
    this.headFd = -1;
  }

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

  private async build(header: ImageHeader, prev: Generation | undefined): Promise<Generation> {
    const layout = new Layout(2 ** header.order, header.stripeUnit, header.stripeCount);
    const created: Array<Res<unknown>> = [];
    try {
      const snaps: SnapEntry[] = [];
      for (const meta of [...header.snapshots].sort((a, b) => a.id - b.id)) {
        const count = layout.objectCount(meta.size);
        const old = prev?.snapById.get(meta.id);
        if (old) {
          await old.res.value.pmap.refresh();
          snaps.push({ meta, count, res: old.res.retain() });
          continue;
        }
        const dataFd = await openFd(this.paths.snapData(meta.id), 'r+').catch(async (e) => {
          if (isErrno(e, 'ENOENT')) throw new StoreError(`snapshot ${meta.name}: ${this.paths.snapData(meta.id)} is missing`, 'corrupt');
          if (isErrno(e, 'EACCES') || isErrno(e, 'EROFS')) return openFd(this.paths.snapData(meta.id), 'r');
          throw e;
        });
        let pmap: ByteMap;
        try {
          pmap = await ByteMap.open(this.paths.snapMap(meta.id), count, true);
        } catch (e) {
          await closeFd(dataFd);
          throw e;
        }
        const res = new Res<SnapFiles>({ dataFd, pmap }, async () => {
          await pmap.close();
          await closeFd(dataFd);
        });
        created.push(res);
        snaps.push({ meta, count, res });
      }
      let parent: ParentLink | null = null;
      let cmap: Res<ByteMap> | null = null;
      if (header.parent) {
        const p = header.parent;
        const count = layout.objectCount(header.size);
        if (prev?.parent && prev.header.parent && prev.header.parent.imageId === p.imageId && prev.header.parent.pool === p.pool && prev.parent.snapId === p.snapId) {
          parent = { res: prev.parent.res.retain(), snapId: p.snapId, overlap: p.overlap };
        } else {
          const ps = await ImageState.acquire(this.ctx, p.pool, p.imageId);
          const res = new Res(ps, () => ps.release());
          created.push(res);
          parent = { res, snapId: p.snapId, overlap: p.overlap };
          if (!ps.header.snapshots.some((s) => s.id === p.snapId)) {
            throw new StoreError(`parent snapshot id ${p.snapId} of image ${header.name} no longer exists in ${p.pool}/${ps.header.name}`, 'corrupt');
          }
        }
        if (prev?.cmap) {
          await prev.cmap.value.adopt(count);
          cmap = prev.cmap.retain();
        } else {
          const m = await ByteMap.open(this.paths.cmap, count, true);
          cmap = new Res(m, () => m.close());
          created.push(cmap);
        }
      }
      return new Generation(header, layout, snaps, parent, cmap);
    } catch (e) {
      for (const r of created) await r.release().catch(() => undefined);
      throw e;
    }
  }

  // ---------------------------------------------------------------- watch handler

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

  async unquiesce(): Promise<void> {
    await this.reload().catch(() => undefined); // a failed reload marks the state broken
    this.resume();
  }

  reload(): Promise<void> {
    const p = this.reloading.then(() => this.doReload());
    this.reloading = p.catch(() => undefined);
    return p;
  }

  snapshotInUse(snapId: number): boolean {
    return (this.openSnaps.get(snapId) ?? 0) > 0;
  }

  private async doReload(): Promise<void> {
    if (this.closed) return;
    let header: ImageHeader;
    let next: Generation;
    try {
      header = await readHeader(this.paths.header);
      next = await this.build(header, this.gen);
    } catch (e) {
      // Writing with stale metadata could break a snapshot: fail I/O until a reload succeeds.
      this.broken = e as Error;
      this.ctx.log.error({ err: e, image: `${this.pool}/${this.id}` }, 'image reload failed; I/O disabled');
      throw e;
    }
    this.broken = undefined;
    const old = this.gen;
    this.gen = next;
    old.retired = true;
    if (old.pins === 0) await old.dispose();
    await this.syncObjectMap(old, next);
    if (old.size !== next.size) {
      for (const l of this.resizeListeners) {
        try {
          l(next.size);
        } catch (e) {
          this.ctx.log.warn({ err: e }, 'resize listener failed');
        }
      }
    }
  }

  onResize(listener: (size: number) => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }

  // ---------------------------------------------------------------- writers and locks

  /** Become a writer. Exclusive: nobody else may write; shared: other shared writers may. */
  async addWriter(mode: WriterMode): Promise<void> {
    if (this.headFd < 0) throw new StoreError('image is closed', 'io');
    if (mode === 'exclusive') {
      if (this.writers.exclusive > 0 || this.writers.shared > 0) {
        throw new StoreError(`image ${this.pool}/${this.gen.header.name} is already open for writing in this process`, 'busy');
      }
      const lock = FileLock.tryAcquire(this.paths.exclusiveLock, 'exclusive');
      if (!lock) throw new StoreError(await this.busyMessage(), 'busy');
      this.exclusiveLock = lock;
      this.writers.exclusive++;
      try {
        await this.recoverLeftovers();
        // We may have been a reader with stale caches; from now on memory is the truth.
        await this.refreshMaps(this.gen);
        await this.openObjectMap();
        await this.reRegister('write-exclusive');
      } catch (e) {
        await this.removeWriter('exclusive');
        throw e;
      }
      return;
    }
    if (this.writers.exclusive > 0) {
      throw new StoreError(`image ${this.pool}/${this.gen.header.name} is open exclusively in this process`, 'busy');
    }
    if (this.writers.shared === 0) {
      const lock = FileLock.tryAcquire(this.paths.exclusiveLock, 'shared');
      if (!lock) throw new StoreError(await this.busyMessage(), 'busy');
      this.sharedLock = lock;
      await ObjectMap.invalidate(this.paths.omap);
      await this.reRegister('write-shared');
    }
    this.writers.shared++;
  }

  async removeWriter(mode: WriterMode): Promise<void> {
    if (mode === 'exclusive') {
      this.writers.exclusive = Math.max(0, this.writers.exclusive - 1);
      if (this.writers.exclusive === 0) {
        if (this.omapTimer) clearInterval(this.omapTimer);
        this.omapTimer = undefined;
        if (this.omap) await this.omap.close().catch((e) => this.ctx.log.warn({ err: e }, 'object map write-back failed'));
        this.omap = undefined;
        this.exclusiveLock?.release();
        this.exclusiveLock = undefined;
        await this.reRegister('read').catch(() => undefined);
      }
    } else {
      this.writers.shared = Math.max(0, this.writers.shared - 1);
      if (this.writers.shared === 0) {
        this.sharedLock?.release();
        this.sharedLock = undefined;
        await this.reRegister('read').catch(() => undefined);
      }
    }
  }

  /**
   * Clean up what interrupted operations leave behind (files of an uncommitted snapshot, a
   * flattened clone's copy-up map, bytes past the end after an interrupted shrink). Runs when
   * a process becomes the exclusive writer, under the meta lock; nothing here is referenced by
   * the committed header, so removing it cannot change any image's content.
   */
  private async recoverLeftovers(): Promise<void> {
    const meta = await FileLock.acquire(this.paths.metaLock, 'exclusive');
    try {
      const h = await readHeader(this.paths.header);
      const snapIds = new Set(h.snapshots.map((x) => x.id));
      const cleaned: string[] = [];
      for (const f of await fsp.readdir(this.paths.dir)) {
        const m = /^snap-(\d+)\.(data|pmap)$/.exec(f);
        const stale = f.startsWith('.tmp-') || (m !== null && !snapIds.has(Number(m[1]))) || (f === 'head.cmap' && !h.parent);
        if (stale) {
          await fsp.rm(`${this.paths.dir}/${f}`, { force: true, recursive: true });
          cleaned.push(f);
        }
      }
      if (fs.fstatSync(this.headFd).size > h.size) {
        await ftruncate(this.headFd, h.size);
        await fdatasync(this.headFd);
        cleaned.push('bytes past the end of head');
      }
      if (cleaned.length > 0) this.ctx.log.info({ image: `${this.pool}/${h.name}`, cleaned }, 'removed leftovers of interrupted operations');
    } finally {
      meta.release();
    }
  }

  /** Rebuild the object map from the head file (after data was placed behind its back). */
  async rescanObjectMap(): Promise<void> {
    if (this.omap) this.omap.replace(await ObjectMap.scan(this.headFd, this.gen.layout, this.gen.size));
  }

  private async busyMessage(): Promise<string> {
    const ws = await listWatchers(this.paths.dir, new Set(this.token ? [this.token] : []));
    const holders = ws.filter((w) => w.info.mode !== 'read');
    const name = `${this.pool}/${this.gen.header.name}`;
    if (holders.length === 0) return `image ${name} is locked by another writer`;
    const h = holders[0].info;
    const kind = h.mode === 'write-exclusive' ? 'exclusively locked' : 'open for shared writing';
    return `image ${name} is ${kind} by pid ${h.pid} on ${h.host}${h.client ? ` (client ${h.client})` : ''} since ${h.since}`;
  }

  private async reRegister(mode: 'read' | 'write-exclusive' | 'write-shared'): Promise<void> {
    if (!this.agent) return;
    const old = this.registration;
    this.registration = await this.agent.register(this.paths.dir, this, { client: this.ctx.client, mode });
    if (old) this.agent.unregister(this.paths.dir, old, true);
  }

  noteSnapshotOpen(snapId: number, delta: 1 | -1): void {
    const n = (this.openSnaps.get(snapId) ?? 0) + delta;
    if (n > 0) this.openSnaps.set(snapId, n);
    else this.openSnaps.delete(snapId);
  }

  private async refreshMaps(g: Generation): Promise<void> {
    for (const s of g.snaps) await s.res.value.pmap.refresh();
    if (g.cmap) await g.cmap.value.refresh();
  }

  private async openObjectMap(): Promise<void> {
    const g = this.gen;
    if (!this.authoritative || !g.hasFeature('object-map')) return;
    this.omap = await ObjectMap.openForOwner(this.paths.omap, this.headFd, g.layout, g.size);
    // Lazy write-back keeps a restart after a clean-ish crash cheap; correctness never needs it.
    this.omapTimer = setInterval(() => {
      this.omap?.persist().catch((e) => this.ctx.log.warn({ err: e }, 'object map write-back failed'));
    }, 5000);
    this.omapTimer.unref();
  }

  private async syncObjectMap(old: Generation, next: Generation): Promise<void> {
    if (!this.authoritative) return;
    const want = next.hasFeature('object-map');
    if (!want && this.omap) {
      if (this.omapTimer) clearInterval(this.omapTimer);
      this.omapTimer = undefined;
      await this.omap.close();
      this.omap = undefined;
      await fsp.rm(this.paths.omap, { force: true });
      return;
    }
    if (want && !this.omap) {
      await this.openObjectMap();
      return;
    }
    if (this.omap && (old.size !== next.size || (old.header.parent !== null) !== (next.header.parent !== null) || old.header.generation !== next.header.generation)) {
      // Sizes or ownership changed under us (resize, flatten elsewhere): rescan.
      this.omap.replace(await ObjectMap.scan(this.headFd, next.layout, next.size));
    }
  }

  // ---------------------------------------------------------------- I/O plumbing

  private pin(): Generation {
    if (this.broken) throw new StoreError(`image ${this.pool}/${this.id} is unusable: ${this.broken.message}`, 'io');
    if (this.closed) throw new StoreError('image is closed', 'io');
    const g = this.gen;
    g.pins++;
    return g;
  }

  private unpin(g: Generation): void {
    if (--g.pins === 0 && g.retired) {
      g.dispose().catch((e) => this.ctx.log.warn({ err: e }, 'closing retired files failed'));
    }
  }

  private enterWrite(): Promise<void> | undefined {
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

  private leaveWrite(): void {
    if (--this.inflight === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  private ownedByRule(g: Generation, n: number): boolean {
    return g.parent !== null && g.layout.objectStart(n) >= g.parent.overlap;
  }

  private headSrc(g: Generation, n: number): Src {
    if (g.parent && g.cmap && g.cmap.value.get(n) === CMAP_PARENT && !this.ownedByRule(g, n)) {
      return { k: 'parent', overlap: g.parent.overlap };
    }
    return { k: 'file', fd: this.headFd };
  }

  private src(g: Generation, snapId: number | null, n: number): Src {
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

  /** Maps that decide where [first,last] of a view comes from, captured for validation. */
  private async capture(g: Generation, snapId: number | null, first: number, last: number): Promise<Check | undefined> {
    const maps: ByteMap[] = [];
    if (snapId !== null) for (const s of g.snaps) if (s.meta.id >= snapId && first < s.count) maps.push(s.res.value.pmap);
    if (g.parent && g.cmap) maps.push(g.cmap.value);
    if (maps.length === 0) return undefined;
    const auth = this.authoritative;
    if (!auth) await Promise.all(maps.map((m) => m.refresh(first, last)));
    return { auth, maps, first, last, copies: maps.map((m) => m.slice(first, last)) };
  }

  private static async stillValid(c: Check): Promise<boolean> {
    for (let i = 0; i < c.maps.length; i++) {
      const now = c.auth ? c.maps[i].slice(c.first, c.last) : await c.maps[i].readDisk(c.first, c.last);
      if (!now.equals(c.copies[i])) return false;
    }
    return true;
  }

  /**
   * Resolve [off, off+len) of a view (head when snapId is null) down to file ranges and zeros
   * through snapshots and parents, run fn on them, and re-run it if a concurrent
   * copy-on-write or copy-up changed where the bytes live while fn ran.
   */
  async withSegments<T>(snapId: number | null, off: number, len: number, fn: (segs: Segment[]) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const pins: Array<[ImageState, Generation]> = [];
      const checks: Check[] = [];
      let result: T;
      try {
        const segs: Segment[] = [];
        await this.collect(snapId, off, len, segs, pins, checks);
        result = await fn(segs);
        let ok = true;
        for (const c of checks) if (!(await ImageState.stillValid(c))) ok = false;
        if (ok) return result;
      } finally {
        for (const [s, g] of pins) s.unpin(g);
      }
      if (attempt >= 50) throw new StoreError(`image ${this.pool}/${this.id}: data kept moving during a read`, 'busy');
    }
  }

  private async collect(snapId: number | null, off: number, len: number, out: Segment[], pins: Array<[ImageState, Generation]>, checks: Check[]): Promise<void> {
    const g = this.pin();
    pins.push([this, g]);
    if (len <= 0) return;
    const pieces: Array<[number, number, number]> = [];
    g.layout.forEachPiece(off, len, (n, x, l) => pieces.push([n, x, l]));
    let first = Infinity;
    let last = -1;
    for (const p of pieces) {
      if (p[0] < first) first = p[0];
      if (p[0] > last) last = p[0];
    }
    const c = await this.capture(g, snapId, first, last);
    if (c) checks.push(c);
    let cur: Src | undefined;
    let start = off;
    let end = off;
    const flush = async (): Promise<void> => {
      if (!cur || end <= start) return;
      if (cur.k === 'file') out.push({ fd: cur.fd, off: start, len: end - start });
      else if (cur.k === 'zero') out.push({ fd: -1, off: start, len: end - start });
      else {
        const lim = Math.min(end, cur.overlap);
        if (lim > start && g.parent) await g.parent.res.value.collect(g.parent.snapId, start, lim - start, out, pins, checks);
        const z = Math.max(start, lim);
        if (end > z) out.push({ fd: -1, off: z, len: end - z });
      }
    };
    for (const [n, x, l] of pieces) {
      const s = this.src(g, snapId, n);
      const same = cur !== undefined && cur.k === s.k && x === end && (s.k !== 'file' || (cur as { fd: number }).fd === s.fd) && (s.k !== 'parent' || (cur as { overlap: number }).overlap === s.overlap);
      if (same) {
        end = x + l;
        continue;
      }
      await flush();
      cur = s;
      start = x;
      end = x + l;
    }
    await flush();
  }

  // ---------------------------------------------------------------- reads

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

  read(snapId: number | null, off: number, len: number, buf: Buffer, bufOff = 0): Promise<void> {
    if (this.broken || this.closed) return Promise.reject(new StoreError(`image ${this.pool}/${this.id} is ${this.closed ? 'closed' : `unusable: ${this.broken!.message}`}`, 'io'));
    const g = this.gen;
    if (snapId === null) {
      if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > g.size) {
        return Promise.reject(new StoreError(`range ${off}+${len} is outside the image (${g.size} bytes)`, 'invalid-argument'));
      }
      // The head file lives as long as the state: no generation pin needed. Owned objects
      // stay owned, so a clone whose range is all owned reads its own file too.
      if (!g.parent || this.allOwned(g, off, len)) return preadFull(this.headFd, buf, bufOff, len, off);
    }
    return this.readResolved(snapId, off, len, buf, bufOff);
  }

  private allOwned(g: Generation, off: number, len: number): boolean {
    if (!g.cmap || len === 0) return true;
    const m = g.cmap.value;
    if (g.layout.simple) {
      const os = g.layout.objectSize;
      const last = Math.floor((off + len - 1) / os);
      for (let n = Math.floor(off / os); n <= last; n++) if (m.get(n) !== CMAP_OWNED && !this.ownedByRule(g, n)) return false;
      return true;
    }
    for (const n of g.layout.objectsIn(off, len)) if (m.get(n) !== CMAP_OWNED && !this.ownedByRule(g, n)) return false;
    return true;
  }

  private async readResolved(snapId: number | null, off: number, len: number, buf: Buffer, bufOff: number): Promise<void> {
    const g = this.pin();
    try {
      this.checkRange(off, len, snapId === null ? g.size : (g.snapById.get(snapId)?.meta.size ?? -1));
    } finally {
      this.unpin(g);
    }
    await this.withSegments(snapId, off, len, async (segs) => {
      await Promise.all(
        segs.map((s) => {
          const at = bufOff + (s.off - off);
          if (s.fd < 0) {
            buf.fill(0, at, at + s.len);
            return undefined;
          }
          return preadFull(s.fd, buf, at, s.len, s.off);
        }),
      );
    });
  }

  /** Allocation status of [off, off+len) of a view, gap-free and merged. */
  async mapStatus(snapId: number | null, off: number, len: number): Promise<Extent[]> {
    const out: Extent[] = [];
    const push = (offset: number, length: number, state: Extent['state']): void => {
      if (length <= 0) return;
      const last = out[out.length - 1];
      if (last && last.state === state && last.offset + last.length === offset) {
        out[out.length - 1] = { offset: last.offset, length: last.length + length, state };
      } else out.push({ offset, length, state });
    };
    const g0 = this.pin();
    try {
      this.checkRange(off, len, snapId === null ? g0.size : (g0.snapById.get(snapId)?.meta.size ?? -1));
    } finally {
      this.unpin(g0);
    }
    if (len === 0) return out;
    await this.withSegments(snapId, off, len, async (segs) => {
      out.length = 0;
      for (const s of segs) {
        if (s.fd < 0) {
          push(s.off, s.len, 'deallocated');
          continue;
        }
        for (const [x, l, skip] of this.omapRuns(s)) {
          if (skip) {
            push(x, l, 'deallocated');
            continue;
          }
          let pos = x;
          for (const e of await allocExtents(s.fd, x, l)) {
            push(pos, e.offset - pos, 'deallocated');
            push(e.offset, e.length, 'mapped');
            pos = e.offset + e.length;
          }
          push(pos, x + l - pos, 'deallocated');
        }
      }
    });
    return out;
  }

  /** Split a head segment by the object map: runs of objects known empty need no syscall. */
  private omapRuns(s: Segment): Array<[number, number, boolean]> {
    const om = this.omap;
    if (!om || s.fd !== this.headFd) return [[s.off, s.len, false]];
    const layout = this.gen.layout;
    const runs: Array<[number, number, boolean]> = [];
    layout.forEachPiece(s.off, s.len, (n, x, l) => {
      const empty = om.get(n) === OMAP_NONEXISTENT;
      const last = runs[runs.length - 1];
      if (last && last[2] === empty && last[0] + last[1] === x) last[1] += l;
      else runs.push([x, l, empty]);
    });
    return runs;
  }

  // ---------------------------------------------------------------- writes

  private needsPreserve(g: Generation, n: number): boolean {
    const t = g.cowTarget;
    if (!t || n >= t.count || t.res.value.pmap.get(n) !== PMAP_NONE) return false;
    for (const r of g.cowAlso) if (n < r.count && r.res.value.pmap.get(n) !== PMAP_NONE) return false;
    return true;
  }

  private needsCopyUp(g: Generation, n: number): boolean {
    return g.parent !== null && g.cmap !== null && g.cmap.value.get(n) === CMAP_PARENT && !this.ownedByRule(g, n);
  }

  private fastOK(g: Generation, off: number, len: number): boolean {
    if (!g.cowTarget && !g.parent) return true;
    if (g.layout.simple) {
      const os = g.layout.objectSize;
      const last = Math.floor((off + len - 1) / os);
      for (let n = Math.floor(off / os); n <= last; n++) if (this.needsPreserve(g, n) || this.needsCopyUp(g, n)) return false;
      return true;
    }
    for (const n of g.layout.objectsIn(off, len)) if (this.needsPreserve(g, n) || this.needsCopyUp(g, n)) return false;
    return true;
  }

  private assertWritable(): void {
    if (!this.isWriterHere) throw new StoreError('image is not open for writing', 'read-only');
  }

  async write(off: number, data: Buffer, fua: boolean): Promise<void> {
    this.assertWritable();
    const w = this.enterWrite();
    if (w) await w;
    let g: Generation | undefined;
    try {
      g = this.pin();
      const len = data.length;
      this.checkRange(off, len, g.size);
      if (len === 0) return;
      if (this.omap) {
        if (g.layout.simple) this.omap.markExists(g.layout.objectOf(off), g.layout.objectOf(off + len - 1));
        else this.omap.markExistsList(g.layout.objectsIn(off, len));
      }
      if (this.fastOK(g, off, len)) await pwriteFull(this.headFd, data, 0, len, off);
      else await this.slowModify(g, { kind: 'data', off, len, data });
      if (fua) await fdatasync(this.headFd);
    } finally {
      if (g) this.unpin(g);
      this.leaveWrite();
    }
  }

  /** Deallocate (punch) or zero-with-provisioning a range, honouring snapshots and parents. */
  async modifyRange(kind: 'punch' | 'zero', off: number, len: number, fua: boolean): Promise<void> {
    this.assertWritable();
    const w = this.enterWrite();
    if (w) await w;
    let g: Generation | undefined;
    try {
      g = this.pin();
      this.checkRange(off, len, g.size);
      if (len === 0) return;
      if (kind === 'zero' && this.omap) this.omap.markExistsList(g.layout.objectsIn(off, len));
      if (this.fastOK(g, off, len)) await this.applyPiece(kind, off, len, undefined, 0);
      else await this.slowModify(g, { kind, off, len });
      if (fua) await fdatasync(this.headFd);
    } finally {
      if (g) this.unpin(g);
      this.leaveWrite();
    }
  }

  async flush(): Promise<void> {
    if (this.broken) throw new StoreError(`image ${this.pool}/${this.id} is unusable: ${this.broken.message}`, 'io');
    await fdatasync(this.headFd);
  }

  private async applyPiece(kind: ModifyOp['kind'], x: number, l: number, data: Buffer | undefined, dataOff: number): Promise<void> {
    if (kind === 'data') await pwriteFull(this.headFd, data!, x - dataOff, l, x);
    else if (kind === 'punch') await punchHole(this.headFd, x, l);
    else await zeroOrWrite(this.headFd, x, l);
  }

  private async slowModify(g: Generation, op: ModifyOp): Promise<void> {
    const byObject = new Map<number, Array<[number, number]>>();
    g.layout.forEachPiece(op.off, op.len, (n, x, l) => {
      let a = byObject.get(n);
      if (!a) byObject.set(n, (a = []));
      a.push([x, l]);
    });
    for (const [n, pieces] of byObject) {
      const release = await this.objLocks.lock(n);
      try {
        await this.refreshObject(g, n);
        if (this.needsPreserve(g, n)) await this.preserve(g, n);
        if (this.needsCopyUp(g, n)) await this.copyUp(g, n, pieces, op);
        else for (const [x, l] of pieces) await this.applyPiece(op.kind, x, l, op.kind === 'data' ? op.data : undefined, op.off);
      } finally {
        release();
      }
    }
  }

  /** Re-read object n's entries from disk (another process may have set them). */
  private async refreshObject(g: Generation, n: number): Promise<void> {
    const jobs: Array<Promise<void>> = [];
    if (g.cmap) jobs.push(g.cmap.value.refresh(n, n));
    if (g.cowTarget) jobs.push(g.cowTarget.res.value.pmap.refresh(n, n));
    for (const r of g.cowAlso) jobs.push(r.res.value.pmap.refresh(n, n));
    await Promise.all(jobs);
  }

  /** Copy object n's current content into the newest snapshot, durably, before it changes. */
  private async preserve(g: Generation, n: number): Promise<void> {
    const t = g.cowTarget!;
    const files = t.res.value;
    if (this.headSrc(g, n).k === 'parent') {
      // The clone still reads this object from its parent: record that, copy nothing.
      await files.pmap.setDurable([n], PMAP_PARENT);
      return;
    }
    for (const [x, l] of g.layout.objectExtents(n, g.size)) await copyRange(this.headFd, x, files.dataFd, x, l, true);
    await fdatasync(files.dataFd);
    await files.pmap.setDurable([n], PMAP_DATA);
  }

  /** Make object n of a clone owned: parent bytes where the op does not write, then the op. */
  private async copyUp(g: Generation, n: number, pieces: Array<[number, number]>, op: ModifyOp | undefined): Promise<void> {
    const overlap = g.parent!.overlap;
    for (const [x, l] of g.layout.objectExtents(n, g.size)) {
      for (const [a, b] of subtract([x, x + l], pieces)) {
        const lim = Math.min(b, overlap);
        if (lim > a) await this.copyFromParent(g, a, lim - a, this.headFd);
        if (b > Math.max(a, lim)) await punchHole(this.headFd, Math.max(a, lim), b - Math.max(a, lim));
      }
    }
    if (op) for (const [x, l] of pieces) await this.applyPiece(op.kind, x, l, op.kind === 'data' ? op.data : undefined, op.off);
    await fdatasync(this.headFd);
    await g.cmap!.value.setDurable([n], CMAP_OWNED);
    this.omap?.markExistsList([n]); // parent bytes were copied in, whatever the op was
  }

  /** Copy the parent's bytes of [off, off+len) into `fd` at the same offsets (sparse). */
  private async copyFromParent(g: Generation, off: number, len: number, fd: number, snapOverlapParent?: ParentLink): Promise<void> {
    const p = snapOverlapParent ?? g.parent!;
    await p.res.value.withSegments(p.snapId, off, len, async (segs) => {
      for (const s of segs) {
        if (s.fd < 0) await punchHole(fd, s.off, s.len);
        else await copyRange(s.fd, s.off, fd, s.off, s.len, true);
      }
    });
  }

  // ---------------------------------------------------------------- maintenance (called by ImageStore)

  /** Does object n of snapshot snapId resolve to something other than the head? */
  snapshotDiffers(snapId: number, n: number): boolean {
    const g = this.gen;
    for (const s of g.snaps) {
      if (s.meta.id < snapId || n >= s.count) continue;
      if (s.res.value.pmap.get(n) !== PMAP_NONE) return true;
    }
    return false;
  }

  get layout(): Layout {
    return this.gen.layout;
  }

  /**
   * Before a shrink to newSize (writers quiesced): preserve every object the shrink cuts into
   * the newest snapshot that still needs it.
   */
  async preserveForShrink(newSize: number): Promise<void> {
    const g = this.pin();
    try {
      for (const n of g.layout.objectsCut(newSize, g.size)) {
        const release = await this.objLocks.lock(n);
        try {
          await this.refreshObject(g, n);
          if (this.needsPreserve(g, n)) await this.preserve(g, n);
        } finally {
          release();
        }
      }
    } finally {
      this.unpin(g);
    }
  }

  /**
   * Flatten step 1: copy up every object of the clone's head that still reads from the parent.
   * Runs alongside I/O (per-object locks), in batches sharing one fdatasync.
   */
  async copyUpAll(progress?: (done: number, total: number) => void): Promise<void> {
    const g0 = this.gen;
    const total = g0.count;
    const BATCH = 16;
    for (let n = 0; n < total; ) {
      const w = this.enterWrite();
      if (w) await w;
      const g = this.pin();
      const releases: Array<() => void> = [];
      try {
        if (!g.parent || !g.cmap) return;
        const batch: number[] = [];
        for (; n < Math.min(total, g.count) && batch.length < BATCH; n++) {
          if (this.ownedByRule(g, n) || g.cmap.value.get(n) === CMAP_OWNED) continue;
          const release = await this.objLocks.lock(n);
          releases.push(release);
          await g.cmap.value.refresh(n, n);
          if (g.cmap.value.get(n) === CMAP_OWNED) continue;
          const overlap = g.parent.overlap;
          for (const [x, l] of g.layout.objectExtents(n, g.size)) {
            const lim = Math.min(x + l, overlap);
            if (lim > x) await this.copyFromParent(g, x, lim - x, this.headFd);
            if (x + l > Math.max(x, lim)) await punchHole(this.headFd, Math.max(x, lim), x + l - Math.max(x, lim));
          }
          batch.push(n);
        }
        if (batch.length > 0) {
          await fdatasync(this.headFd);
          await g.cmap.value.setDurable(batch, CMAP_OWNED);
          this.omap?.markExistsList(batch);
        }
        if (g.count < total && n >= g.count) n = total;
      } finally {
        for (const r of releases) r();
        this.unpin(g);
        this.leaveWrite();
      }
      progress?.(Math.min(n, total), total);
    }
  }

  /** Objects of the head that still read from the parent (flatten must reach 0). */
  unownedObjects(): number {
    const g = this.gen;
    if (!g.parent || !g.cmap) return 0;
    let k = 0;
    for (let n = 0; n < g.count; n++) if (!this.ownedByRule(g, n) && g.cmap.value.get(n) === CMAP_PARENT) k++;
    return k;
  }

  /** Flatten step 2 (deep-flatten): give snapshots their own copy of what they read from the parent. */
  async materializeSnapshots(progress?: (done: number, total: number) => void): Promise<void> {
    const g = this.pin();
    try {
      if (!g.parent) return;
      const work: Array<[SnapEntry, number]> = [];
      for (const s of g.snaps) {
        await s.res.value.pmap.refresh();
        for (let n = 0; n < s.count; n++) if (s.res.value.pmap.get(n) === PMAP_PARENT) work.push([s, n]);
      }
      let done = 0;
      for (const s of g.snaps) {
        const mine = work.filter(([e]) => e === s).map(([, n]) => n);
        for (let i = 0; i < mine.length; i += 16) {
          const batch = mine.slice(i, i + 16);
          const link: ParentLink = { res: g.parent.res, snapId: g.parent.snapId, overlap: s.meta.parentOverlap };
          for (const n of batch) {
            const release = await this.objLocks.lock(n);
            try {
              for (const [x, l] of g.layout.objectExtents(n, s.meta.size)) {
                const lim = Math.min(x + l, s.meta.parentOverlap);
                if (lim > x) await this.copyFromParent(g, x, lim - x, s.res.value.dataFd, link);
                if (x + l > Math.max(x, lim)) await punchHole(s.res.value.dataFd, Math.max(x, lim), x + l - Math.max(x, lim));
              }
            } finally {
              release();
            }
          }
          await fdatasync(s.res.value.dataFd);
          await s.res.value.pmap.setDurable(batch, PMAP_DATA);
          done += batch.length;
          progress?.(done, work.length);
        }
      }
    } finally {
      this.unpin(g);
    }
  }

  /**
   * Snapshot removal: move what `snapId` preserved into its predecessor where the predecessor
   * reads through it, so removing it changes no other snapshot's content.
   */
  async mergeIntoPredecessor(snapId: number, progress?: (done: number, total: number) => void): Promise<void> {
    const g = this.pin();
    try {
      const idx = g.snaps.findIndex((s) => s.meta.id === snapId);
      if (idx <= 0) return; // the oldest snapshot: nobody reads through it
      const s = g.snaps[idx];
      const p = g.snaps[idx - 1];
      const sm = s.res.value.pmap;
      const pm = p.res.value.pmap;
      await sm.refresh();
      const todo: number[] = [];
      for (let n = 0; n < Math.min(s.count, p.count); n++) if (sm.get(n) !== PMAP_NONE) todo.push(n);
      let done = 0;
      for (let i = 0; i < todo.length; i += 16) {
        const batch = todo.slice(i, i + 16);
        const releases: Array<() => void> = [];
        const data: number[] = [];
        const parent: number[] = [];
        try {
          for (const n of batch) {
            releases.push(await this.objLocks.lock(n));
            await pm.refresh(n, n);
            if (pm.get(n) !== PMAP_NONE) continue;
            if (sm.get(n) === PMAP_PARENT) {
              parent.push(n);
              continue;
            }
            for (const [x, l] of g.layout.objectExtents(n, Math.min(s.meta.size, p.meta.size))) {
              await copyRange(s.res.value.dataFd, x, p.res.value.dataFd, x, l, true);
            }
            data.push(n);
          }
          if (data.length) await fdatasync(p.res.value.dataFd);
          await pm.setDurable(data, PMAP_DATA);
          await pm.setDurable(parent, PMAP_PARENT);
        } finally {
          for (const r of releases) r();
        }
        done += batch.length;
        progress?.(done, todo.length);
      }
    } finally {
      this.unpin(g);
    }
  }

  /** Bytes allocated in the head file and each snapshot file (du). */
  async usage(): Promise<{ head: number; snaps: Map<number, number> }> {
    const g = this.pin();
    try {
      const head = fs.fstatSync(this.headFd).blocks * 512;
      const snaps = new Map<number, number>();
      for (const s of g.snaps) snaps.set(s.meta.id, fs.fstatSync(s.res.value.dataFd).blocks * 512);
      return { head, snaps };
    } finally {
      this.unpin(g);
    }
  }

  /** The file descriptor of the head (for export/copy fast paths of plain images). */
  get headDescriptor(): number {
    return this.headFd;
  }
}

/** Parts of [a, b) not covered by the pieces. */
function subtract(range: [number, number], pieces: Array<[number, number]>): Array<[number, number]> {
  let out: Array<[number, number]> = [range];
  for (const [x, l] of pieces) {
    const next: Array<[number, number]> = [];
    for (const [a, b] of out) {
      if (x + l <= a || x >= b) {
        next.push([a, b]);
        continue;
      }
      if (x > a) next.push([a, x]);
      if (x + l < b) next.push([x + l, b]);
    }
    out = next;
  }
  return out;
}

const ZEROS = Buffer.alloc(1 << 20);
async function zeroOrWrite(fd: number, off: number, len: number): Promise<void> {
  try {
    await zeroRange(fd, off, len);
  } catch (e) {
    if (!isErrno(e, 'EOPNOTSUPP')) throw e;
    for (let done = 0; done < len; ) {
      const n = Math.min(ZEROS.length, len - done);
      await pwriteFull(fd, ZEROS, 0, n, off + done);
      done += n;
    }
  }
}
