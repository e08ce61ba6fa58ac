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
 * (see watch.ts). Metadata files are replaced atomically; data ordering rules are in image.ts.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Logger, silentLogger } from '../util/log';
import { HeadDevice, SnapshotDevice, StoreImageDevice } from './device';
import { ImagePaths, PoolPaths, STORE_FILE, STORE_MAGIC } from './disk';
import { isErrno, StoreError } from './errors';
import { changeFeatures, DEFAULT_FEATURES, FeatureName, sortFeatures, validateFeatureSet } from './features';
import { closeFd, createSparseFile, exists, ftruncate, openFd } from './fsutil';
import { fdatasync, fsyncDir, writeFileAtomic } from '../sys/durable';
import {
  activeSnapshots,
  AdvisoryLock,
  AdvisoryLocksSchema,
  ImageHeader,
  PoolFile,
  readHeader,
  SnapshotMeta,
  WatcherInfo,
  writeHeader,
} from './header';
import { ImageState, StoreContext } from './image';
import { DEFAULT_ORDER, Layout, MAX_OBJECTS } from './layout';
import { FileLock, withFileLock } from './locks';
import { formatSpec, ImageSpec, parseImageSpec, SnapshotPresence, validateImageName, validatePoolName, validateSnapName } from './names';
import { ObjectMap } from './object-map';
import { Agent, listWatchers, Notifier } from './watch';

export type Progress = (done: number, total: number) => void;

export interface ImageStoreOptions {
  /** Who we are in watcher records and lock listings (e.g. the gateway name). */
  readonly client?: string;
  readonly logger?: Logger;
}

export interface CreateImageOptions {
  /** Bytes. */
  readonly size: number;
  readonly order?: number;
  readonly objectSize?: number;
  readonly features?: readonly FeatureName[];
  readonly stripeUnit?: number;
  readonly stripeCount?: number;
  /** Create the pool when it does not exist (the CLI does, so rbd's seed commands just work). */
  readonly createPool?: boolean;
}

export interface OpenImageOptions {
  /** Open this snapshot (read-only). Also accepted as "pool/image@snap" in the spec. */
  readonly snapshot?: string;
  readonly readOnly?: boolean;
  /**
   * Writers take the image's exclusive lock (default), so no other process can write it.
   * false: shared writer (several gateways serving one LUN on purpose).
   */
  readonly exclusive?: boolean;
}

export interface SnapshotInfo {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly protected: boolean;
  readonly createTime: string;
  readonly children: number;
}

export interface ParentInfo {
  readonly pool: string;
  readonly image: string;
  readonly imageId: string;
  readonly snapshot: string;
  readonly snapshotId: number;
  readonly overlap: number;
}

export interface ImageInfo {
  readonly pool: string;
  readonly name: string;
  readonly id: string;
  readonly size: number;
  readonly order: number;
  readonly objectSize: number;
  readonly objectCount: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  readonly features: FeatureName[];
  readonly flags: string[];
  readonly createTime: string;
  readonly modifyTime: string;
  readonly snapshotCount: number;
  readonly snapshotLimit: number | null;
  readonly parent: ParentInfo | null;
  /** Set when the info is about a snapshot. */
  readonly snapshot?: SnapshotInfo;
  /** Interrupted operations a user should finish. */
  readonly warnings: string[];
}

export interface LockInfo {
  /** The managed exclusive lock (RBD's "auto" lock) held by a writer, if any. */
  readonly owner: (WatcherInfo & { token: string }) | undefined;
  readonly shared: Array<WatcherInfo & { token: string }>;
  readonly advisory: AdvisoryLock[];
}

export interface DiskUsage {
  readonly name: string;
  readonly snapshot?: string;
  readonly snapshotId?: number;
  readonly provisioned: number;
  readonly used: number;
}

interface Resolved {
  readonly pool: string;
  readonly name: string;
  readonly id: string;
  readonly pp: PoolPaths;
  readonly paths: ImagePaths;
}

const now = (): string => new Date().toISOString();

export class ImageStore {
  private readonly ctx: StoreContext;

