/** Export, import and copy: content round-trips, and thin data stays thin. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { copyImage, exportImage, importImage } from '../../../src/store/transfer';
import { StoreError } from '../../../src/store/errors';
import { MiB, pattern, tmpDir, tmpStore } from './helpers';

test('export writes a sparse raw file; import reads it back thin; both round-trip exactly', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: 64 * MiB + 4096 });
  const dev = await store.openImage('rbd/img');
  const a = pattern(1, 0, MiB);
  await dev.write(3 * MiB, a);
  await dev.write(64 * MiB, Buffer.alloc(4096, 7));
  await store.createSnapshot('rbd/img@s');
  await dev.write(3 * MiB, Buffer.alloc(4096, 9));
  await dev.close();
  const dir = tmpDir();
  const file = path.join(dir, 'img.raw');
  const progress: number[] = [];
  assert.equal(await exportImage(store, { pool: 'rbd', image: 'img', snapshot: 's' }, file, (d) => progress.push(d)), 64 * MiB + 4096);
  assert.equal(progress[progress.length - 1], 64 * MiB + 4096);
  const st = fs.statSync(file);
  assert.equal(st.size, 64 * MiB + 4096);
  assert.ok(st.blocks * 512 <= 2 * MiB, `export is sparse (${st.blocks * 512} bytes allocated)`);
  const raw = fs.readFileSync(file);
  assert.ok(raw.subarray(3 * MiB, 4 * MiB).equals(a), 'the snapshot was exported, not the head');
  assert.equal(raw[64 * MiB], 7);
  await importImage(store, file, { pool: 'rbd', image: 'back' });
  const back = await store.openImage('rbd/back');
  assert.equal(back.size(), 64 * MiB + 4096);
  assert.ok((await back.read(0, back.size())).equals(raw));
  assert.ok((await store.diskUsage({ pool: 'rbd', image: 'back' }))[0].used <= 2 * MiB, 'import skipped the zeros');
  await back.close();
  await assert.rejects(importImage(store, path.join(dir, 'missing'), { pool: 'rbd', image: 'x' }), (e: unknown) => e instanceof StoreError && e.kind === 'not-found');
  assert.deepEqual(await store.listImages('rbd'), ['back', 'img'], 'a failed import leaves no image behind');
});

test('stream export and import (stdin/stdout style), size not a multiple of the chunk', async () => {
  const { store } = await tmpStore();
  const size = 9 * MiB + 512;
  const data = pattern(3, 0, size);
  data.fill(0, MiB, 5 * MiB);
  await importImage(store, Readable.from([data.subarray(0, 12345), data.subarray(12345, 7 * MiB), data.subarray(7 * MiB)]), { pool: 'rbd', image: 's' });
  const dev = await store.openImage('rbd/s');
  assert.equal(dev.size(), size);
  assert.ok((await dev.read(0, size)).equals(data));
  await dev.close();
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  await exportImage(store, { pool: 'rbd', image: 's' }, sink);
  assert.ok(Buffer.concat(chunks).equals(data));
});

test('copy duplicates an image, a snapshot, or a clone (flattened) with the same shape', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/p', { size: 16 * MiB, order: 20, features: ['layering', 'exclusive-lock'] });
  const p = await store.openImage('rbd/p');
  const v1 = pattern(1, 0, 16 * MiB);
  v1.fill(0, 4 * MiB, 12 * MiB);
  await p.write(0, v1);
  await store.createSnapshot('rbd/p@s');
  await p.write(0, Buffer.alloc(MiB, 2));
  await store.protectSnapshot('rbd/p@s');
  await store.cloneImage('rbd/p@s', 'rbd/c', { order: 20 });
  const c = await store.openImage('rbd/c');
  await c.write(13 * MiB, Buffer.alloc(4096, 3));
  await c.close();
  await p.close();
  await copyImage(store, { pool: 'rbd', image: 'p', snapshot: 's' }, { pool: 'rbd', image: 'p2' });
  const p2 = await store.openImage('rbd/p2');
  assert.ok((await p2.read(0, 16 * MiB)).equals(v1));
  const info = await store.imageInfo('rbd/p2');
  assert.equal(info.order, 20);
  assert.deepEqual(info.features, ['layering', 'exclusive-lock']);
  assert.ok((await store.diskUsage({ pool: 'rbd', image: 'p2' }))[0].used <= 8 * MiB + 64 * 1024, 'holes stay holes');
  await p2.close();
  await copyImage(store, { pool: 'rbd', image: 'c' }, { pool: 'rbd', image: 'c2' });
  const c2 = await store.openImage('rbd/c2');
  const want = Buffer.from(v1);
  want.fill(3, 13 * MiB, 13 * MiB + 4096);
  assert.ok((await c2.read(0, 16 * MiB)).equals(want));
  assert.equal((await store.imageInfo('rbd/c2')).parent, null, 'a copy of a clone is independent');
  const mapped = (await c2.mapStatus(0, 16 * MiB)).filter((e) => e.state === 'mapped');
  assert.ok(mapped.some((e) => e.offset <= 13 * MiB && e.offset + e.length >= 13 * MiB + 4096), 'the object map of the copy knows its data');
  await c2.close();
  await assert.rejects(copyImage(store, { pool: 'rbd', image: 'p' }, { pool: 'rbd', image: 'c2' }), (e: unknown) => e instanceof StoreError && e.kind === 'exists');
});
