/**
 * The librados/librbd binding (src/ceph) against a real throw-away memstore cluster.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCephBinding } from '../../src/ceph/binding';
import { CephCluster } from '../../src/ceph/cluster';
import { CephError } from '../../src/ceph/errors';
import { useCephCluster } from '../helpers/ceph';

const binding = loadCephBinding();

describe('ceph binding: cluster', () => {
  // Ceph is installed in CI (scripts/install-deps.sh): an unavailable addon is a failure, not a skip.
  test('the addon is built and loads', () => {
    assert.ok(binding.available, binding.available ? '' : binding.reason);
  });

  const cluster = useCephCluster();
  let c: CephCluster;

  before(async () => {
    c = await CephCluster.connect({ confFile: cluster().cephConf, osdOpTimeout: 30, monOpTimeout: 30 });
  });
  after(async () => {
    await c?.shutdown();
  });

  test('connect applies conf overrides after the conf file', () => {
    assert.equal(c.confGet('rados_osd_op_timeout'), '30');
    assert.match(c.fsid(), /^[0-9a-f-]{36}$/);
    assert.ok(c.instanceId() > 0);
    assert.match(c.address(), /127\.0\.0\.1/);
  });

  test('mon commands: health, pools, df, osd counts', async () => {
    assert.match(await c.health(), /^HEALTH_(OK|WARN)$/);
    assert.ok((await c.poolList()).includes(cluster().pool));
    const osds = await c.osdCounts();
    assert.deepEqual(osds, { total: 1, up: 1, in: 1 });
    const df = await c.df();
    assert.ok(Array.isArray(df.pools));
  });

  test('a bad mon command rejects with the errno and the mon status text', async () => {
    await assert.rejects(c.monCommand({ prefix: 'osd pool get', pool: 'no-such-pool', var: 'size' }), (e: unknown) => {
      assert.ok(e instanceof CephError);
      assert.equal(e.code, 'ENOENT');
      assert.match(e.status ?? '', /no-such-pool/);
      return true;
    });
  });

  test('ioctx per pool; a missing pool is ENOENT', async () => {
    const io = await c.openIoCtx(cluster().pool);
    assert.equal(io.poolName(), cluster().pool);
    assert.ok(io.poolId() > 0);
    io.close();
    await assert.rejects(c.openIoCtx('no-such-pool'), (e: unknown) => e instanceof CephError && e.code === 'ENOENT');
  });

  test('blocklist_add fences an address', async () => {
    await c.blocklistAdd('127.0.0.1:0/123456', 60);
    const ls = await cluster().ceph(['osd', 'blocklist', 'ls']).catch(() => '');
    assert.match(ls, /127\.0\.0\.1:0\/123456/);
  });

  test('shutdown refuses while an ioctx is open, then succeeds', async () => {
    const other = await CephCluster.connect({ confFile: cluster().cephConf });
    const io = await other.openIoCtx(cluster().pool);
    await assert.rejects(other.shutdown(), (e: unknown) => e instanceof CephError && e.code === 'EBUSY');
    io.close();
    await other.shutdown();
  });

  test('connect to a missing conf file fails cleanly', async () => {
    await assert.rejects(CephCluster.connect({ confFile: '/nonexistent/ceph.conf' }), (e: unknown) => e instanceof CephError && e.code === 'ENOENT');
  });
});