  private constructor(
    readonly root: string,
    readonly client: string,
    readonly log: Logger,
  ) {
    this.ctx = {
      root,
      client,
      log,
      imagePaths: (pool, id) => new PoolPaths(root, pool).image(id),
    };
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

  private pool(name: string): PoolPaths {
    return new PoolPaths(this.root, name);
  }

  private async requirePool(name: string): Promise<PoolPaths> {
    validatePoolName(name);
    const pp = this.pool(name);
    if (!(await exists(pp.poolFile))) throw new StoreError(`pool '${name}' does not exist`, 'not-found');
    return pp;
  }

  private async resolve(pool: string, name: string): Promise<Resolved> {
    const pp = await this.requirePool(pool);
    validateImageName(name);
    let id: string;
    try {
      id = await fsp.readlink(pp.nameLink(name));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new StoreError(`image '${pool}/${name}' does not exist`, 'not-found');
      if (isErrno(e, 'EINVAL')) throw new StoreError(`${pp.nameLink(name)} is not a name link`, 'corrupt');
      throw e;
    }
    return { pool, name, id, pp, paths: pp.image(id) };
  }

  private async resolveId(pool: string, id: string): Promise<{ paths: ImagePaths; header: ImageHeader }> {
    const paths = this.pool(pool).image(id);
    return { paths, header: await readHeader(paths.header) };
  }

  private toSpec(spec: string | ImageSpec, presence: SnapshotPresence): ImageSpec {
    if (typeof spec === 'string') return parseImageSpec(spec, { snapshot: presence });
    validatePoolName(spec.pool);
    validateImageName(spec.image);
    if (spec.snapshot !== undefined) {
      if (presence === 'none') throw new StoreError(`snapshot name specified for a command that doesn't use it ('${formatSpec(spec)}')`, 'invalid-argument');
      validateSnapName(spec.snapshot);
    } else if (presence === 'required') throw new StoreError(`snapshot name was not specified ('${formatSpec(spec)}' needs @snapshot)`, 'invalid-argument');
    return spec;
  }

  private findSnap(h: ImageHeader, name: string, img: { pool: string; name: string }): SnapshotMeta {
    const s = h.snapshots.find((x) => x.name === name && x.state === 'active');
    if (!s) throw new StoreError(`snapshot '${name}' of image '${img.pool}/${img.name}' does not exist`, 'not-found');
    return s;
  }

  // ------------------------------------------------------------------ metadata operations

  /**
   * Run a metadata change of one image: meta lock held; `quiesce` holds writes in every
   * process first; after fn commits, every process reloads the header before writes resume.
   */
  private async imageOp<T>(
    img: Resolved | { pool: string; name: string; paths: ImagePaths },
    opts: { quiesce?: boolean },
    fn: (h: ImageHeader, commit: (next: ImageHeader) => Promise<void>) => Promise<T>,
  ): Promise<T> {
    return withFileLock(
      img.paths.metaLock,
      async () => {
        let header = await readHeader(img.paths.header);
        const dir = img.paths.dir;
        const localBefore = ImageState.lookup(dir);
        const except = (): Set<string> => {
          const s = ImageState.lookup(dir);
          return new Set(s?.token ? [s.token] : []);
        };
        let notifier: Notifier | undefined;
        let localQuiesced: ImageState | undefined;
        let remoteQuiesced = false;
        let committed = false;
        try {
          if (opts.quiesce) {
            notifier = await Notifier.connect(dir, except());
            if (localBefore) {
              await localBefore.quiesce();
              localQuiesced = localBefore;
            }
            remoteQuiesced = true;
            await notifier.request('quiesce');
          }
          const commit = async (next: ImageHeader): Promise<void> => {
            const h: ImageHeader = { ...next, generation: header.generation + 1, modifyTime: now() };
            await writeHeader(img.paths.header, h);
            header = h;
            committed = true;
          };
          const result = await fn(header, commit);
          if (committed) {
            const local = ImageState.lookup(dir);
            if (local) await local.reload().catch((e) => this.log.error({ err: e }, 'local reload failed'));
            notifier ??= await Notifier.connect(dir, except());
            await notifier.request('reload').catch((e) => this.log.warn({ err: e }, 'a watcher did not reload; it will before it writes again'));
          }
          return result;
        } finally {
          localQuiesced?.resume();
          if (remoteQuiesced && notifier) await notifier.request('unquiesce').catch((e) => this.log.warn({ err: e }, 'unquiesce failed'));
          notifier?.close();
        }
      },
      { busyMessage: () => `image '${img.pool}/${img.name}': another operation holds its metadata lock` },
    );
  }

  // ------------------------------------------------------------------ pools

  async createPool(name: string): Promise<void> {
    validatePoolName(name);
    const pp = this.pool(name);
    if (await exists(pp.dir)) throw new StoreError(`pool '${name}' already exists`, 'exists');
    const poolsDir = path.dirname(pp.dir);
    const tmp = path.join(poolsDir, `.tmp-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(tmp);
    try {
      const pf: PoolFile = { magic: 'iscsi-gateway-pool', format: 1, name, id: randomBytes(6).toString('hex'), createTime: now() };
      await writeFileAtomic(path.join(tmp, 'pool.json'), JSON.stringify(pf, null, 1) + '\n');
      for (const d of ['names', 'images', 'trash']) await fsp.mkdir(path.join(tmp, d));
      await fsyncDir(tmp);
      try {
        await fsp.rename(tmp, pp.dir);
      } catch (e) {
        if (isErrno(e, 'EEXIST') || isErrno(e, 'ENOTEMPTY')) throw new StoreError(`pool '${name}' already exists`, 'exists');
        throw e;
      }
      await fsyncDir(poolsDir);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  async listPools(): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.root, 'pools'));
    const out: string[] = [];
    for (const n of names) if (!n.startsWith('.') && (await exists(this.pool(n).poolFile))) out.push(n);
    return out.sort();
  }

  async poolExists(name: string): Promise<boolean> {
    validatePoolName(name);
    return exists(this.pool(name).poolFile);
  }

  async removePool(name: string): Promise<void> {
    const pp = await this.requirePool(name);
    await withFileLock(pp.lockFile, async () => {
      const images = await this.listImages(name);
      if (images.length > 0) throw new StoreError(`pool '${name}' is not empty (${images.length} image(s): ${images.slice(0, 5).join(', ')}${images.length > 5 ? ', ...' : ''})`, 'not-empty');
      const dirs = (await fsp.readdir(pp.imagesDir)).filter((d) => !d.startsWith('.'));
      if (dirs.length > 0) throw new StoreError(`pool '${name}' still holds ${dirs.length} image director(ies) without a name; run 'check' on it`, 'not-empty');
      const trash = path.join(this.root, 'pools', `.trash-${randomBytes(6).toString('hex')}`);
      await fsp.rename(pp.dir, trash);
      await fsyncDir(path.dirname(pp.dir));
      await fsp.rm(trash, { recursive: true, force: true });
    });
  }

  private async ensurePool(name: string, create: boolean): Promise<PoolPaths> {
    validatePoolName(name);
    if (create && !(await exists(this.pool(name).poolFile))) {
      try {
        await this.createPool(name);
      } catch (e) {
        if (!(e instanceof StoreError && e.kind === 'exists')) throw e;
      }
    }
    return this.requirePool(name);
  }

  // ------------------------------------------------------------------ images

  async listImages(pool: string): Promise<string[]> {
    const pp = await this.requirePool(pool);
    const names = await fsp.readdir(pp.namesDir);
    return names.filter((n) => !n.startsWith('.')).sort();
  }

  async createImage(spec: string | ImageSpec, options: CreateImageOptions): Promise<ImageInfo> {
    const s = this.toSpec(spec, 'none');
    const pp = await this.ensurePool(s.pool, options.createPool ?? false);
    const { order, stripeUnit, stripeCount, features } = this.imageShape(options, undefined);
    this.checkSize(options.size, order, stripeUnit, stripeCount);
    await this.createImageFiles(pp, s.image, { size: options.size, order, stripeUnit, stripeCount, features, parent: null });
    return this.imageInfo({ pool: s.pool, image: s.image });
  }

  private imageShape(
    o: { order?: number; objectSize?: number; features?: readonly FeatureName[]; stripeUnit?: number; stripeCount?: number },
    inherit: ImageHeader | undefined,
  ): { order: number; stripeUnit: number; stripeCount: number; features: FeatureName[] } {
    let order = o.order ?? inherit?.order ?? DEFAULT_ORDER;
    if (o.objectSize !== undefined) {
      const lg = Math.log2(o.objectSize);
      if (!Number.isInteger(lg)) throw new StoreError(`object size ${o.objectSize} is not a power of two`, 'invalid-argument');
      if (o.order !== undefined && o.order !== lg) throw new StoreError('object size and order disagree', 'invalid-argument');
      order = lg;
    }
    const objectSize = 2 ** order;
    const stripeUnit = o.stripeUnit ?? objectSize;
    const stripeCount = o.stripeCount ?? 1;
    Layout.validate(order, stripeUnit, stripeCount);
    const fancy = stripeUnit !== objectSize || stripeCount !== 1;
    const features = sortFeatures([...(o.features ?? DEFAULT_FEATURES).filter((f) => f !== 'striping' || fancy), ...(fancy ? (['striping'] as FeatureName[]) : [])]);
    validateFeatureSet(features);
    return { order, stripeUnit, stripeCount, features };
  }

  private checkSize(size: number, order: number, su: number, sc: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new StoreError(`invalid image size ${size}`, 'invalid-argument');
    const count = new Layout(2 ** order, su, sc).objectCount(size);
    if (count > MAX_OBJECTS) {
      throw new StoreError(`image of ${size} bytes would have ${count} objects of ${2 ** order} bytes; at most ${MAX_OBJECTS} (use a larger object size)`, 'limit');
    }
  }

  private async createImageFiles(
    pp: PoolPaths,
    name: string,
    shape: { size: number; order: number; stripeUnit: number; stripeCount: number; features: FeatureName[]; parent: ImageHeader['parent']; id?: string },
  ): Promise<string> {
    validateImageName(name);
    return withFileLock(pp.lockFile, async () => {
      if (await exists(pp.nameLink(name))) throw new StoreError(`image '${pp.pool}/${name}' already exists`, 'exists');
      const id = shape.id ?? randomBytes(6).toString('hex');
      const tmp = path.join(pp.imagesDir, `.tmp-${id}`);
      await fsp.mkdir(tmp);
      try {
        const t = now();
        const header: ImageHeader = {
          magic: 'iscsi-gateway-image',
          format: 1,
          id,
          name,
          size: shape.size,
          order: shape.order,
          stripeUnit: shape.stripeUnit,
          stripeCount: shape.stripeCount,
          features: shape.features,
          createTime: t,
          modifyTime: t,
          snapSeq: 0,
          snapLimit: null,
          snapshots: [],
          parent: shape.parent,
          rollback: null,
          metadata: {},
          generation: 1,
        };
        const ip = new ImagePaths(tmp);
        await createSparseFile(ip.head, shape.size);
        const count = new Layout(2 ** shape.order, shape.stripeUnit, shape.stripeCount).objectCount(shape.size);
        if (shape.parent) await createSparseFile(ip.cmap, count);
        if (shape.features.includes('object-map')) await ObjectMap.createClean(ip.omap, count);
        await writeHeader(ip.header, header);
        await fsyncDir(tmp);
        await fsp.rename(tmp, pp.image(id).dir);
        await fsyncDir(pp.imagesDir);
      } catch (e) {
        await fsp.rm(tmp, { recursive: true, force: true });
        throw e;
      }
      try {
        await fsp.symlink(id, pp.nameLink(name));
      } catch (e) {
        await fsp.rm(pp.image(id).dir, { recursive: true, force: true });
        if (isErrno(e, 'EEXIST')) throw new StoreError(`image '${pp.pool}/${name}' already exists`, 'exists');
        throw e;
      }
      await fsyncDir(pp.namesDir);
      return id;
    });
  }

  async imageInfo(spec: string | ImageSpec): Promise<ImageInfo> {
    const s = this.toSpec(spec, 'permitted');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    const layout = new Layout(2 ** h.order, h.stripeUnit, h.stripeCount);
    let parent: ParentInfo | null = null;
    if (h.parent) {
      let pname = `<missing image ${h.parent.imageId}>`;
      let sname = `<missing snapshot ${h.parent.snapId}>`;
      try {
        const ph = (await this.resolveId(h.parent.pool, h.parent.imageId)).header;
        pname = ph.name;
        sname = ph.snapshots.find((x) => x.id === h.parent!.snapId)?.name ?? sname;
      } catch {
        /* reported as missing; `check` says more */
      }
      parent = { pool: h.parent.pool, image: pname, imageId: h.parent.imageId, snapshot: sname, snapshotId: h.parent.snapId, overlap: h.parent.overlap };
    }
    const flags: string[] = [];
    if (h.features.includes('object-map')) {
      const owner = (await listWatchers(img.paths.dir)).some((w) => w.info.mode === 'write-exclusive') || ImageState.lookup(img.paths.dir)?.authoritative;
      if (!owner && !(await ObjectMap.readClean(img.paths.omap, layout.objectCount(h.size)))) flags.push('object map invalid');
    }
    const warnings: string[] = [];
    if (h.rollback) warnings.push(`rollback to snapshot '${h.rollback.snapName}' was interrupted; run 'snap rollback' again`);
    for (const r of h.snapshots.filter((x) => x.state === 'removing')) warnings.push(`removal of snapshot '${r.name}' was interrupted; run 'snap rm' again`);
    const snaps = activeSnapshots(h);
    let snapshot: SnapshotInfo | undefined;
    let size = h.size;
    let overlap = parent?.overlap;
    if (s.snapshot !== undefined) {
      const sm = this.findSnap(h, s.snapshot, img);
      snapshot = snapInfo(sm);
      size = sm.size;
      overlap = sm.parentOverlap;
    }
    return {
      pool: img.pool,
      name: img.name,
      id: h.id,
      size,
      order: h.order,
      objectSize: 2 ** h.order,
      objectCount: layout.objectCount(size),
      stripeUnit: h.stripeUnit,
      stripeCount: h.stripeCount,
      features: h.features,
      flags,
      createTime: h.createTime,
      modifyTime: h.modifyTime,
      snapshotCount: snaps.length,
      snapshotLimit: h.snapLimit,
      parent: parent && overlap !== undefined ? { ...parent, overlap } : parent,
      ...(snapshot ? { snapshot } : {}),
      warnings,
    };
  }

  async removeImage(spec: string | ImageSpec, progress?: Progress): Promise<void> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    const pp = img.pp;
    let parentRef: ImageHeader['parent'] = null;
    await withFileLock(pp.lockFile, () =>
      withFileLock(img.paths.metaLock, async () => {
        const h = await readHeader(img.paths.header);
        if (h.snapshots.length > 0) {
          throw new StoreError(`image '${s.pool}/${s.image}' has snapshots - these must be deleted with 'snap purge' before the image can be removed`, 'has-snapshots');
        }
        const watchers = await listWatchers(img.paths.dir);
        const local = ImageState.lookup(img.paths.dir);
        if (watchers.length > 0 || local) {
          const who = watchers.map((w) => `pid ${w.info.pid}${w.info.client ? ` (${w.info.client})` : ''} ${w.info.mode}`);
          if (local && !watchers.some((w) => w.info.pid === process.pid)) who.push(`pid ${process.pid} (this process)`);
          throw new StoreError(`image '${s.pool}/${s.image}' still has watchers: ${who.join(', ')}; close it (or wait for the crashed client) and try again`, 'busy');
        }
        parentRef = h.parent;
        await fsp.unlink(pp.nameLink(img.name));
        await fsyncDir(pp.namesDir);
        await fsp.rename(img.paths.dir, path.join(pp.trashDir, img.id));
        await fsyncDir(pp.imagesDir);
        await fsyncDir(pp.trashDir);
      }),
    );
    progress?.(1, 2);
    if (parentRef) await this.removeChildRef(parentRef, { pool: s.pool, imageId: img.id });
    await fsp.rm(path.join(pp.trashDir, img.id), { recursive: true, force: true });
    progress?.(2, 2);
  }

  async renameImage(spec: string | ImageSpec, newName: string): Promise<void> {
    const s = this.toSpec(spec, 'none');
    let dest = newName;
    if (newName.includes('/')) {
      const d = parseImageSpec(newName, { pool: s.pool });
      if (d.pool !== s.pool) throw new StoreError('an image cannot be renamed into another pool', 'invalid-argument');
      dest = d.image;
    }
    validateImageName(dest);
    const img = await this.resolve(s.pool, s.image);
    if (dest === img.name) return;
    await withFileLock(img.pp.lockFile, async () => {
      try {
        await fsp.symlink(img.id, img.pp.nameLink(dest));
      } catch (e) {
        if (isErrno(e, 'EEXIST')) throw new StoreError(`image '${s.pool}/${dest}' already exists`, 'exists');
        throw e;
      }
      await fsyncDir(img.pp.namesDir);
      await this.imageOp(img, {}, async (h, commit) => commit({ ...h, name: dest }));
      await fsp.unlink(img.pp.nameLink(img.name));
      await fsyncDir(img.pp.namesDir);
    });
  }

  async resizeImage(spec: string | ImageSpec, newSize: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    const h0 = await readHeader(img.paths.header);
    this.checkSize(newSize, h0.order, h0.stripeUnit, h0.stripeCount);
    if (newSize < h0.size && !options.allowShrink) {
      throw new StoreError(`shrinking image '${s.pool}/${s.image}' from ${h0.size} to ${newSize} bytes is only allowed with allow-shrink (--allow-shrink)`, 'shrink-not-allowed');
    }
    const shrink = newSize < h0.size;
    await this.imageOp(img, { quiesce: shrink }, async (h, commit) => {
      if (newSize === h.size) return;
      if (newSize < h.size && !options.allowShrink) throw new StoreError('shrinking is only allowed with allow-shrink', 'shrink-not-allowed');
      const layout = new Layout(2 ** h.order, h.stripeUnit, h.stripeCount);
      const newCount = layout.objectCount(newSize);
      if (newSize > h.size) {
        // Drop anything a crashed shrink left past the old end, then extend.
        await truncateFile(img.paths.head, h.size);
        await truncateFile(img.paths.head, newSize);
        if (h.parent) await truncateFile(img.paths.cmap, Math.max(newCount, layout.objectCount(h.size)));
        await commit({ ...h, size: newSize });
        return;
      }
      const state = await ImageState.acquire(this.ctx, img.pool, img.id, { metaLockHeld: true });
      try {
        await state.preserveForShrink(newSize);
      } finally {
        await state.release();
      }
      await commit({ ...h, size: newSize, parent: h.parent ? { ...h.parent, overlap: Math.min(h.parent.overlap, newSize) } : null });
      await truncateFile(img.paths.head, newSize);
    });
  }

  // ------------------------------------------------------------------ open

  /** Open an image head (read-write by default, with the exclusive lock) or a snapshot (read-only). */
  async openImage(spec: string | ImageSpec, options: OpenImageOptions = {}): Promise<StoreImageDevice> {
    const s0 = this.toSpec(spec, 'permitted');
    const s: ImageSpec = options.snapshot !== undefined ? { ...s0, snapshot: options.snapshot } : s0;
    if (s.snapshot !== undefined) validateSnapName(s.snapshot);
    const img = await this.resolve(s.pool, s.image);
    let state: ImageState;
    try {
      state = await ImageState.acquire(this.ctx, img.pool, img.id);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new StoreError(`image '${s.pool}/${s.image}' does not exist`, 'not-found');
      throw e;
    }
    try {
      const name = formatSpec(s);
      if (s.snapshot !== undefined) {
        const sm = this.findSnap(state.header, s.snapshot, img);
        return new SnapshotDevice(state, name, img.pool, img.name, s.snapshot, sm.id);
      }
      if (options.readOnly) return new HeadDevice(state, name, img.pool, img.name, undefined);
      const mode = options.exclusive === false ? 'shared' : 'exclusive';
      await state.addWriter(mode);
      const dev = new HeadDevice(state, name, img.pool, img.name, mode);
      await dev.openJournal();
      // A snapshot removal interrupted by a crash is finished by the next exclusive writer.
      for (const r of state.header.snapshots.filter((x) => x.state === 'removing')) {
        if (mode !== 'exclusive') break;
        await this.finishSnapshotRemoval(img, r.id).catch((e) => this.log.warn({ err: e, snapshot: r.name }, 'could not finish an interrupted snapshot removal'));
      }
      return dev;
    } catch (e) {
      await state.release();
      throw e;
    }
  }

  // ------------------------------------------------------------------ snapshots

  async createSnapshot(spec: string | ImageSpec): Promise<SnapshotInfo> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    const name = s.snapshot!;
    return this.imageOp(img, { quiesce: true }, async (h, commit) => {
      if (h.snapshots.some((x) => x.name === name)) throw new StoreError(`snapshot '${name}' of image '${s.pool}/${s.image}' already exists`, 'exists');
      const active = activeSnapshots(h).length;
      if (h.snapLimit !== null && active >= h.snapLimit) {
        throw new StoreError(`image '${s.pool}/${s.image}' has reached its snapshot limit (${h.snapLimit})`, 'limit');
      }
      const id = h.snapSeq + 1;
      const layout = new Layout(2 ** h.order, h.stripeUnit, h.stripeCount);
      // Writers are quiesced: make what they wrote durable, so the snapshot is too.
      const fd = await openFd(img.paths.head, 'r');
      try {
        await fdatasync(fd);
      } finally {
        await closeFd(fd);
      }
      await fsp.rm(img.paths.snapData(id), { force: true });
      await fsp.rm(img.paths.snapMap(id), { force: true });
      await createSparseFile(img.paths.snapData(id), h.size);
      await createSparseFile(img.paths.snapMap(id), layout.objectCount(h.size));
      await fsyncDir(img.paths.dir);
      const meta: SnapshotMeta = {
        id,
        name,
        size: h.size,
        createTime: now(),
        protected: false,
        parentOverlap: h.parent?.overlap ?? 0,
        children: [],
        state: 'active',
      };
      await commit({ ...h, snapSeq: id, snapshots: [...h.snapshots, meta] });
      return snapInfo(meta);
    });
  }

  async listSnapshots(spec: string | ImageSpec): Promise<SnapshotInfo[]> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    return activeSnapshots(h)
      .sort((a, b) => a.id - b.id)
      .map(snapInfo);
  }

  async removeSnapshot(spec: string | ImageSpec, progress?: Progress): Promise<void> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    const target = h.snapshots.find((x) => x.name === s.snapshot);
    if (!target) throw new StoreError(`snapshot '${s.snapshot}' of image '${s.pool}/${s.image}' does not exist`, 'not-found');
    // Finish interrupted removals first: they sit between snapshots and their data.
    for (const r of h.snapshots.filter((x) => x.state === 'removing' && x.id !== target.id)) await this.finishSnapshotRemoval(img, r.id);
    await this.imageOp(img, { quiesce: true }, async (cur, commit) => {
      const t = cur.snapshots.find((x) => x.id === target.id);
      if (!t) throw new StoreError(`snapshot '${s.snapshot}' of image '${s.pool}/${s.image}' does not exist`, 'not-found');
      if (t.state === 'removing') return;
      if (t.protected) throw new StoreError(`snapshot '${s.snapshot}' is protected from removal (unprotect it first)`, 'protected');
      if (t.children.length > 0) throw new StoreError(`snapshot '${s.snapshot}' has ${t.children.length} child image(s)`, 'has-children');
      await this.assertSnapshotUnused(img, t);
      await commit({ ...cur, snapshots: cur.snapshots.map((x) => (x.id === t.id ? { ...x, state: 'removing' } : x)) });
    });
    await this.finishSnapshotRemoval(img, target.id, progress);
  }

  private async assertSnapshotUnused(img: Resolved, t: SnapshotMeta): Promise<void> {
    if (ImageState.lookup(img.paths.dir)?.snapshotInUse(t.id)) {
      throw new StoreError(`snapshot '${t.name}' is open in this process (exported as a LUN?)`, 'busy');
    }
    const local = ImageState.lookup(img.paths.dir);
    const n = await Notifier.connect(img.paths.dir, new Set(local?.token ? [local.token] : []));
    try {
      const replies = await n.request('snap-in-use', { snapId: t.id });
      if (replies.some((r) => r.result === true)) throw new StoreError(`snapshot '${t.name}' is open by another process (exported as a LUN?)`, 'busy');
    } finally {
      n.close();
    }
  }

  private async finishSnapshotRemoval(img: Resolved, snapId: number, progress?: Progress): Promise<void> {
    const state = await ImageState.acquire(this.ctx, img.pool, img.id);
    try {
      await state.mergeIntoPredecessor(snapId, progress);
    } finally {
      await state.release();
    }
    await this.imageOp(img, {}, async (h, commit) => {
      if (!h.snapshots.some((x) => x.id === snapId)) return;
      await commit({ ...h, snapshots: h.snapshots.filter((x) => x.id !== snapId) });
    });
    await fsp.rm(img.paths.snapData(snapId), { force: true });
    await fsp.rm(img.paths.snapMap(snapId), { force: true });
    await fsyncDir(img.paths.dir);
  }

  async purgeSnapshots(spec: string | ImageSpec, progress?: Progress): Promise<number> {
    const s = this.toSpec(spec, 'none');
    const snaps = await this.listSnapshots(s);
    const prot = snaps.filter((x) => x.protected);
    let removed = 0;
    // Newest first: each removal then merges nothing into a snapshot we remove next.
    for (const x of [...snaps].reverse()) {
      if (x.protected) continue;
      await this.removeSnapshot({ ...s, snapshot: x.name });
      removed++;
      progress?.(removed, snaps.length - prot.length);
    }
    if (prot.length > 0) {
      throw new StoreError(`removed ${removed} snapshot(s); ${prot.length} protected snapshot(s) remain: ${prot.map((x) => x.name).join(', ')}`, 'protected');
    }
    return removed;
  }

  async renameSnapshot(spec: string | ImageSpec, newName: string): Promise<void> {
    const s = this.toSpec(spec, 'required');
    const dest = newName.includes('@') && newName.indexOf('@') > 0 ? parseImageSpec(newName, { pool: s.pool, snapshot: 'required' }) : undefined;
    if (dest && (dest.pool !== s.pool || dest.image !== s.image)) throw new StoreError('source and destination image must be the same', 'invalid-argument');
    const target = dest ? dest.snapshot! : newName.startsWith('@') ? newName.slice(1) : newName;
    validateSnapName(target);
    const img = await this.resolve(s.pool, s.image);
    await this.imageOp(img, {}, async (h, commit) => {
      const sm = this.findSnap(h, s.snapshot!, img);
      if (h.snapshots.some((x) => x.name === target)) throw new StoreError(`snapshot '${target}' of image '${s.pool}/${s.image}' already exists`, 'exists');
      await commit({ ...h, snapshots: h.snapshots.map((x) => (x.id === sm.id ? { ...x, name: target } : x)) });
    });
  }

  async protectSnapshot(spec: string | ImageSpec): Promise<void> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    await this.imageOp(img, {}, async (h, commit) => {
      const sm = this.findSnap(h, s.snapshot!, img);
      if (!h.features.includes('layering')) throw new StoreError(`image '${s.pool}/${s.image}' does not have the layering feature; protection is for cloning`, 'unsupported');
      if (sm.protected) throw new StoreError(`snapshot '${sm.name}' is already protected`, 'busy');
      await commit({ ...h, snapshots: h.snapshots.map((x) => (x.id === sm.id ? { ...x, protected: true } : x)) });
    });
  }

  async unprotectSnapshot(spec: string | ImageSpec): Promise<void> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    await this.imageOp(img, {}, async (h, commit) => {
      const sm = this.findSnap(h, s.snapshot!, img);
      if (!sm.protected) throw new StoreError(`snapshot '${sm.name}' is not protected`, 'invalid-argument');
      if (sm.children.length > 0) {
        const names = await this.childNames(sm);
        throw new StoreError(`cannot unprotect snapshot '${sm.name}': it has ${names.length} child image(s): ${names.join(', ')}`, 'has-children');
      }
      await commit({ ...h, snapshots: h.snapshots.map((x) => (x.id === sm.id ? { ...x, protected: false } : x)) });
    });
  }

  async setSnapshotLimit(spec: string | ImageSpec, limit: number | null): Promise<void> {
    const s = this.toSpec(spec, 'none');
    if (limit !== null && (!Number.isSafeInteger(limit) || limit < 0)) throw new StoreError(`invalid snapshot limit ${limit}`, 'invalid-argument');
    const img = await this.resolve(s.pool, s.image);
    await this.imageOp(img, {}, async (h, commit) => {
      const n = activeSnapshots(h).length;
      if (limit !== null && limit < n) throw new StoreError(`snapshot limit ${limit} is below the number of existing snapshots (${n})`, 'limit');
      await commit({ ...h, snapLimit: limit });
    });
  }

  async rollbackSnapshot(spec: string | ImageSpec, progress?: Progress): Promise<void> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    const sm = this.findSnap(h, s.snapshot!, img);
    let dev: StoreImageDevice;
    try {
      dev = await this.openImage({ pool: s.pool, image: s.image }, { exclusive: true });
    } catch (e) {
      if (e instanceof StoreError && e.kind === 'busy') {
        throw new StoreError(`cannot roll back '${s.pool}/${s.image}' while it is in use: ${e.message}`, 'busy');
      }
      throw e;
    }
    try {
      await this.imageOp(img, {}, async (cur, commit) => commit({ ...cur, rollback: { snapId: sm.id, snapName: sm.name } }));
      if (dev.size() !== sm.size) await this.resizeImage({ pool: s.pool, image: s.image }, sm.size, { allowShrink: true });
      const state = ImageState.lookup(img.paths.dir)!;
      const layout = state.layout;
      const count = layout.objectCount(sm.size);
      const buf = Buffer.allocUnsafe(Math.min(layout.objectSize, 4 << 20));
      for (let n = 0; n < count; n++) {
        if (state.snapshotDiffers(sm.id, n)) {
          for (const [x, l] of layout.objectExtents(n, sm.size)) {
            for (let done = 0; done < l; ) {
              const k = Math.min(buf.length, l - done);
              await state.read(sm.id, x + done, k, buf, 0);
              await dev.write(x + done, k === buf.length ? buf : buf.subarray(0, k));
              done += k;
            }
          }
        }
        if (n % 64 === 0) progress?.(n, count);
      }
      await dev.flush();
      await this.imageOp(img, {}, async (cur, commit) => commit({ ...cur, rollback: null }));
      progress?.(count, count);
    } finally {
      await dev.close();
    }
  }

  // ------------------------------------------------------------------ clones

  async cloneImage(parentSpec: string | ImageSpec, childSpec: string | ImageSpec, options: Omit<CreateImageOptions, 'size'> = {}): Promise<ImageInfo> {
    const ps = this.toSpec(parentSpec, 'required');
    const cs = this.toSpec(childSpec, 'none');
    const parent = await this.resolve(ps.pool, ps.image);
    const ph = await readHeader(parent.paths.header);
    const sm = this.findSnap(ph, ps.snapshot!, parent);
    if (!ph.features.includes('layering')) throw new StoreError(`parent image '${ps.pool}/${ps.image}' does not have the layering feature`, 'unsupported');
    if (!sm.protected) throw new StoreError(`parent snapshot '${formatSpec(ps)}' must be protected (snap protect) before cloning`, 'not-protected');
    const pp = await this.ensurePool(cs.pool, options.createPool ?? false);
    validateImageName(cs.image);
    if (await exists(pp.nameLink(cs.image))) throw new StoreError(`image '${cs.pool}/${cs.image}' already exists`, 'exists');
    const shape = this.imageShape({ ...options, order: options.order ?? (options.objectSize === undefined ? ph.order : undefined) }, undefined);
    if (!shape.features.includes('layering')) throw new StoreError('a clone needs the layering feature', 'invalid-argument');
    const childId = randomBytes(6).toString('hex');
    // Register the child with the parent first: a crash then leaves a dangling child entry
    // (which `check` reports), never a clone whose parent can be unprotected and removed.
    await this.imageOp(parent, {}, async (h, commit) => {
      const cur = this.findSnap(h, sm.name, parent);
      if (!cur.protected) throw new StoreError(`parent snapshot '${formatSpec(ps)}' must be protected (snap protect) before cloning`, 'not-protected');
      await commit({ ...h, snapshots: h.snapshots.map((x) => (x.id === cur.id ? { ...x, children: [...x.children, { pool: cs.pool, imageId: childId }] } : x)) });
    });
    try {
      await this.createImageFiles(pp, cs.image, {
        ...shape,
        size: sm.size,
        parent: { pool: ps.pool, imageId: parent.id, snapId: sm.id, overlap: sm.size },
        id: childId,
      });
    } catch (e) {
      await this.removeChildRef({ pool: ps.pool, imageId: parent.id, snapId: sm.id, overlap: 0 }, { pool: cs.pool, imageId: childId }).catch(() => undefined);
      throw e;
    }
    return this.imageInfo({ pool: cs.pool, image: cs.image });
  }

  private async removeChildRef(parentRef: NonNullable<ImageHeader['parent']>, child: { pool: string; imageId: string }): Promise<void> {
    const paths = this.pool(parentRef.pool).image(parentRef.imageId);
    if (!(await exists(paths.header))) return;
    await this.imageOp({ pool: parentRef.pool, name: parentRef.imageId, paths }, {}, async (h, commit) => {
      const snaps = h.snapshots.map((x) => (x.id === parentRef.snapId ? { ...x, children: x.children.filter((c) => !(c.pool === child.pool && c.imageId === child.imageId)) } : x));
      await commit({ ...h, snapshots: snaps });
    });
  }

  private async childNames(sm: SnapshotMeta): Promise<string[]> {
    const out: string[] = [];
    for (const c of sm.children) {
      try {
        out.push(`${c.pool}/${(await this.resolveId(c.pool, c.imageId)).header.name}`);
      } catch {
        out.push(`${c.pool}/<missing image ${c.imageId}>`);
      }
    }
    return out;
  }

  async listChildren(spec: string | ImageSpec): Promise<string[]> {
    const s = this.toSpec(spec, 'required');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    return (await this.childNames(this.findSnap(h, s.snapshot!, img))).sort();
  }

  async flattenImage(spec: string | ImageSpec, progress?: Progress): Promise<void> {
    const s = this.toSpec(spec, 'none');
    const img = await this.resolve(s.pool, s.image);
    const h = await readHeader(img.paths.header);
    if (!h.parent) throw new StoreError(`image '${s.pool}/${s.image}' has no parent (nothing to flatten)`, 'invalid-argument');
    if (activeSnapshots(h).length > 0 && !h.features.includes('deep-flatten')) {
      throw new StoreError(`image '${s.pool}/${s.image}' has snapshots and the deep-flatten feature is disabled; remove the snapshots first`, 'unsupported');
    }
    const parentRef = h.parent;
    const state = await ImageState.acquire(this.ctx, img.pool, img.id);
    try {
      const headShare = 0.9;
      await state.copyUpAll((d, t) => progress?.(Math.floor(headShare * 1000 * (t ? d / t : 1)), 1000));
      await state.materializeSnapshots((d, t) => progress?.(Math.floor(1000 * (headShare + (1 - headShare) * (t ? d / t : 1))), 1000));
      await this.imageOp(img, {}, async (cur, commit) => {
        if (!cur.parent) return;
        const left = state.unownedObjects();
        if (left > 0) throw new StoreError(`flatten did not finish: ${left} object(s) still read from the parent (image resized meanwhile?); run flatten again`, 'busy');
        await commit({ ...cur, parent: null, snapshots: cur.snapshots.map((x) => ({ ...x, parentOverlap: 0 })) });
      });
    } finally {
      await state.release();
    }
    await fsp.rm(img.paths.cmap, { force: true });
    await this.removeChildRef(parentRef, { pool: img.pool, imageId: img.id });
    progress?.(1000, 1000);
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

  private async readLocks(paths: ImagePaths): Promise<AdvisoryLock[]> {
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

function snapInfo(sm: SnapshotMeta): SnapshotInfo {
  return { id: sm.id, name: sm.name, size: sm.size, protected: sm.protected, createTime: sm.createTime, children: sm.children.length };
}

async function truncateFile(file: string, size: number): Promise<void> {
  const fd = await openFd(file, 'r+');
  try {
    await ftruncate(fd, size);
    await fdatasync(fd);
  } finally {
    await closeFd(fd);
  }
}

