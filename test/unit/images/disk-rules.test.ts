/** Backstore rules (reference §6.1): required/unsupported feature masks and the stripe unit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featureMask as featureMaskOf, featureNames } from '../../../src/ceph/features';
import {
  CEPH_ISCSI_DEFAULT_FEATURES, MIN_STRIPE_UNIT, exportProblem, requiredFeatures, unsupportedFeatures,
} from '../../../src/images/disk-rules';

const DEFAULT_MASK = featureMaskOf(CEPH_ISCSI_DEFAULT_FEATURES);

function image(featureMask: number, stripeUnit = 4 << 20, stripeCount = 1) {
  return { pool: 'rbd', image: 'disk_1', featureMask, stripeUnit, stripeCount };
}

test("ceph-iscsi's default features are rbd_default_features 61", () => {
  assert.equal(DEFAULT_MASK, 61);
  assert.deepEqual(featureNames(61), ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
  assert.throws(() => featureMaskOf(['layering', 'no-such']), /unknown RBD feature 'no-such'/);
});

test('masks per backstore: user:rbd needs exclusive-lock, neither takes journaling', () => {
  assert.equal(requiredFeatures('user:rbd'), 4);
  assert.equal(requiredFeatures('rbd'), 0);
  assert.equal(unsupportedFeatures('user:rbd'), 64);
  assert.equal(unsupportedFeatures('rbd'), 64);
});

test('an image with the default features is exportable with both backstores', () => {
  assert.equal(exportProblem('user:rbd', image(DEFAULT_MASK)), undefined);
  assert.equal(exportProblem('rbd', image(DEFAULT_MASK)), undefined);
});

test('layering only (an `rbd create --image-feature layering` image): rbd yes, user:rbd no', () => {
  assert.equal(exportProblem('rbd', image(1)), undefined);
  const p = exportProblem('user:rbd', image(1));
  assert.ok(p);
  assert.match(p, /^\(LUN\.allocate\) rbd 'disk_1' is not compatible with LIO\n/);
  assert.match(p, /Image features exclusive-lock are required by the user:rbd backstore/);
});

test('journaling is refused on both backstores, with the reason and the fix', () => {
  for (const b of ['user:rbd', 'rbd'] as const) {
    const p = exportProblem(b, image(DEFAULT_MASK | 64));
    assert.ok(p, b);
    assert.match(p, /Image features journaling are not supported/);
    assert.match(p, /rbd feature disable rbd\/disk_1 journaling/);
  }
});

test('a stripe unit below 4096 bytes is refused, 4096 itself is fine', () => {
  assert.equal(MIN_STRIPE_UNIT, 4096);
  assert.equal(exportProblem('user:rbd', image(DEFAULT_MASK | 2, 4096, 16)), undefined);
  const p = exportProblem('user:rbd', image(DEFAULT_MASK | 2, 2048, 16));
  assert.ok(p);
  assert.match(p, /stripe unit of less than 4096 bytes cannot be exported \(stripe unit 2048 bytes/);
});

test('every problem is listed, one per line', () => {
  const p = exportProblem('user:rbd', image(1 | 2 | 64, 512, 4));
  assert.ok(p);
  assert.equal(p.split('\n').length, 4, p);
});
