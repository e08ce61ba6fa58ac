/**
 * Model-based tests: random sequences of writes, discards, WRITE SAME, snapshots, snapshot
 * removal, rollback, resize, clones and flatten, applied both to the store and to plain
 * in-memory buffers; after every step every view (each head, each snapshot) must read back
 * exactly as the model says. Small objects (64 KiB) and sizes that are not object multiples
 * put many operations on object boundaries and partial objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageStore } from '../../../src/store/store';
import { StoreImageDevice } from '../../../src/store/device';
import { checkStore } from '../../../src/store/check';
import { assertSame, firstNonZero, KiB, MiB, pattern, randInt, rng, tmpStore } from './helpers';

interface ModelImage {
  name: string;
  head: Buffer;
  snaps: Map<string, Buffer>;
  dev: StoreImageDevice;
  children: Map<string, number>; // snapshot -> number of clones
  parentSnap?: { image: string; snap: string };
}

interface Shape {
  order: number;
  stripeUnit?: number;
  stripeCount?: number;
}

function resized(b: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  b.copy(out, 0, 0, Math.min(size, b.length));
  return out;
}

async function verifyAll(store: ImageStore, images: Map<string, ModelImage>, step: string): Promise<void> {
  for (const img of images.values()) {
    assert.equal(img.dev.size(), img.head.length, `${step}: size of ${img.name}`);
    const got = await img.dev.read(0, img.head.length);
    assertSame(got, img.head, `${step}: head of ${img.name}`);
    // Whatever is reported deallocated must read as zeros (LBPRZ).
    for (const e of await img.dev.mapStatus(0, img.head.length)) {
      if (e.state === 'deallocated') {
        const i = firstNonZero(img.head, e.offset, e.length);
        if (i >= 0) throw new Error(`${step}: ${img.name} reports ${e.offset}+${e.length} deallocated but byte ${i} is ${img.head[i]}`);
      }
    }
    for (const [sname, data] of img.snaps) {
      const sd = await store.openImage(`rbd/${img.name}@${sname}`);
      try {
        assert.equal(sd.size(), data.length, `${step}: size of ${img.name}@${sname}`);
        assertSame(await sd.read(0, data.length), data, `${step}: ${img.name}@${sname}`);
      } finally {
        await sd.close();
      }
    }
  }
}

async function runModel(seed: number, shape: Shape, steps: number): Promise<void> {
  const r = rng(seed);
  const { store } = await tmpStore();
  const os = 2 ** shape.order;
  const size0 = 8 * MiB + 3 * 512; // not a multiple of the object size
  await store.createImage('rbd/base', { size: size0, order: shape.order, stripeUnit: shape.stripeUnit, stripeCount: shape.stripeCount });
  const images = new Map<string, ModelImage>();
  images.set('base', { name: 'base', head: Buffer.alloc(size0), snaps: new Map(), dev: await store.openImage('rbd/base'), children: new Map() });
  let tag = 1;
  let snapNo = 0;
  let cloneNo = 0;

  // Offsets biased towards object and stripe-unit boundaries.
  const pickRange = (size: number, maxLen: number): [number, number] => {
    const unit = shape.stripeUnit ?? os;
    let off: number;
    const k = r();
    if (k < 0.4) off = Math.max(0, Math.min(size - 512, Math.round((randInt(r, Math.ceil(size / unit)) * unit) / 512) * 512 - 512 * randInt(r, 3)));
    else off = randInt(r, size / 512) * 512;
    const len = Math.min(size - off, (1 + randInt(r, maxLen / 512)) * 512);
    return [off, len];
  };

  for (let step = 0; step < steps; step++) {
    const names = [...images.keys()];
    const img = images.get(names[randInt(r, names.length)])!;
    const size = img.head.length;
    const op = r();
    let what: string;
    if (op < 0.35 && size > 0) {
      const [off, len] = pickRange(size, 3 * os);
      const data = pattern(tag++, off, len);
      await img.dev.write(off, data, { fua: r() < 0.1 });
      data.copy(img.head, off);
      what = `write ${img.name} ${off}+${len}`;
    } else if (op < 0.45 && size > 0) {
      const [off, len] = pickRange(size, 2 * os);
      await img.dev.discard(off, len);
      img.head.fill(0, off, off + len);
      what = `discard ${img.name} ${off}+${len}`;
    } else if (op < 0.5 && size > 0) {
      const [off, len0] = pickRange(size, 2 * os);
      const len = len0 - (len0 % 512);
      if (len === 0) continue;
      const zero = r() < 0.5;
      const pat = zero ? Buffer.alloc(512) : pattern(tag++, 0, 512);
      await img.dev.writeSame(off, len, pat, { deallocate: zero && r() < 0.5 });
      for (let p = off; p < off + len; p += 512) pat.copy(img.head, p);
      what = `writeSame ${img.name} ${off}+${len} zero=${zero}`;
    } else if (op < 0.62) {
      const name = `s${++snapNo}`;
      await store.createSnapshot(`rbd/${img.name}@${name}`);
      img.snaps.set(name, Buffer.from(img.head));
      what = `snap ${img.name}@${name}`;
    } else if (op < 0.7 && img.snaps.size > 0) {
      const snaps = [...img.snaps.keys()];
      const s = snaps[randInt(r, snaps.length)];
      if ((img.children.get(s) ?? 0) > 0) continue;
      const info = await store.imageInfo(`rbd/${img.name}@${s}`);
      if (info.snapshot?.protected) await store.unprotectSnapshot(`rbd/${img.name}@${s}`);
      await store.removeSnapshot(`rbd/${img.name}@${s}`);
      img.snaps.delete(s);
      what = `snap rm ${img.name}@${s}`;
    } else if (op < 0.75 && img.snaps.size > 0) {
      const snaps = [...img.snaps.keys()];
      const s = snaps[randInt(r, snaps.length)];
      await img.dev.close();
      await store.rollbackSnapshot(`rbd/${img.name}@${s}`);
      img.dev = await store.openImage(`rbd/${img.name}`);
      img.head = Buffer.from(img.snaps.get(s)!);
      what = `rollback ${img.name}@${s}`;
    } else if (op < 0.83) {
      const grow = r() < 0.5 || size < 2 * os;
      const newSize = grow ? size + (1 + randInt(r, 3 * os / 512)) * 512 : Math.max(512, size - (1 + randInt(r, (2 * os) / 512)) * 512);
      await store.resizeImage(`rbd/${img.name}`, newSize, { allowShrink: !grow });
      img.head = resized(img.head, newSize);
      what = `resize ${img.name} ${size} -> ${newSize}`;
    } else if (op < 0.9 && img.snaps.size > 0 && cloneNo < 4) {
      const snaps = [...img.snaps.keys()];
      const s = snaps[randInt(r, snaps.length)];
      const info = await store.imageInfo(`rbd/${img.name}@${s}`);
      if (!info.snapshot?.protected) await store.protectSnapshot(`rbd/${img.name}@${s}`);
      const cname = `clone${++cloneNo}`;
      await store.cloneImage(`rbd/${img.name}@${s}`, `rbd/${cname}`, { order: shape.order, stripeUnit: shape.stripeUnit, stripeCount: shape.stripeCount });
      images.set(cname, { name: cname, head: Buffer.from(img.snaps.get(s)!), snaps: new Map(), dev: await store.openImage(`rbd/${cname}`), children: new Map(), parentSnap: { image: img.name, snap: s } });
      img.children.set(s, (img.children.get(s) ?? 0) + 1);
      what = `clone ${img.name}@${s} -> ${cname}`;
    } else if (img.parentSnap) {
      await store.flattenImage(`rbd/${img.name}`);
      const p = images.get(img.parentSnap.image)!;
      p.children.set(img.parentSnap.snap, p.children.get(img.parentSnap.snap)! - 1);
      img.parentSnap = undefined;
      what = `flatten ${img.name}`;
    } else continue;
    await verifyAll(store, images, `seed ${seed} step ${step} (${what})`);
  }
  for (const img of images.values()) await img.dev.close();
  const chk = await checkStore(store, undefined);
  assert.deepEqual(chk.problems, [], `check after seed ${seed}`);
}

test('random operations, default layout, 64 KiB objects', async () => {
  for (const seed of [1, 2, 3]) await runModel(seed, { order: 16 }, 120);
});

test('random operations, fancy striping (16 KiB units over 3 objects of 64 KiB)', async () => {
  for (const seed of [11, 12]) await runModel(seed, { order: 16, stripeUnit: 16 * KiB, stripeCount: 3 }, 100);
});

test('random operations, 4 MiB objects (the default) with small images', async () => {
  await runModel(21, { order: 22 }, 60);
});
