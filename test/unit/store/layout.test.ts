import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Layout } from '../../../src/store/layout';
import { changeFeatures, parseFeatures, validateFeatureSet } from '../../../src/store/features';
import { StoreError } from '../../../src/store/errors';

test('default layout: object N is [N*os, (N+1)*os)', () => {
  const l = new Layout(4 << 20, 4 << 20, 1);
  assert.equal(l.objectCount(0), 0);
  assert.equal(l.objectCount(1), 1);
  assert.equal(l.objectCount(4 << 20), 1);
  assert.equal(l.objectCount((4 << 20) + 512), 2);
  assert.equal(l.objectOf((8 << 20) - 1), 1);
  assert.deepEqual(l.objectsIn((4 << 20) - 512, 1024), [0, 1]);
  assert.deepEqual(l.objectExtents(1, (6 << 20)), [[4 << 20, 2 << 20]], 'last object clipped to the size');
  const pieces: number[][] = [];
  l.forEachPiece((4 << 20) - 512, (4 << 20) + 1024, (n, x, len) => pieces.push([n, x, len]));
  assert.deepEqual(pieces, [
    [0, (4 << 20) - 512, 512],
    [1, 4 << 20, 4 << 20],
    [2, 8 << 20, 512],
  ]);
});

test('fancy striping maps stripe units round-robin over an object set (librbd Striper)', () => {
  // object size 64 KiB, stripe unit 16 KiB, stripe count 3: an object set is 3 objects, 192 KiB.
  const su = 16 << 10;
  const l = new Layout(64 << 10, su, 3);
  assert.equal(l.objectOf(0), 0);
  assert.equal(l.objectOf(su), 1);
  assert.equal(l.objectOf(2 * su), 2);
  assert.equal(l.objectOf(3 * su), 0, 'the 4th unit goes back to object 0');
  assert.equal(l.objectOf(12 * su), 3, 'the next object set starts with object 3');
  assert.deepEqual(l.objectExtents(1, 1 << 30), [
    [su, su],
    [4 * su, su],
    [7 * su, su],
    [10 * su, su],
  ]);
  assert.equal(l.objectStart(4), 13 * su);
  // size of one unit + a bit: only objects 0 and 1 hold bytes
  assert.equal(l.objectCount(su + 1), 2);
  assert.equal(l.objectCount(12 * su), 3);
  assert.equal(l.objectCount(12 * su + 1), 4);
  // every byte belongs to exactly the object whose extents contain it
  for (let x = 0; x < 24 * su; x += 4096) {
    const n = l.objectOf(x);
    assert.ok(l.objectExtents(n, 1 << 30).some(([a, len]) => x >= a && x < a + len), `byte ${x} in object ${n}`);
  }
});

test('layout validation rejects impossible shapes', () => {
  assert.throws(() => Layout.validate(11, 2048, 1), /order must be between 12 and 25/);
  assert.throws(() => Layout.validate(26, 1 << 26, 1), /order must be between/);
  assert.throws(() => Layout.validate(22, 3 << 20, 1), /does not divide/);
  assert.throws(() => Layout.validate(22, 8 << 20, 1), /larger than the object size/);
  assert.throws(() => Layout.validate(22, 1 << 20, 0), /stripe count must be at least 1/);
  assert.throws(() => Layout.validate(22, 256, 2), /not a multiple of 512|does not divide/);
  Layout.validate(22, 64 << 10, 16);
});

test('features: names, masks, dependencies and which may change later (librbd rules)', () => {
  assert.deepEqual(parseFeatures(['layering,exclusive-lock', 'object-map']), ['layering', 'exclusive-lock', 'object-map']);
  assert.deepEqual(parseFeatures(['61']), ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
  assert.throws(() => parseFeatures(['foo']), /unknown image feature 'foo'/);
  assert.throws(() => validateFeatureSet(['layering', 'object-map']), /'object-map' requires feature 'exclusive-lock'/);
  assert.throws(() => validateFeatureSet(['exclusive-lock', 'fast-diff']), /'fast-diff' requires feature 'object-map'/);
  const all = parseFeatures(['61']);
  assert.throws(() => changeFeatures(all, ['exclusive-lock'], false), /cannot disable 'exclusive-lock': feature 'object-map' depends on it/);
  assert.deepEqual(changeFeatures(all, ['fast-diff', 'object-map', 'exclusive-lock'], false), ['layering', 'deep-flatten']);
  assert.throws(() => changeFeatures(['exclusive-lock'], ['layering'], true), /can only be set when the image is created/);
  assert.throws(() => changeFeatures(['exclusive-lock'], ['deep-flatten'], true), /can only be set when the image is created/);
  assert.throws(() => changeFeatures(all, ['layering'], false), /cannot be disabled/);
  assert.throws(() => changeFeatures(all, ['object-map'], true), /already enabled/);
  assert.deepEqual(changeFeatures(['layering', 'exclusive-lock'], ['journaling'], true), ['layering', 'exclusive-lock', 'journaling']);
  assert.throws(() => changeFeatures(['layering'], ['object-map'], true), (e: unknown) => e instanceof StoreError && /requires feature 'exclusive-lock'/.test(e.message));
});
