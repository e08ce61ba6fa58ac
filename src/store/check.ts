/**
 * `check`: verify a pool and say exactly what is wrong. Headers parse, every file exists with
 * the right size, per-object maps hold legal values, object maps cover every object that
 * holds data, parent and child links agree, names and image directories match one to one,
 * and nothing is left over from interrupted operations. With `repair`, the problems that
 * have one safe fix are fixed (leftover files, dangling links, stale object maps, finishing
 * interrupted removals); everything else is only reported.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CMAP_OWNED, CMAP_PARENT, ImagePaths, PMAP_DATA, PMAP_NONE, PMAP_PARENT, PoolPaths } from './disk';
import { isErrno, StoreError } from './errors';
import { closeFd, openFd } from './fsutil';
import { AdvisoryLocksSchema, ImageHeader, parseHeader, PoolFileSchema, writeHeader } from './header';
import { Layout } from './layout';
import { ObjectMap } from './object-map';
import { ImageStore } from './store';
import { listWatchers } from './watch';

export interface Problem {
  /** pool, pool/image or pool/image@snap the problem is about. */
  readonly where: string;
  readonly message: string;
  /** Whether --repair fixes it, and whether it was fixed in this run. */
  readonly repairable: boolean;
  repaired: boolean;
}

export interface CheckResult {
  readonly pools: number;
  readonly images: number;
  readonly problems: Problem[];
}

interface Ctx {
  readonly store: ImageStore;
  readonly repair: boolean;
  readonly problems: Problem[];
}

async function problem(c: Ctx, where: string, message: string, fix?: () => Promise<void>): Promise<void> {
  const p: Problem = { where, message, repairable: fix !== undefined, repaired: false };
  c.problems.push(p);
  if (c.repair && fix) {
    try {
      await fix();
      p.repaired = true;
    } catch (e) {
      c.problems.push({ where, message: `repair failed: ${(e as Error).message}`, repairable: false, repaired: false });
    }
  }
}

