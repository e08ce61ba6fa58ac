/** The validation rules and messages of ceph-iscsi (reference §1.5, §4). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COUNT_INVALID, MAX_DISKS, SIZE_INVALID, ValidationError, backstoreProblem, credentialsProblem, diskControlsLimits, diskLimitProblem,
  hostGroupNameProblem, imageNameProblem, normalizeIqn, parseControlsField, parseCount, parseDiskId, parseSize, poolNameProblem,
  requireIqn, snapshotNameProblem, targetControlsLimits, validateDiskControls, validateTargetControls, wwnProblem,
} from '../../../src/config/validation';

test('IQN: lower-cased and trimmed, iqn.YYYY-MM. prefix, no blank, no underscore', () => {
  assert.equal(normalizeIqn('  IQN.2003-01.com.Example:GW  '), 'iqn.2003-01.com.example:gw');
  assert.equal(normalizeIqn('iqn.1994-05.com.redhat:rh7-client'), 'iqn.1994-05.com.redhat:rh7-client');
  for (const bad of ['iqn.2003-1.com.x:y', 'iqn.2003-21.com.x:y', 'iqn.2003-01.comx', 'iqn.2003-01.com.x:a b', 'iqn.2003-01.com.x:a_b',
    'eui.0123456789abcdef', 'naa.6001405abcdef', '', 'iqn.2003-01.com.' + 'x'.repeat(220)]) {
    assert.equal(normalizeIqn(bad), undefined, bad);
  }
  assert.throws(() => requireIqn('eui.01'), (e: unknown) => e instanceof ValidationError && e.message === 'Invalid iqn eui.01 - WWN not valid as: iqn');
});

test('CHAP: every rule in ceph-iscsi order with its message', () => {
  const c = (username: string, password: string, mutual_username = '', mutual_password = '') => credentialsProblem({ username, password, mutual_username, mutual_password });
  assert.equal(c('', ''), undefined, 'all empty = no CHAP');
  assert.equal(c('myiscsiusername', 'myiscsipassword'), undefined);
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutualusername', 'mutualpassword1'), undefined);
  assert.equal(c('myiscsiusername', ''), 'Password is required');
  assert.equal(c('', 'myiscsipassword'), 'Username is required');
  assert.equal(c('', '', 'mutualusername', 'mutualpassword1'), 'Username is required');
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutualusername', ''), 'Mutual password is required');
  assert.equal(c('myiscsiusername', 'myiscsipassword', '', 'mutualpassword1'), 'Mutual username is required');
  assert.equal(c('short', 'myiscsipassword'), 'Minimum length of username is 8 characters');
  assert.equal(c('u'.repeat(65), 'myiscsipassword'), 'Maximum length of username is 64 characters');
  assert.equal(c('user name!', 'myiscsipassword'), 'Invalid username');
  assert.equal(c('user.na:me@x_y-z\\', 'myiscsipassword'), undefined, "'.' ':' '@' '_' '-' and the backslash quirk");
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'short', 'mutualpassword1'), 'Minimum length of mutual username is 8 characters');
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'm'.repeat(65), 'mutualpassword1'), 'Maximum length of mutual username is 64 characters');
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutual user', 'mutualpassword1'), 'Invalid mutual username');
  assert.equal(c('myiscsiusername', 'short'), 'Minimum length of password is 12 characters');
  assert.equal(c('myiscsiusername', 'p'.repeat(17)), 'Maximum length of password is 16 characters');
  assert.equal(c('myiscsiusername', 'pass word 12345'), 'Invalid password');
  assert.equal(c('myiscsiusername', 'pass.word12345'), 'Invalid password', "'.' is not allowed in a password");
  assert.equal(c('myiscsiusername', 'pa@s-w_r/d12345'), undefined);
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutualusername', 'short'), 'Minimum length of mutual password is 12 characters');
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutualusername', 'm'.repeat(17)), 'Maximum length of mutual password is 16 characters');
  assert.equal(c('myiscsiusername', 'myiscsipassword', 'mutualusername', 'mutual&pass123'), 'Invalid mutual password');
  // Username problems come before password problems, as in ceph-iscsi.
  assert.equal(c('short', 'x'), 'Minimum length of username is 8 characters');
  // Unicode letters count as \w (Python 3), length counts code points.
  assert.equal(c('bénédicte', 'mötley-crüe12'), undefined);
});

test('pool and image names, disk ids', () => {
  assert.equal(poolNameProblem('rbd'), undefined);
  assert.equal(poolNameProblem('my.pool-1_x'), undefined);
  assert.equal(poolNameProblem('bad pool'), "Invalid pool name (use alphanumeric, '_', '.', or '-' characters)");
  assert.equal(poolNameProblem(''), "Invalid pool name (use alphanumeric, '_', '.', or '-' characters)");
  assert.equal(imageNameProblem('disk_1'), undefined);
  assert.equal(imageNameProblem('disk/1'), "Invalid image name (use alphanumeric, '_', '.', or '-' characters)");
  assert.equal(imageNameProblem('disk@1'), "Invalid image name (use alphanumeric, '_', '.', or '-' characters)");
  assert.deepEqual(parseDiskId('rbd/disk_1'), { pool: 'rbd', image: 'disk_1' });
  assert.equal(parseDiskId('rbd.disk_1'), undefined);
  assert.equal(parseDiskId('a/b/c'), undefined);
  assert.equal(parseDiskId('/b'), undefined);
});

test('size: N followed by M, G or T in any case', () => {
  assert.equal(parseSize('1G'), 2 ** 30);
  assert.equal(parseSize('10g'), 10 * 2 ** 30);
  assert.equal(parseSize('512m'), 512 * 2 ** 20);
  assert.equal(parseSize('2T'), 2 * 2 ** 40);
  for (const bad of ['1', '1K', '1.5G', 'G', '-1G', '1 G', '', '1GB', '99999999999T']) assert.equal(parseSize(bad), undefined, bad);
  assert.equal(SIZE_INVALID, 'Size is invalid');
});

test('count: 1-10', () => {
  assert.equal(parseCount('1'), 1);
  assert.equal(parseCount('10'), 10);
  for (const bad of ['0', '11', '-1', 'two', '', '1.0']) assert.equal(parseCount(bad), undefined, bad);
  assert.equal(COUNT_INVALID, 'invalid count specified, must be an integer (1-10)');
});

test('WWN: unique, not with count > 1, printable', () => {
  const disks = { 'rbd/a': { wwn: 'c8b6f1c4-2e41-4a7e-9c1b-5d0a3f2b7e11' } };
  assert.equal(wwnProblem('11111111-2222-3333-4444-555555555555', 1, disks), undefined);
  assert.equal(wwnProblem('11111111-2222-3333-4444-555555555555', 2, disks), 'WWN cannot be specified when count > 1');
  assert.equal(wwnProblem('C8B6F1C4-2E41-4A7E-9C1B-5D0A3F2B7E11', 1, disks), 'WWN C8B6F1C4-2E41-4A7E-9C1B-5D0A3F2B7E11 is already in use by rbd/a');
  assert.match(wwnProblem('has space', 1, disks) ?? '', /is invalid/);
  assert.match(wwnProblem('x'.repeat(37), 1, disks) ?? '', /is invalid/);
});

test('disk limit: 1024', () => {
  assert.equal(MAX_DISKS, 1024);
  assert.equal(diskLimitProblem(1023), undefined);
  assert.equal(diskLimitProblem(1024), 'Disk limit of 1024 reached.');
  assert.equal(diskLimitProblem(1020, 5), 'Disk limit of 1024 reached.');
});

test('backstore, host group and snapshot names', () => {
  assert.equal(backstoreProblem('user:rbd'), undefined);
  assert.equal(backstoreProblem('rbd'), undefined);
  assert.equal(backstoreProblem('fileio'), "Invalid 'fileio' backstore - Supported backstores: user:rbd,rbd");
  assert.equal(hostGroupNameProblem('esx-cluster_1@dc'), undefined);
  assert.match(hostGroupNameProblem('a'.repeat(33)) ?? '', /Invalid host group name/);
  assert.match(hostGroupNameProblem('') ?? '', /Invalid host group name/);
  assert.match(hostGroupNameProblem('a.b') ?? '', /Invalid host group name/);
  assert.equal(snapshotNameProblem('snap-1 monday'), undefined);
  assert.equal(snapshotNameProblem('a/b'), 'snapshot name is invalid');
  assert.equal(snapshotNameProblem('a@b'), 'snapshot name is invalid');
  assert.equal(snapshotNameProblem(''), 'snapshot name is invalid');
});

test('controls: JSON object, ranges and messages of ceph-iscsi', () => {
  const msg = (f: () => unknown) => { try { f(); return ''; } catch (e) { assert.ok(e instanceof ValidationError); return e.message; } };
  assert.deepEqual(parseControlsField('{"cmdsn_depth": 64}'), { cmdsn_depth: 64 });
  assert.match(msg(() => parseControlsField('{cmdsn_depth=128}')), /^Unexpected or invalid controls - /);
  assert.equal(msg(() => parseControlsField('[1]')), 'Unexpected or invalid controls - controls must be a JSON object');
  assert.deepEqual(validateTargetControls({ cmdsn_depth: '64', immediate_data: 'No' }), { cmdsn_depth: 64, immediate_data: false });
  assert.deepEqual(validateTargetControls({ cmdsn_depth: '' }), {}, 'empty resets');
  assert.equal(msg(() => validateTargetControls({ cmdsn_depth: 0 })), 'Unexpected or invalid controls - expected integer >= 1 for cmdsn_depth');
  assert.equal(msg(() => validateTargetControls({ cmdsn_depth: 513 })), 'Unexpected or invalid controls - expected integer <= 512 for cmdsn_depth');
  assert.equal(msg(() => validateTargetControls({ cmdsn_depth: 'x' })), 'Unexpected or invalid controls - expected integer for cmdsn_depth');
  assert.equal(msg(() => validateTargetControls({ immediate_data: 'maybe' })), 'Unexpected or invalid controls - expected yes or no for immediate_data');
  assert.match(msg(() => validateTargetControls({ bogus: 1 })), /unsupported target control bogus/);
  assert.deepEqual(validateDiskControls({ emulate_pr: '0', queue_depth: 64 }), { emulate_pr: 0, queue_depth: 64 });
  assert.equal(msg(() => validateDiskControls({ block_size: 1000 })), 'Unexpected or invalid controls - expected [512, 1024, 2048, 4096] for block_size found 1000');
  assert.equal(msg(() => validateDiskControls({ queue_depth: -1 })), 'Unexpected or invalid controls - expected integer >= 0 for queue_depth');
  assert.match(msg(() => validateDiskControls({ pi_prot_type: 1 })), /not supported/);
  assert.match(msg(() => validateDiskControls({ hw_max_sectorz: 1 })), /unsupported disk control/);
  assert.deepEqual(targetControlsLimits().cmdsn_depth, { min: 1, max: 512, type: 'int' });
  assert.deepEqual(targetControlsLimits().immediate_data, { type: 'bool' });
  assert.deepEqual(diskControlsLimits().block_size, { values: [512, 1024, 2048, 4096], type: 'enum' });
});
