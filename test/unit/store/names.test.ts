import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageNameProblem, parseImageSpec, poolNameProblem, snapNameProblem } from '../../../src/store/names';
import { StoreError } from '../../../src/store/errors';

test('pool and image names follow RBD rules and say exactly what is wrong', () => {
  assert.equal(poolNameProblem('iscsi-images'), undefined);
  assert.equal(imageNameProblem('testvol'), undefined);
  assert.equal(imageNameProblem('with space and ünïcode'), undefined, 'rbd allows any character but / and @');
  assert.match(poolNameProblem('') ?? '', /pool name is empty/);
  assert.match(poolNameProblem('a/b') ?? '', /contains '\/'/);
  assert.match(imageNameProblem('a@b') ?? '', /contains '@'/);
  assert.match(imageNameProblem('.hidden') ?? '', /starts with '\.'/);
  assert.match(poolNameProblem('..') ?? '', /starts with '\.'/);
  assert.match(imageNameProblem('x'.repeat(96)) ?? '', /too long \(96 bytes, at most 95\)/);
  assert.equal(imageNameProblem('x'.repeat(95)), undefined);
  assert.match(imageNameProblem('é'.repeat(48)) ?? '', /96 bytes/, 'length counts UTF-8 bytes');
  assert.match(imageNameProblem('a\nb') ?? '', /control character 0x0a/);
  assert.match(poolNameProblem('p'.repeat(128)) ?? '', /at most 127/);
});

test('snapshot names: no / or @, leading dot allowed', () => {
  assert.equal(snapNameProblem('before-upgrade'), undefined);
  assert.equal(snapNameProblem('.snap'), undefined);
  assert.match(snapNameProblem('a/b') ?? '', /contains '\/'/);
  assert.match(snapNameProblem('a@b') ?? '', /contains '@'/);
  assert.match(snapNameProblem('') ?? '', /empty/);
});

test('image specs: pool/image@snap with a default pool', () => {
  assert.deepEqual(parseImageSpec('testvol'), { pool: 'rbd', image: 'testvol' });
  assert.deepEqual(parseImageSpec('testvol', { pool: 'iscsi-images' }), { pool: 'iscsi-images', image: 'testvol' });
  assert.deepEqual(parseImageSpec('p/i', { pool: 'other' }), { pool: 'p', image: 'i' }, 'a pool in the spec wins over --pool');
  assert.deepEqual(parseImageSpec('p/i@s', { snapshot: 'permitted' }), { pool: 'p', image: 'i', snapshot: 's' });
  assert.deepEqual(parseImageSpec('i@s', { snapshot: 'required' }), { pool: 'rbd', image: 'i', snapshot: 's' });
  const bad = (spec: string, opts: Parameters<typeof parseImageSpec>[1], re: RegExp): void => {
    assert.throws(
      () => parseImageSpec(spec, opts),
      (e: unknown) => e instanceof StoreError && re.test(e.message),
    );
  };
  bad('p/i@s', {}, /snapshot name specified for a command that doesn't use it/);
  bad('p/i', { snapshot: 'required' }, /snapshot name was not specified/);
  bad('p/ns/i', {}, /namespaces are not supported/);
  bad('p/', {}, /image name was not specified/);
  bad('', {}, /image name was not specified/);
  bad('/i', {}, /pool name is empty/);
  bad('p/i@', { snapshot: 'permitted' }, /snapshot name is empty/);
  bad('p/i@a/b', { snapshot: 'permitted' }, /namespaces|contains '\/'/);
});