async function statOrNull(file: string): Promise<fs.Stats | null> {
  try {
    return await fsp.stat(file);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
}

async function readBytes(file: string, count: number): Promise<Buffer> {
  const fd = await openFd(file, 'r');
  try {
    const buf = Buffer.alloc(count);
    let done = 0;
    while (done < count) {
      const n = fs.readSync(fd, buf, done, count - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf;
  } finally {
    await closeFd(fd);
  }
}

function describeObjects(list: number[]): string {
  const shown = list.slice(0, 8).join(', ');
  return list.length > 8 ? `${shown}, ... (${list.length} objects)` : shown;
}

export async function checkStore(store: ImageStore, pools: string[] | undefined, options: { repair?: boolean } = {}): Promise<CheckResult> {
  const c: Ctx = { store, repair: options.repair ?? false, problems: [] };
  const list = pools ?? (await store.listPools());
  let images = 0;
  for (const pool of list) images += await checkPool(c, pool);
  await cleanRunDir(store.root);
  return { pools: list.length, images, problems: c.problems };
}

/** Sockets of processes that died (kill -9) are litter, not problems: remove them. */
async function cleanRunDir(root: string): Promise<void> {
  const dir = path.join(root, 'run');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(n.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 0);
    } catch (e) {
      if (isErrno(e, 'ESRCH')) await fsp.rm(path.join(dir, n), { force: true });
    }
  }
}

async function checkPool(c: Ctx, pool: string): Promise<number> {
  const pp = new PoolPaths(c.store.root, pool);
  const pf = await statOrNull(pp.poolFile);
  if (!pf) throw new StoreError(`pool '${pool}' does not exist`, 'not-found');
  try {
    const j = PoolFileSchema.parse(JSON.parse(await fsp.readFile(pp.poolFile, 'utf8')));
    if (j.name !== pool) await problem(c, pool, `pool.json names the pool '${j.name}', but its directory is '${pool}'`);
  } catch (e) {
    await problem(c, pool, `pool.json does not parse: ${(e as Error).message}`);
  }
  for (const d of [pp.namesDir, pp.imagesDir, pp.trashDir]) {
    if (!(await statOrNull(d))) await problem(c, pool, `directory ${path.basename(d)}/ is missing`, () => fsp.mkdir(d, { recursive: true }).then(() => undefined));
  }

  // names -> ids
  const byId = new Map<string, string[]>();
  for (const name of (await fsp.readdir(pp.namesDir).catch(() => [] as string[])).sort()) {
    const link = pp.nameLink(name);
    let id: string;
    try {
      id = await fsp.readlink(link);
    } catch (e) {
      if (isErrno(e, 'EINVAL')) {
        await problem(c, `${pool}/${name}`, `names/${name} is not a symbolic link`);
        continue;
      }
      throw e;
    }
    if (!(await statOrNull(pp.image(id).header))) {
      await problem(c, `${pool}/${name}`, `name points to image id ${id}, which does not exist`, () => fsp.unlink(link));
      continue;
    }
    byId.set(id, [...(byId.get(id) ?? []), name]);
  }

  let count = 0;
  for (const entry of (await fsp.readdir(pp.imagesDir).catch(() => [] as string[])).sort()) {
    const dir = path.join(pp.imagesDir, entry);
    if (entry.startsWith('.tmp-')) {
      await problem(c, pool, `images/${entry} is left over from an interrupted image creation`, () => fsp.rm(dir, { recursive: true, force: true }));
      continue;
    }
    count++;
    await checkImage(c, pp, entry, byId.get(entry) ?? []);
  }

  for (const entry of await fsp.readdir(pp.trashDir).catch(() => [] as string[])) {
    await problem(c, pool, `trash/${entry} is an interrupted image removal`, async () => {
      const hp = path.join(pp.trashDir, entry, 'header.json');
      try {
        const h = parseHeader(await fsp.readFile(hp, 'utf8'), hp);
        if (h.parent) await dropChildRef(c, h.parent, { pool, imageId: entry });
      } catch {
        /* no usable header: nothing else refers to it */
      }
      await fsp.rm(path.join(pp.trashDir, entry), { recursive: true, force: true });
    });
  }
  return count;
}

async function dropChildRef(c: Ctx, parent: NonNullable<ImageHeader['parent']>, child: { pool: string; imageId: string }): Promise<void> {
  const ip = new PoolPaths(c.store.root, parent.pool).image(parent.imageId);
  const h = parseHeader(await fsp.readFile(ip.header, 'utf8'), ip.header);
  await writeHeader(ip.header, {
    ...h,
    generation: h.generation + 1,
    snapshots: h.snapshots.map((s) => (s.id === parent.snapId ? { ...s, children: s.children.filter((x) => !(x.pool === child.pool && x.imageId === child.imageId)) } : s)),
  });
}

async function checkImage(c: Ctx, pp: PoolPaths, id: string, names: string[]): Promise<void> {
  const ip = pp.image(id);
  const pool = pp.pool;
  let h: ImageHeader;
  try {
    h = parseHeader(await fsp.readFile(ip.header, 'utf8'), `images/${id}/header.json`);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) await problem(c, `${pool}/<id ${id}>`, 'header.json is missing');
    else await problem(c, `${pool}/<id ${id}>`, (e as Error).message);
    return;
  }
  const where = `${pool}/${h.name}`;
  if (h.id !== id) await problem(c, where, `header.json says id ${h.id}, but it lives in images/${id}`);
  if (names.length === 0) {
    await problem(c, where, `image id ${id} has no name in names/ (an interrupted creation or removal); repair restores the name '${h.name}'`, async () => {
      await fsp.symlink(id, pp.nameLink(h.name));
    });
  } else if (names.length > 1) {
    const extra = names.filter((n) => n !== h.name);
    await problem(c, where, `image has several names (${names.join(', ')}): an interrupted rename`, async () => {
      for (const n of extra) if (names.includes(h.name)) await fsp.unlink(pp.nameLink(n));
    });
  } else if (names[0] !== h.name) {
    await problem(c, `${pool}/${names[0]}`, `names/${names[0]} points to an image whose header calls it '${h.name}'`);
  }

  const layout = new Layout(2 ** h.order, h.stripeUnit, h.stripeCount);
  try {
    Layout.validate(h.order, h.stripeUnit, h.stripeCount);
  } catch (e) {
    await problem(c, where, `invalid layout: ${(e as Error).message}`);
    return;
  }
  const count = layout.objectCount(h.size);
  const live = await listWatchers(ip.dir);
  const owner = live.some((w) => w.info.mode !== 'read');

  // head
  const head = await statOrNull(ip.head);
  if (!head) await problem(c, where, 'data file head is missing');
  else if (head.size < h.size) await problem(c, where, `data file head is ${head.size} bytes, shorter than the image (${h.size})`);
  else if (head.size > h.size && !owner) {
    await problem(c, where, `data file head is ${head.size} bytes, longer than the image (${h.size}): an interrupted shrink`, () => fsp.truncate(ip.head, h.size));
  }

  // copy-up map
  const cm = await statOrNull(ip.cmap);
  if (h.parent) {
    if (!cm) await problem(c, where, 'clone copy-up map head.cmap is missing');
    else if (cm.size < count) await problem(c, where, `head.cmap holds ${cm.size} entries, expected ${count}`);
    else {
      const bytes = await readBytes(ip.cmap, count);
      const bad: number[] = [];
      for (let n = 0; n < count; n++) if (bytes[n] !== CMAP_PARENT && bytes[n] !== CMAP_OWNED) bad.push(n);
      if (bad.length) await problem(c, where, `head.cmap has invalid entries for objects ${describeObjects(bad)}`);
    }
    await checkParentLink(c, h, where, pool);
  } else if (cm && !owner) {
    await problem(c, where, 'head.cmap is left over from an interrupted flatten', () => fsp.rm(ip.cmap, { force: true }));
  }

  // snapshots
  const seenNames = new Set<string>();
  const ids = new Set<number>();
  for (const s of h.snapshots) {
    const sw = `${where}@${s.name}`;
    if (ids.has(s.id)) await problem(c, sw, `snapshot id ${s.id} is used twice`);
    ids.add(s.id);
    if (seenNames.has(s.name)) await problem(c, sw, 'snapshot name is used twice');
    seenNames.add(s.name);
    if (s.id > h.snapSeq) await problem(c, sw, `snapshot id ${s.id} is above the image's snapshot sequence ${h.snapSeq}`);
    if (s.state === 'removing') {
      await problem(c, sw, 'snapshot removal was interrupted', async () => {
        await c.store.removeSnapshot({ pool, image: h.name, snapshot: s.name });
      });
    }
    const data = await statOrNull(ip.snapData(s.id));
    if (!data) await problem(c, sw, `snapshot data file snap-${s.id}.data is missing`);
    else if (data.size !== s.size) await problem(c, sw, `snap-${s.id}.data is ${data.size} bytes, expected ${s.size}`);
    const scount = layout.objectCount(s.size);
    const pm = await statOrNull(ip.snapMap(s.id));
    if (!pm) {
      await problem(c, sw, `snapshot map snap-${s.id}.pmap is missing`);
      continue;
    }
    if (pm.size < scount) {
      await problem(c, sw, `snap-${s.id}.pmap holds ${pm.size} entries, expected ${scount}`);
      continue;
    }
    const bytes = await readBytes(ip.snapMap(s.id), scount);
    const bad: number[] = [];
    const parentRefs: number[] = [];
    for (let n = 0; n < scount; n++) {
      if (bytes[n] !== PMAP_NONE && bytes[n] !== PMAP_DATA && bytes[n] !== PMAP_PARENT) bad.push(n);
      if (bytes[n] === PMAP_PARENT) parentRefs.push(n);
    }
    if (bad.length) await problem(c, sw, `snap-${s.id}.pmap has invalid entries for objects ${describeObjects(bad)}`);
    if (parentRefs.length && !h.parent) await problem(c, sw, `objects ${describeObjects(parentRefs)} read from a parent, but the image has none`);
    for (const child of s.children) await checkChildLink(c, sw, pool, id, s.id, child);
  }
  if (h.rollback) await problem(c, where, `rollback to snapshot '${h.rollback.snapName}' was interrupted; the head is partly rolled back (run snap rollback again)`);

  // leftovers
  const known = new Set(['header.json', 'head', 'head.cmap', 'head.omap', 'locks.json', 'meta.lock', 'exclusive.lock', 'objects.lock', 'watchers', 'atomic.journal']);
  for (const s of h.snapshots) {
    known.add(`snap-${s.id}.data`);
    known.add(`snap-${s.id}.pmap`);
  }
  if (!owner) {
    for (const f of await fsp.readdir(ip.dir)) {
      if (known.has(f)) continue;
      const why = /^snap-\d+\.(data|pmap)$/.test(f) ? 'belongs to no snapshot (an interrupted snapshot create or remove)' : f.startsWith('.tmp-') ? 'is a temporary file of an interrupted update' : 'is not part of the format';
      await problem(c, where, `file ${f} ${why}`, () => fsp.rm(path.join(ip.dir, f), { recursive: true, force: true }));
    }
  }

  // advisory locks
  try {
    AdvisoryLocksSchema.parse(JSON.parse(await fsp.readFile(ip.locks, 'utf8')));
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) await problem(c, where, `locks.json does not parse: ${(e as Error).message}`);
  }

  // object map: must cover every object that holds data (when clean and nobody owns it)
  if (h.features.includes('object-map') && head && !owner) {
    const om = await ObjectMap.readClean(ip.omap, count);
    if (om) {
      const fd = await openFd(ip.head, 'r');
      let actual: Buffer;
      try {
        actual = await ObjectMap.scan(fd, layout, Math.min(h.size, head.size));
      } finally {
        await closeFd(fd);
      }
      const missing: number[] = [];
      for (let n = 0; n < count; n++) if (actual[n] && !om[n]) missing.push(n);
      if (missing.length) {
        await problem(c, where, `object map marks objects ${describeObjects(missing)} empty, but they hold data`, () => ObjectMap.invalidate(ip.omap));
      }
    }
  }
}

