/**
 * The embedded image store: pools of thin images with RBD's model (snapshots, protected
 * snapshots, clones, flatten, resize, copy, export/import, locks), on a local file system.
 *
 *   const store = await ImageStore.open(storeRoot(dataDir), { client: 'gw1' });
 *   const dev = await store.openImage('iscsi-images/testvol');             // read-write, exclusive lock
 *   const snap = await store.openImage('iscsi-images/testvol@before');     // read-only snapshot
 *
 * Every metadata change runs under the image's meta lock; changes that affect the data path
 * (snapshot create, shrink) first quiesce writers in every process that has the image open,
 * and all of them make those processes reload the header before they continue
 * (see watch.ts). Metadata files are replaced atomically; data ordering rules are in image-io.ts.
 *
 * The operations are layered by concern, each file one class on top of the one before:
 * store-base.ts (pools, names, the metadata-change protocol) → store-images.ts (create, info,
 * remove, rename, resize, open) → store-snapshots.ts (snapshots, clones, flatten) → this file
 * (opening the store, features, locks, status, du, internals for transfer and check).
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger, silentLogger } from '../util/log';
import { ImagePaths, STORE_FILE, STORE_MAGIC } from './disk';
import { isErrno, StoreError } from './errors';
import { changeFeatures, FeatureName } from './features';
import { writeFileAtomic } from '../sys/durable';
import { activeSnapshots, AdvisoryLock, AdvisoryLocksSchema, ImageHeader, readHeader, WatcherInfo } from './header';
import { ImageState, StoreContext } from './image';
import { FileLock, withFileLock } from './locks';
import { ImageSpec, parseImageSpec, SnapshotPresence } from './names';
import { Agent, listWatchers } from './watch';
import { CreateImageOptions, DiskUsage, ImageStoreOptions, LockInfo, now } from './store-types';
import { StoreSnapshots } from './store-snapshots';

export type { CreateImageOptions, DiskUsage, ImageInfo, ImageStoreOptions, LockInfo, OpenImageOptions, ParentInfo, Progress, SnapshotInfo } from './store-types';

export class ImageStore extends StoreSnapshots {
  private constructor(root: string, client: string, log: Logger) {
    super(root, client, log);
  }

  /** Open (creating if needed) the store at `root` (normally storeRoot(dataDir)). */
  static async open(root: string, options: ImageStoreOptions = {}): Promise<ImageStore> {
    const abs = path.resolve(root);
    await fsp.mkdir(path.join(abs, 'pools'), { recursive: true });
    const file = path.join(abs, STORE_FILE);
    try {
      const j = JSON.parse(await fsp.readFile(file, 'utf8')) as { magic?: string; format?: number };
      if (j.magic !== STORE_MAGIC) throw new StoreError(`${file} is not an iscsi-gateway store`, 'corrupt');
      if (j.format !== 1) throw new StoreError(`${file}: unsupported store format ${String(j.format)} (this version reads 1)`, 'unsupported');
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) {
        if (e instanceof StoreError) throw e;
        throw new StoreError(`${file}: ${(e as Error).message}`, 'corrupt');
      }
      await writeFileAtomic(file, JSON.stringify({ magic: STORE_MAGIC, format: 1, createTime: now() }) + '\n');
    }
    const real = await fsp.realpath(abs);
    return new ImageStore(real, options.client ?? `${os.hostname()}:${process.pid}`, options.logger ?? silentLogger());
  }

  /**
   * Nothing to flush: images are closed through their devices. When no image is open any more
   * in this process, the notification socket is removed too.
   */
  async close(): Promise<void> {
    if (ImageState.openCount() === 0) Agent.shutdownAll();
  }

  // ------------------------------------------------------------------ names and lookups

  static parseSpec(spec: string, options?: { pool?: string; snapshot?: SnapshotPresence }): ImageSpec {
    return parseImageSpec(spec, options);
  }

  // ------------------------------------------------------------------ features, locks, status

  async updateFeatures(spec: string | ImageSpec, names: readonly FeatureName[], enable: boolean): Promise<FeatureName[]> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    return this.imageOp(img, {}, async (h, commit) => {
      const next = changeFeatures(h.features, names, enable);
      await commit({ ...h, features: next });
      if (!next.includes('object-map')) await fsp.rm(img.paths.omap, { force: true });
      return next;
    });
  }

  async listLocks(spec: string | ImageSpec): Promise<LockInfo> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    const ws = await listWatchers(img.paths.dir);
    const owner = ws.find((w) => w.info.mode === 'write-exclusive');
    return {
      owner: owner ? { ...owner.info, token: owner.token } : undefined,
      shared: ws.filter((w) => w.info.mode === 'write-shared').map((w) => ({ ...w.info, token: w.token })),
      advisory: await this.readLocks(img.paths),
    };
  }

  async status(spec: string | ImageSpec): Promise<Array<WatcherInfo & { token: string }>> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    return (await listWatchers(img.paths.dir)).map((w) => ({ ...w.info, token: w.token }));
  }

  protected async readLocks(paths: ImagePaths): Promise<AdvisoryLock[]> {
    try {
      return AdvisoryLocksSchema.parse(JSON.parse(await fsp.readFile(paths.locks, 'utf8')));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return [];
      throw new StoreError(`${paths.locks}: ${(e as Error).message}`, 'corrupt');
    }
  }

  /** rbd lock add: an advisory lock (exclusive, or shared with a tag). */
  async addLock(spec: string | ImageSpec, lockId: string, options: { tag?: string } = {}): Promise<AdvisoryLock> {
    const s = this.toSpec(spec, 'none');
    if (lockId.length === 0) throw new StoreError('lock id is empty', 'invalid-argument');
    const img = await this.resolve(s.pool, s.image);
    return withFileLock(img.paths.metaLock, async () => {
      const locks = await this.readLocks(img.paths);
      const shared = options.tag !== undefined;
      if (locks.some((l) => l.exclusive)) throw new StoreError(`image '${s.pool}/${s.image}' is already locked exclusively`, 'busy');
      if (!shared && locks.length > 0) throw new StoreError(`image '${s.pool}/${s.image}' already has shared locks`, 'busy');
      if (shared && locks.some((l) => l.tag !== options.tag)) throw new StoreError(`image '${s.pool}/${s.image}' has shared locks with a different tag`, 'busy');
      const locker = `client.${process.pid}`;
      if (locks.some((l) => l.id === lockId && l.locker === locker)) throw new StoreError(`lock '${lockId}' is already held by ${locker}`, 'exists');
      const lock: AdvisoryLock = { id: lockId, locker, address: `${os.hostname()}:0/${process.pid}`, exclusive: !shared, tag: options.tag ?? null, since: now() };
      await writeFileAtomic(img.paths.locks, JSON.stringify([...locks, lock], null, 1) + '\n');
      return lock;
    });
  }

  async removeLock(spec: string | ImageSpec, lockId: string, locker: string): Promise<void> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    await withFileLock(img.paths.metaLock, async () => {
      const locks = await this.readLocks(img.paths);
      const rest = locks.filter((l) => !(l.id === lockId && l.locker === locker));
      if (rest.length === locks.length) throw new StoreError(`no lock '${lockId}' held by ${locker} on '${s.pool}/${s.image}'`, 'not-found');
      await writeFileAtomic(img.paths.locks, JSON.stringify(rest, null, 1) + '\n');
    });
  }

  /** Lock owner of an image as the gateway sees it (for ALUA and status pages). */
  async lockOwner(spec: string | ImageSpec): Promise<WatcherInfo | undefined> {
    return (await this.listLocks(spec)).owner;
  }

  // ------------------------------------------------------------------ usage

  /** Provisioned and really allocated bytes per snapshot and head (rbd du). */
  async diskUsage(target: { pool: string; image?: string; snapshot?: string }): Promise<DiskUsage[]> {
    const names = target.image !== undefined ? [target.image] : await this.listImages(target.pool);
    const out: DiskUsage[] = [];
    for (const name of names) {
      const img = await this.resolve(target.pool, name);
      const h = await readHeader(img.paths.header);
      const blocks = async (f: string): Promise<number> => {
        try {
          return (await fsp.stat(f)).blocks * 512;
        } catch (e) {
          if (isErrno(e, 'ENOENT')) return 0;
          throw e;
        }
      };
      const snaps = activeSnapshots(h).sort((a, b) => a.id - b.id);
      if (target.snapshot !== undefined) {
        const sm = this.findSnap(h, target.snapshot, img);
        out.push({ name, snapshot: sm.name, snapshotId: sm.id, provisioned: sm.size, used: await blocks(img.paths.snapData(sm.id)) });
        continue;
      }
      for (const sm of snaps) out.push({ name, snapshot: sm.name, snapshotId: sm.id, provisioned: sm.size, used: await blocks(img.paths.snapData(sm.id)) });
      out.push({ name, provisioned: h.size, used: await blocks(img.paths.head) });
    }
    return out;
  }

  // ------------------------------------------------------------------ internals for transfer/check

  /** @internal */
  get context(): StoreContext {
    return this.ctx;
  }

  /** @internal Resolve a name to its id and paths. */
  async lookup(pool: string, name: string): Promise<{ id: string; paths: ImagePaths }> {
    const r = await this.resolve(pool, name);
    return { id: r.id, paths: r.paths };
  }

  /** @internal Create an image with an explicit shape (copy/import). */
  async createLike(spec: ImageSpec, size: number, like: ImageHeader | undefined, options: Omit<CreateImageOptions, 'size'>): Promise<void> {
    const pp = await this.ensurePool(spec.pool, options.createPool ?? false);
    const shape = this.imageShape(
      {
        order: options.order ?? (options.objectSize === undefined ? like?.order : undefined),
        objectSize: options.objectSize,
        features: options.features ?? like?.features.filter((f) => f !== 'striping'),
        stripeUnit: options.stripeUnit ?? (like && like.stripeUnit !== 2 ** like.order ? like.stripeUnit : undefined),
        stripeCount: options.stripeCount ?? (like && like.stripeCount !== 1 ? like.stripeCount : undefined),
      },
      undefined,
    );
    this.checkSize(size, shape.order, shape.stripeUnit, shape.stripeCount);
    await this.createImageFiles(pp, spec.image, { ...shape, size, parent: null });
  }

  /** @internal */
  async readHeaderOf(pool: string, name: string): Promise<ImageHeader> {
    const r = await this.resolve(pool, name);
    return readHeader(r.paths.header);
  }

  /** @internal Current state of an open image in this process. */
  stateOf(paths: ImagePaths): ImageState | undefined {
    return ImageState.lookup(paths.dir);
  }

  /** @internal */
  async acquireState(pool: string, id: string): Promise<ImageState> {
    return ImageState.acquire(this.ctx, pool, id);
  }

  /** @internal Try the exclusive lock without keeping it (is anybody writing?). */
  static writersPresent(paths: ImagePaths): boolean {
    const l = FileLock.tryAcquire(paths.exclusiveLock, 'exclusive');
    if (!l) return true;
    l.release();
    return false;
  }
}
