/** Image operations of the store: create, info, remove, rename, resize, and opening an image or snapshot as a device. */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { HeadDevice, SnapshotDevice, StoreImageDevice } from './device';
import { ImagePaths, PoolPaths } from './disk';
import { isErrno, StoreError } from './errors';
import { DEFAULT_FEATURES, FeatureName, sortFeatures, validateFeatureSet } from './features';
import { closeFd, createSparseFile, exists, ftruncate, openFd } from './fsutil';
import { fdatasync, fsyncDir } from '../sys/durable';
import { activeSnapshots, ImageHeader, readHeader, writeHeader } from './header';
import { ImageState } from './image';
import { DEFAULT_ORDER, Layout, MAX_OBJECTS } from './layout';
import { withFileLock } from './locks';
import { formatSpec, ImageSpec, parseImageSpec, validateImageName, validateSnapName } from './names';
import { ObjectMap } from './object-map';
import { listWatchers } from './watch';
import { CreateImageOptions, ImageInfo, now, OpenImageOptions, ParentInfo, Progress, Resolved, snapInfo, SnapshotInfo } from './store-types';
import { StoreBase } from './store-base';

export abstract class StoreImages extends StoreBase {
  /** Finish removing a snapshot (store-snapshots.ts). */
  protected abstract finishSnapshotRemoval(img: Resolved, snapId: number, progress?: Progress): Promise<void>;

  /** Forget a clone in its parent snapshot's child list (store-snapshots.ts). */
  protected abstract removeChildRef(parentRef: NonNullable<ImageHeader['parent']>, child: { pool: string; imageId: string }): Promise<void>;

  // ------------------------------------------------------------------ images

  async createImage(spec: string | ImageSpec, options: CreateImageOptions): Promise<ImageInfo> {
    const s = this.toSpec(spec, 'none');
    const pp = await this.ensurePool(s.pool, options.createPool ?? false);
    const { order, stripeUnit, stripeCount, features } = this.imageShape(options, undefined);
    this.checkSize(options.size, order, stripeUnit, stripeCount);
    await this.createImageFiles(pp, s.image, { size: options.size, order, stripeUnit, stripeCount, features, parent: null });
    return this.imageInfo({ pool: s.pool, image: s.image });
  }

  protected imageShape(
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

  protected checkSize(size: number, order: number, su: number, sc: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new StoreError(`invalid image size ${size}`, 'invalid-argument');
    const count = new Layout(2 ** order, su, sc).objectCount(size);
    if (count > MAX_OBJECTS) {
      throw new StoreError(`image of ${size} bytes would have ${count} objects of ${2 ** order} bytes; at most ${MAX_OBJECTS} (use a larger object size)`, 'limit');
    }
  }

  protected async createImageFiles(
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

