import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DISABLE_ENV, loadCephBinding } from '../../../src/ceph/binding';
import { CephError, errnoName, toCephError } from '../../../src/ceph/errors';

test('the loader reports the Ceph binding unavailable, with the reason, when disabled', () => {
  // A child process, so this process's cached binding is not involved.
  const script = `
    const { loadCephBinding } = require(${JSON.stringify(require.resolve('../../../src/ceph/binding'))});
    const b = loadCephBinding();
    process.stdout.write(JSON.stringify({ available: b.available, reason: b.available ? '' : b.reason }));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, [DISABLE_ENV]: '1' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { available: boolean; reason: string };
  assert.equal(out.available, false);
  assert.match(out.reason, /ISCSI_GATEWAY_NO_CEPH/);
});

test('the loader never throws and gives a reason or an addon', () => {
  const b = loadCephBinding();
  if (b.available) assert.equal(typeof b.addon.Cluster, 'function');
  else assert.ok(b.reason.length > 0);
});

test('addon errors become CephError with errno and code', () => {
  const raw = Object.assign(new Error('rbd_open: No such file or directory (ENOENT)'), { errno: 2, code: 'ENOENT', syscall: 'rbd_open' });
  const e = toCephError(raw);
  assert.ok(e instanceof CephError);
  assert.equal(e.errno, 2);
  assert.equal(e.code, 'ENOENT');
  assert.equal(e.op, 'rbd_open');
  assert.equal(errnoName(108), 'EBLOCKLISTED');
  assert.equal(errnoName(110), 'ETIMEDOUT');
  const plain = new Error('x');
  assert.equal(toCephError(plain), plain);
});
