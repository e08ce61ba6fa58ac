/**
 * RBD semantics one rule at a time: what snapshots and clones cost, which operations are
 * refused and why, and that a refused operation changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StoreError, StoreErrorKind } from '../../../src/store/errors';
import { ImageStore } from '../../../src/store/store';
import { GiB, MiB, pattern, tmpStore } from './helpers';

const kind = (k: StoreErrorKind, re?: RegExp) => (e: unknown) => e instanceof StoreError && e.kind === k && (!re || re.test(e.message));

async function headerOf(store: ImageStore, spec: string): Promise<string> {
  const [pool, image] = spec.split('/');
  const { paths } = await store.lookup(pool, image);
  return fs.readFileSync(paths.header, 'utf8');
}

test('a snapshot costs nothing until the head changes; a write then copies only the object it touches', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 64 * MiB, order: 20 });
  const dev = await store.openImage('rbd/img');
  await dev.write(0, pattern(1, 0, 64 * MiB));
  await store.createSnapshot('rbd/img@s');
  const usage = async () => Object.fromEntries((await store.diskUsage({ pool: 'rbd', image: 'img' })).map((u) => [u.snapshot ?? 'head', u.used]));
  assert.equal((await usage()).s, 0, 'a new snapshot holds no data');
  await dev.write(5 * MiB + 4096, Buffer.alloc(4096, 9));
  assert.equal((await usage()).s, MiB, 'one 1 MiB object preserved');
  await dev.write(5 * MiB + 8192, Buffer.alloc(4096, 9));
  assert.equal((await usage()).s, MiB, 'a second write to the same object copies nothing');
  await dev.write(7 * MiB - 512, Buffer.alloc(1024, 9));
  assert.equal((await usage()).s, 3 * MiB, 'a write across an object boundary preserves both objects');
  const sd = await store.openImage('rbd/img@s');
  assert.ok((await sd.read(0, 64 * MiB)).equals(pattern(1, 0, 64 * MiB)), 'the snapshot still shows the old data');
  await sd.close();
  await dev.close();
  void root;
});

test('snapshot creation is O(1): on a 100 GiB image holding data it allocates nothing', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/big', { size: 100 * GiB });
  const dev = await store.openImage('rbd/big');
  for (let i = 0; i < 100; i++) await dev.write(i * GiB, pattern(i, 0, 64 * 1024));
  await store.createSnapshot('rbd/big@s');
  const { paths } = await store.lookup('rbd', 'big');
  const st = fs.statSync(paths.snapData(1));
  assert.equal(st.size, 100 * GiB);
  assert.equal(st.blocks, 0, 'the snapshot file is an empty sparse file');
  assert.equal(fs.statSync(paths.snapMap(1)).size, 25600, 'one map byte per 4 MiB object');
  await dev.close();
  void root;
});

test('clones read through to the parent, copy up only what they write, and leave the parent alone', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/parent', { size: 16 * MiB, order: 20 });
  const p = await store.openImage('rbd/parent');
  const pdata = pattern(7, 0, 16 * MiB);
  await p.write(0, pdata);
  await store.createSnapshot('rbd/parent@base');
  await assert.rejects(store.cloneImage('rbd/parent@base', 'rbd/child'), kind('not-protected', /must be protected/));
  await store.protectSnapshot('rbd/parent@base');
  const info = await store.cloneImage('rbd/parent@base', 'rbd/child');
  assert.deepEqual({ pool: info.parent?.pool, image: info.parent?.image, snap: info.parent?.snapshot, overlap: info.parent?.overlap }, { pool: 'rbd', image: 'parent', snap: 'base', overlap: 16 * MiB });
  assert.deepEqual(await store.listChildren('rbd/parent@base'), ['rbd/child']);
  const c = await store.openImage('rbd/child');
  assert.ok((await c.read(0, 16 * MiB)).equals(pdata), 'a new clone shows the parent data');
  // Writing the parent head after the snapshot does not show through.
  await p.write(0, Buffer.alloc(MiB, 0xee));
  assert.ok((await c.read(0, MiB)).equals(pdata.subarray(0, MiB)));
  // A partial write copies up one object: parent bytes around it, the new bytes in it.
  await c.write(3 * MiB + 512, Buffer.alloc(512, 0x55));
  const want = Buffer.from(pdata);
  want.fill(0x55, 3 * MiB + 512, 3 * MiB + 1024);
  assert.ok((await c.read(0, 16 * MiB)).equals(want));
  const used = (await store.diskUsage({ pool: 'rbd', image: 'child' }))[0].used;
  assert.equal(used, MiB, 'the clone holds exactly one object');
  const ps = await store.openImage('rbd/parent@base');
  assert.ok((await ps.read(0, 16 * MiB)).equals(pdata), 'the parent snapshot is unchanged');
  await ps.close();
  // The parent cannot lose what the clone needs.
  await assert.rejects(store.unprotectSnapshot('rbd/parent@base'), kind('has-children', /1 child image\(s\): rbd\/child/));
  await assert.rejects(store.removeSnapshot('rbd/parent@base'), kind('protected', /protected from removal/));
  await p.close();
  await assert.rejects(store.removeImage('rbd/parent'), kind('has-snapshots', /has snapshots/));
  // Flatten keeps the content and cuts the link.
  await store.flattenImage('rbd/child');
  assert.ok((await c.read(0, 16 * MiB)).equals(want));
  assert.equal((await store.imageInfo('rbd/child')).parent, null);
  assert.deepEqual(await store.listChildren('rbd/parent@base'), []);
  await assert.rejects(store.flattenImage('rbd/child'), kind('invalid-argument', /has no parent/));
  await store.unprotectSnapshot('rbd/parent@base');
  await store.removeSnapshot('rbd/parent@base');
  await store.removeImage('rbd/parent');
  assert.ok((await c.read(0, 16 * MiB)).equals(want), 'the flattened clone outlives its parent');
  await c.close();
});

test('clone of a clone, snapshots of clones, deep flatten and overlap after shrink and grow', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/a', { size: 8 * MiB, order: 20 });
  const a = await store.openImage('rbd/a');
  await a.write(0, pattern(1, 0, 8 * MiB));
  await a.close();
  await store.createSnapshot('rbd/a@s');
  await store.protectSnapshot('rbd/a@s');
  await store.cloneImage('rbd/a@s', 'rbd/b');
  const b = await store.openImage('rbd/b');
  await b.write(MiB, Buffer.alloc(MiB, 2));
  await store.createSnapshot('rbd/b@t');
  await store.protectSnapshot('rbd/b@t');
  await store.cloneImage('rbd/b@t', 'rbd/c');
  const c = await store.openImage('rbd/c');
  const want = pattern(1, 0, 8 * MiB);
  want.fill(2, MiB, 2 * MiB);
  assert.ok((await c.read(0, 8 * MiB)).equals(want), 'grandchild sees parent and child data');
  // Shrink the grandchild below the overlap, grow it back: the regrown range is zeros.
  await store.createSnapshot('rbd/c@before');
  await store.resizeImage('rbd/c', 3 * MiB + 4096, { allowShrink: true });
  await store.resizeImage('rbd/c', 8 * MiB);
  const after = Buffer.from(want);
  after.fill(0, 3 * MiB + 4096);
  assert.ok((await c.read(0, 8 * MiB)).equals(after), 'bytes past the shrink point do not come back from the parent');
  assert.equal((await store.imageInfo('rbd/c')).parent?.overlap, 3 * MiB + 4096);
  const cs = await store.openImage('rbd/c@before');
  assert.ok((await cs.read(0, 8 * MiB)).equals(want), 'the snapshot taken before the shrink keeps everything');
  await cs.close();
  // Write into the regrown part and into the parent part, then deep-flatten.
  await c.write(6 * MiB, Buffer.alloc(4096, 3));
  after.fill(3, 6 * MiB, 6 * MiB + 4096);
  await store.flattenImage('rbd/c');
  assert.ok((await c.read(0, 8 * MiB)).equals(after));
  const cs2 = await store.openImage('rbd/c@before');
  assert.ok((await cs2.read(0, 8 * MiB)).equals(want), 'deep flatten gave the snapshot its own copy');
  await cs2.close();
  await store.unprotectSnapshot('rbd/b@t');
  await store.removeSnapshot('rbd/b@t');
  await c.close();
  await b.close();
});

test('flatten without deep-flatten is refused while the clone has snapshots', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/a', { size: 4 * MiB });
  await store.createSnapshot('rbd/a@s');
  await store.protectSnapshot('rbd/a@s');
  await store.cloneImage('rbd/a@s', 'rbd/b', { features: ['layering'] });
  await store.createSnapshot('rbd/b@x');
  await assert.rejects(store.flattenImage('rbd/b'), kind('unsupported', /deep-flatten/));
  await store.removeSnapshot('rbd/b@x');
  await store.flattenImage('rbd/b');
});

test('refused operations say why and change nothing', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: 16 * MiB });
  const before = await headerOf(store, 'rbd/img');
  await assert.rejects(store.createImage('rbd/img', { size: MiB }), kind('exists', /already exists/));
  await assert.rejects(store.createImage('nopool/img', { size: MiB }), kind('not-found', /pool 'nopool' does not exist/));
  await assert.rejects(store.openImage('rbd/nope'), kind('not-found', /image 'rbd\/nope' does not exist/));
  await assert.rejects(store.openImage('rbd/img@nope'), kind('not-found', /snapshot 'nope' of image 'rbd\/img' does not exist/));
  await assert.rejects(store.resizeImage('rbd/img', 8 * MiB), kind('shrink-not-allowed', /allow-shrink/));
  await assert.rejects(store.createSnapshot('rbd/img'), kind('invalid-argument', /snapshot name was not specified/));
  await assert.rejects(store.createImage('rbd/a@b', { size: MiB }), kind('invalid-argument', /doesn't use it/));
  await assert.rejects(store.createImage('rbd/.x', { size: MiB }), kind('invalid-name', /starts with '\.'/));
  await assert.rejects(store.createImage('rbd/x', { size: MiB, order: 30 }), kind('invalid-argument', /order must be between/));
  await assert.rejects(store.createImage('rbd/x', { size: MiB, features: ['object-map'] }), kind('invalid-argument', /requires feature 'exclusive-lock'/));
  await assert.rejects(store.createImage('rbd/x', { size: 2 ** 50, order: 12 }), kind('limit', /objects/));
  await assert.rejects(store.protectSnapshot('rbd/img@nope'), kind('not-found'));
  await assert.rejects(store.removeSnapshot('rbd/img@nope'), kind('not-found'));
  await assert.rejects(store.rollbackSnapshot('rbd/img@nope'), kind('not-found'));
  await assert.rejects(store.updateFeatures('rbd/img', ['layering'], false), kind('invalid-argument', /cannot be disabled/));
  assert.equal(await headerOf(store, 'rbd/img'), before, 'the header is byte-for-byte unchanged');
  assert.deepEqual(await store.listImages('rbd'), ['img']);
  // Protected snapshot, snapshot limit, busy snapshot, purge.
  await store.createSnapshot('rbd/img@a');
  await store.protectSnapshot('rbd/img@a');
  await assert.rejects(store.protectSnapshot('rbd/img@a'), kind('busy', /already protected/));
  await assert.rejects(store.removeSnapshot('rbd/img@a'), kind('protected'));
  await assert.rejects(store.createSnapshot('rbd/img@a'), kind('exists'));
  await store.setSnapshotLimit('rbd/img', 2);
  await store.createSnapshot('rbd/img@b');
  await assert.rejects(store.createSnapshot('rbd/img@c'), kind('limit', /snapshot limit \(2\)/));
  await assert.rejects(store.setSnapshotLimit('rbd/img', 1), kind('limit', /below the number of existing snapshots/));
  await store.setSnapshotLimit('rbd/img', null);
  await store.createSnapshot('rbd/img@c');
  const sd = await store.openImage('rbd/img@c');
  await assert.rejects(store.removeSnapshot('rbd/img@c'), kind('busy', /open in this process/));
  await sd.close();
  await assert.rejects(store.purgeSnapshots('rbd/img'), kind('protected', /removed 2 snapshot\(s\); 1 protected snapshot\(s\) remain: a/));
  assert.deepEqual((await store.listSnapshots('rbd/img')).map((s) => s.name), ['a']);
  await assert.rejects(store.removeImage('rbd/img'), kind('has-snapshots'));
  // Pools
  await assert.rejects(store.removePool('rbd'), kind('not-empty', /1 image/));
  await assert.rejects(store.createPool('rbd'), kind('exists'));
  await assert.rejects(store.createPool('a/b'), kind('invalid-name'));
});

test('rename images and snapshots; names stay unique', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/one', { size: MiB });
  await store.createImage('rbd/two', { size: MiB });
  await assert.rejects(store.renameImage('rbd/one', 'two'), kind('exists'));
  await store.renameImage('rbd/one', 'three');
  assert.deepEqual(await store.listImages('rbd'), ['three', 'two']);
  assert.equal((await store.imageInfo('rbd/three')).name, 'three');
  await store.createSnapshot('rbd/three@x');
  await store.createSnapshot('rbd/three@y');
  await assert.rejects(store.renameSnapshot('rbd/three@x', 'y'), kind('exists'));
  await store.renameSnapshot('rbd/three@x', 'z');
  assert.deepEqual((await store.listSnapshots('rbd/three')).map((s) => s.name), ['z', 'y']);
});

test('rollback restores the snapshot (size too), keeps newer snapshots intact, and is refused while open', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: 8 * MiB, order: 20 });
  let dev = await store.openImage('rbd/img');
  const v1 = pattern(1, 0, 8 * MiB);
  await dev.write(0, v1);
  await store.createSnapshot('rbd/img@v1');
  const v2 = Buffer.from(v1);
  pattern(2, 0, 3 * MiB).copy(v2, 2 * MiB + 512);
  await dev.write(2 * MiB + 512, v2.subarray(2 * MiB + 512, 5 * MiB + 512));
  await store.resizeImage('rbd/img', 10 * MiB);
  const v2big = Buffer.concat([v2, Buffer.alloc(2 * MiB)]);
  await dev.write(9 * MiB, Buffer.alloc(4096, 4));
  v2big.fill(4, 9 * MiB, 9 * MiB + 4096);
  await store.createSnapshot('rbd/img@v2');
  await assert.rejects(store.rollbackSnapshot('rbd/img@v1'), kind('busy', /in use/));
  await dev.close();
  await store.rollbackSnapshot('rbd/img@v1');
  dev = await store.openImage('rbd/img');
  assert.equal(dev.size(), 8 * MiB);
  assert.ok((await dev.read(0, 8 * MiB)).equals(v1));
  const s2 = await store.openImage('rbd/img@v2');
  assert.ok((await s2.read(0, 10 * MiB)).equals(v2big), 'the newer snapshot is untouched by the rollback');
  await s2.close();
  await dev.close();
  assert.deepEqual((await store.imageInfo('rbd/img')).warnings, []);
});

test('features can be toggled by librbd rules; object-map on/off keeps map status right', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: 8 * MiB });
  const dev = await store.openImage('rbd/img');
  await dev.write(4 * MiB, Buffer.alloc(4096, 1));
  assert.deepEqual(await store.updateFeatures('rbd/img', ['fast-diff', 'object-map'], false), ['layering', 'exclusive-lock', 'deep-flatten']);
  assert.deepEqual((await dev.mapStatus(0, 8 * MiB)).filter((e) => e.state === 'mapped'), [{ offset: 4 * MiB, length: 4096, state: 'mapped' }]);
  await store.updateFeatures('rbd/img', ['object-map'], true);
  await dev.write(0, Buffer.alloc(4096, 1));
  assert.deepEqual(
    (await dev.mapStatus(0, 8 * MiB)).filter((e) => e.state === 'mapped'),
    [
      { offset: 0, length: 4096, state: 'mapped' },
      { offset: 4 * MiB, length: 4096, state: 'mapped' },
    ],
  );
  await dev.close();
  assert.deepEqual((await store.imageInfo('rbd/img')).flags, []);
  await store.updateFeatures('rbd/img', ['journaling'], true);
  assert.ok((await store.imageInfo('rbd/img')).features.includes('journaling'));
});

test('advisory locks (rbd lock add/ls/rm)', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: MiB });
  const l = await store.addLock('rbd/img', 'mylock');
  await assert.rejects(store.addLock('rbd/img', 'other'), kind('busy', /already locked exclusively/));
  assert.deepEqual((await store.listLocks('rbd/img')).advisory.map((x) => x.id), ['mylock']);
  await assert.rejects(store.removeLock('rbd/img', 'mylock', 'client.0'), kind('not-found'));
  await store.removeLock('rbd/img', 'mylock', l.locker);
  await store.addLock('rbd/img', 'a', { tag: 't' });
  await store.addLock('rbd/img', 'b', { tag: 't' });
  await assert.rejects(store.addLock('rbd/img', 'c', { tag: 'u' }), kind('busy', /different tag/));
  await assert.rejects(store.addLock('rbd/img', 'd'), kind('busy', /shared locks/));
  assert.equal((await store.listLocks('rbd/img')).advisory.length, 2);
});

test('discard, WRITE SAME and map status on snapshots and clones', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/p', { size: 8 * MiB, order: 20 });
  const p = await store.openImage('rbd/p');
  await p.write(0, pattern(1, 0, 4 * MiB));
  await store.createSnapshot('rbd/p@s');
  await store.protectSnapshot('rbd/p@s');
  await store.cloneImage('rbd/p@s', 'rbd/c');
  const c = await store.openImage('rbd/c');
  assert.deepEqual(c.capabilities, { discard: true, discardZeroes: true, mapStatus: true, atomicWriteBytes: 1024 * 1024, atomicWriteAlignment: 0, physicalBlockBytes: 4096 });
  assert.deepEqual(await c.mapStatus(0, 8 * MiB), [
    { offset: 0, length: 4 * MiB, state: 'mapped' },
    { offset: 4 * MiB, length: 4 * MiB, state: 'deallocated' },
  ], 'unowned objects report the parent status');
  // Discarding a whole unowned object must hide the parent data, not expose it.
  await c.discard(MiB, MiB);
  assert.ok((await c.read(MiB, MiB)).every((x) => x === 0));
  // Partial discard inside an unowned object: copy up the rest.
  await c.discard(2 * MiB + 4096, 8192);
  const want = pattern(1, 2 * MiB, MiB);
  want.fill(0, 4096, 4096 + 8192);
  assert.ok((await c.read(2 * MiB, MiB)).equals(want));
  const st = await c.mapStatus(0, 4 * MiB);
  assert.deepEqual(st.find((e) => e.offset === MiB), { offset: MiB, length: MiB, state: 'deallocated' });
  assert.ok(st.some((e) => e.offset === 2 * MiB + 4096 && e.state === 'deallocated' && e.length === 8192));
  // WRITE SAME of zeros without deallocation stays mapped.
  await c.writeSame(5 * MiB, MiB, Buffer.alloc(512));
  assert.deepEqual(await c.mapStatus(5 * MiB, MiB), [{ offset: 5 * MiB, length: MiB, state: 'mapped' }]);
  await c.writeSame(6 * MiB, 8192, Buffer.alloc(4096), { deallocate: true });
  assert.deepEqual(await c.mapStatus(6 * MiB, 8192), [{ offset: 6 * MiB, length: 8192, state: 'deallocated' }]);
  // Snapshot status follows the file that holds each object.
  await p.discard(0, MiB);
  const ps = await store.openImage('rbd/p@s');
  assert.deepEqual((await ps.mapStatus(0, MiB))[0], { offset: 0, length: MiB, state: 'mapped' });
  assert.deepEqual(await p.mapStatus(0, MiB), [{ offset: 0, length: MiB, state: 'deallocated' }]);
  await assert.rejects(ps.write(0, Buffer.alloc(512)), (e: Error & { kind?: string }) => e.kind === 'read-only');
  await assert.rejects(ps.discard(0, 512), (e: Error & { kind?: string }) => e.kind === 'read-only');
  await assert.rejects(c.read(8 * MiB - 512, 1024), (e: Error & { kind?: string }) => e.kind === 'out-of-range');
  await ps.close();
  await c.close();
  await p.close();
  await assert.rejects(c.read(0, 512), (e: Error & { kind?: string }) => e.kind === 'closed');
});

test('opening the same image twice for writing in one process is refused; readers are fine', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: MiB });
  const a = await store.openImage('rbd/img');
  await assert.rejects(store.openImage('rbd/img'), kind('busy', /already open for writing in this process/));
  const r = await store.openImage('rbd/img', { readOnly: true });
  await a.write(0, Buffer.alloc(512, 5));
  assert.equal((await r.read(0, 512))[0], 5);
  await r.close();
  await a.close();
  const b = await store.openImage('rbd/img');
  await b.close();
  void path;
});

test('resizing an image announces the new size on its head, never on its snapshots', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: 8 * MiB });
  await store.createSnapshot('rbd/img@s');
  const head = await store.openImage('rbd/img');
  const snap = await store.openImage('rbd/img@s');
  const seen: string[] = [];
  head.onResize((n) => seen.push(`head ${n}`));
  snap.onResize((n) => seen.push(`snap ${n}`));
  await store.resizeImage('rbd/img', 16 * MiB);
  await store.resizeImage('rbd/img', 4 * MiB, { allowShrink: true });
  assert.deepEqual(seen, [`head ${16 * MiB}`, `head ${4 * MiB}`]);
  assert.equal(snap.size(), 8 * MiB);
  await snap.close();
  await head.close();
});
