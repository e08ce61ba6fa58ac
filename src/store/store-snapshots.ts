/** Snapshots (create, list, remove, purge, rename, protect, limit, rollback) and clones (clone, children, flatten). */
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { StoreImageDevice } from './device';
import { StoreError } from './errors';
import { closeFd, createSparseFile, exists, openFd } from './fsutil';
import { fdatasync, fsyncDir } from '../sys/durable';
import { activeSnapshots, ImageHeader, readHeader, SnapshotMeta } from './header';
import { ImageState } from './image';
import { Layout } from './layout';
import { formatSpec, ImageSpec, parseImageSpec, validateImageName, validateSnapName } from './names';
import { Notifier } from './watch';
import { CreateImageOptions, ImageInfo, now, Progress, Resolved, snapInfo, SnapshotInfo } from './store-types';
import { StoreImages } from './store-images';

export abstract class StoreSnapshots extends StoreImages {
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

  protected async finishSnapshotRemoval(img: Resolved, snapId: number, progress?: Progress): Promise<void> {
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

  protected async removeChildRef(parentRef: NonNullable<ImageHeader['parent']>, child: { pool: string; imageId: string }): Promise<void> {
    const paths = this.pool(parentRef.pool).image(parentRef.imageId);
    if (!(await exists(paths.header))) return;
    await this.imageOp({ pool: parentRef.pool, name: parentRef.imageId, paths }, {}, async (h, commit) => {
      const snaps = h.snapshots.map((x) => (x.id === parentRef.snapId ? { ...x, children: x.children.filter((c) => !(c.pool === child.pool && c.imageId === child.imageId)) } : x));
      await commit({ ...h, snapshots: snaps });
    });
  }

  protected async childNames(sm: SnapshotMeta): Promise<string[]> {
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
}