async function checkParentLink(c: Ctx, h: ImageHeader, where: string, pool: string): Promise<void> {
  const p = h.parent!;
  const pp = new PoolPaths(c.store.root, p.pool).image(p.imageId);
  let ph: ImageHeader;
  try {
    ph = parseHeader(await fsp.readFile(pp.header, 'utf8'), pp.header);
  } catch (e) {
    await problem(c, where, `parent image ${p.pool}/<id ${p.imageId}> is missing or unreadable (${(e as Error).message}); the clone cannot read unowned objects`);
    return;
  }
  const s = ph.snapshots.find((x) => x.id === p.snapId);
  if (!s) {
    await problem(c, where, `parent snapshot id ${p.snapId} of ${p.pool}/${ph.name} does not exist`);
    return;
  }
  if (!s.protected) await problem(c, where, `parent snapshot ${p.pool}/${ph.name}@${s.name} is not protected`);
  if (p.overlap > s.size) await problem(c, where, `parent overlap ${p.overlap} exceeds the parent snapshot size ${s.size}`);
  if (!s.children.some((x) => x.pool === pool && x.imageId === h.id)) {
    await problem(c, where, `parent snapshot ${p.pool}/${ph.name}@${s.name} does not list this clone as a child`, async () => {
      const cur = parseHeader(await fsp.readFile(pp.header, 'utf8'), pp.header);
      await writeHeader(pp.header, {
        ...cur,
        generation: cur.generation + 1,
        snapshots: cur.snapshots.map((x) => (x.id === p.snapId ? { ...x, children: [...x.children, { pool, imageId: h.id }] } : x)),
      });
    });
  }
}

async function checkChildLink(c: Ctx, where: string, pool: string, id: string, snapId: number, child: { pool: string; imageId: string }): Promise<void> {
  const cp: ImagePaths = new PoolPaths(c.store.root, child.pool).image(child.imageId);
  let ch: ImageHeader | undefined;
  try {
    ch = parseHeader(await fsp.readFile(cp.header, 'utf8'), cp.header);
  } catch {
    ch = undefined;
  }
  const fix = (): Promise<void> => dropChildRef(c, { pool, imageId: id, snapId, overlap: 0 }, child);
  if (!ch) {
    await problem(c, where, `lists child ${child.pool}/<id ${child.imageId}>, which does not exist (an interrupted clone or removal)`, fix);
  } else if (!ch.parent || ch.parent.pool !== pool || ch.parent.imageId !== id || ch.parent.snapId !== snapId) {
    await problem(c, where, `lists child ${child.pool}/${ch.name}, which is not a clone of this snapshot (an interrupted flatten)`, fix);
  }
}
