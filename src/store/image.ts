/**
 * ImageState: everything one process knows about one open image, shared by all its handles
 * (the head device, snapshot devices, clones reading it as their parent). It owns the data
 * path. This file is its life cycle (open, register as a watcher, reload, close); the layers
 * it is built from are image-core.ts (state, pins, write gate), image-io.ts (reads, writes,
 * copy-on-write, copy-up), image-writers.ts (writer locks, object map, leftovers) and
 * image-maintenance.ts (shrink, flatten, snapshot merge, du); image-generation.ts holds the
 * immutable per-reload view.
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
import { ByteMap } from './bytemap';
import { ImagePaths } from './disk';
import { isErrno, StoreError } from './errors';
import { closeFd, openFd } from './fsutil';
import { ImageHeader, readHeader } from './header';
import { Generation, ParentLink, Res, SnapEntry, SnapFiles, StoreContext } from './image-generation';
import { ImageMaintenance } from './image-maintenance';
import { Layout } from './layout';
import { FileLock, KeyedMutex, ObjectLocks } from './locks';
import { Agent, WatchHandler } from './watch';

export type { Segment, StoreContext, WriterMode } from './image-generation';

const registry = new Map<string, ImageState>();
const registryLock = new KeyedMutex<string>();

export class ImageState extends ImageMaintenance implements WatchHandler {
  private refs = 0;
  private reloading: Promise<void> = Promise.resolve();

  private constructor(ctx: StoreContext, pool: string, id: string, paths: ImagePaths) {
    super(ctx, pool, id, paths);
  }

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

  // ---------------------------------------------------------------- watch handler (reload)

  async unquiesce(): Promise<void> {
    await this.reload().catch(() => undefined); // a failed reload marks the state broken
    this.resume();
  }

  reload(): Promise<void> {
    const p = this.reloading.then(() => this.doReload());
    this.reloading = p.catch(() => undefined);
    return p;
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
}
