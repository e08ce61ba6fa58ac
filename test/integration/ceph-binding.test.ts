/**
 * The librados/librbd binding (src/ceph) against a real throw-away memstore cluster.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCephBinding } from '../../src/ceph/binding';
import { CephCluster } from '../../src/ceph/cluster';
import { CephError } from '../../src/ceph/errors';
import { RbdAdmin, featureMask } from '../../src/ceph/rbd-admin';
import { RbdImage } from '../../src/ceph/rbd-image';
import { ROOT, run } from '../helpers/daemon';
import { useCephCluster } from '../helpers/ceph';

const binding = loadCephBinding();

const MiB = 1024 * 1024;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ceph binding', () => {
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

  describe('rbd images', () => {
    let admin: RbdAdmin;
    let img: RbdImage;
    const pool = (): string => cluster().pool;

    before(async () => {
      admin = new RbdAdmin(c);
      await admin.create(pool(), 'img1', 64 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] });
      img = await RbdImage.open(c, pool(), 'img1');
    });
    after(async () => {
      await img?.close();
    });

    test('create/list/info: size, object size, features, stripe', async () => {
      await admin.create(pool(), 'striped', 16 * MiB, { features: ['layering'], objectSize: 1 * MiB, stripeUnit: 64 * 1024, stripeCount: 4 });
      const names = (await admin.list(pool())).map((s) => s.name);
      assert.ok(names.includes('img1') && names.includes('striped'));
      const s = await RbdImage.open(c, pool(), 'striped', { readOnly: true });
      const info = await s.info();
      assert.equal(info.size, 16 * MiB);
      assert.equal(info.objectSize, 1 * MiB);
      assert.equal(info.stripeUnit, 64 * 1024);
      assert.equal(info.stripeCount, 4);
      assert.equal(info.parent, null);
      await s.close();
      const i1 = await img.info();
      assert.deepEqual(i1.featureNames, ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
      assert.equal(i1.features, featureMask(i1.featureNames));
      await assert.rejects(admin.create(pool(), 'img1', MiB), (e: unknown) => e instanceof CephError && e.code === 'EEXIST');
      await admin.remove(pool(), 'striped');
    });

    test('write then read is byte-identical, at the start, across objects and at the end', async () => {
      const a = pattern(64 * 1024, 1);
      const b = pattern(5 * MiB, 2); // spans two 4 MiB objects
      const z = pattern(8192, 3);
      await Promise.all([img.write(0, a), img.write(3 * MiB, b), img.write(64 * MiB - 8192, z, { fua: true })]);
      await img.flush();
      assert.ok((await img.read(0, a.length)).equals(a));
      assert.ok((await img.read(3 * MiB, b.length)).equals(b));
      const into = Buffer.alloc(8192);
      const got = await img.read(64 * MiB - 8192, 8192, into);
      assert.equal(got, into, 'reads land in the caller\'s buffer');
      assert.ok(got.equals(z));
      // Many in flight at once through the one completion path.
      const writes = [];
      for (let i = 0; i < 64; i++) writes.push(img.write(40 * MiB + i * 4096, pattern(4096, 100 + i)));
      await Promise.all(writes);
      const reads = await Promise.all(Array.from({ length: 64 }, (_, i) => img.read(40 * MiB + i * 4096, 4096)));
      reads.forEach((r, i) => assert.ok(r.equals(pattern(4096, 100 + i)), `block ${i}`));
      assert.equal(img.inFlight(), 0);
    });

    test('a read past the end rejects with EINVAL', async () => {
      await assert.rejects(img.read(64 * MiB, 4096), (e: unknown) => e instanceof CephError && e.code === 'EINVAL');
    });

    test('writesame repeats the pattern; discard and write_zeroes read back zero', async () => {
      const p = pattern(512, 7);
      await img.writeSame(8 * MiB, 64 * 1024, p);
      const r = await img.read(8 * MiB, 64 * 1024);
      for (let i = 0; i < 128; i++) assert.ok(r.subarray(i * 512, (i + 1) * 512).equals(p), `repeat ${i}`);
      await img.discard(8 * MiB, 64 * 1024);
      assert.ok((await img.read(8 * MiB, 64 * 1024)).equals(Buffer.alloc(64 * 1024)));
      await img.write(9 * MiB, pattern(8192, 8));
      await img.writeZeroes(9 * MiB, 8192);
      assert.ok((await img.read(9 * MiB, 8192)).equals(Buffer.alloc(8192)));
      await assert.rejects(img.writeSame(0, 1000, p), RangeError);
    });

    test('compare_and_write: match writes, mismatch reports the offset and writes nothing', async () => {
      const at = 12 * MiB + 512;
      const old = pattern(512, 11);
      const neu = pattern(512, 12);
      await img.write(12 * MiB, pattern(4096, 10));
      await img.write(at, old);
      assert.deepEqual(await img.compareAndWrite(at, old, neu), { matched: true });
      assert.ok((await img.read(at, 512)).equals(neu));
      const wrong = Buffer.from(neu);
      wrong[300] ^= 0xff;
      assert.deepEqual(await img.compareAndWrite(at, wrong, old), { matched: false, mismatchOffset: 300 });
      assert.ok((await img.read(at, 512)).equals(neu), 'nothing written on a miscompare');
      assert.ok((await img.read(12 * MiB, 512)).equals(pattern(4096, 10).subarray(0, 512)), 'neighbours untouched');
      // librbd's limit (one sector) is refused up front with a clear message.
      await assert.rejects(img.compareAndWrite(at, Buffer.alloc(4096), Buffer.alloc(4096)), (e: unknown) => e instanceof CephError && e.code === 'EINVAL' && /512-byte sector/.test(e.message));
    });

    test('diff_iterate reports allocated extents (GET LBA STATUS)', async () => {
      await admin.create(pool(), 'sparse', 16 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff'] });
      const s = await RbdImage.open(c, pool(), 'sparse');
      await s.write(1 * MiB, pattern(4096, 20));
      await s.write(9 * MiB, pattern(8192, 21));
      const ext = await s.extents(0, 16 * MiB);
      // Contiguous, in order, covering the range.
      let pos = 0;
      for (const e of ext) {
        assert.equal(e.offset, pos);
        pos += e.length;
      }
      assert.equal(pos, 16 * MiB);
      const state = (o: number): boolean => ext.find((e) => e.offset <= o && o < e.offset + e.length)?.allocated ?? false;
      // Written bytes are allocated; objects never written (4-8 MiB, 12-16 MiB) are not. How
      // much of a written object counts as data depends on the object store (memstore: from
      // the object's start).
      for (const o of [1 * MiB, 1 * MiB + 4095, 9 * MiB, 9 * MiB + 8191]) assert.equal(state(o), true, `offset ${o}`);
      for (const o of [4 * MiB, 6 * MiB, 8 * MiB - 1, 12 * MiB, 16 * MiB - 1]) assert.equal(state(o), false, `offset ${o}`);
      const whole = await s.extents(0, 16 * MiB, { wholeObject: true });
      assert.deepEqual(
        whole.filter((e) => e.allocated),
        [
          { offset: 0, length: 4 * MiB, allocated: true },
          { offset: 8 * MiB, length: 4 * MiB, allocated: true },
        ],
      );
      // A sub-range is clipped to the range asked for.
      const sub = await s.extents(9 * MiB + 4096, 4096);
      assert.deepEqual(sub, [{ offset: 9 * MiB + 4096, length: 4096, allocated: true }]);
      await s.close();
      await admin.remove(pool(), 'sparse');
    });

    test('update watch fires when the rbd CLI resizes the image; size() follows', async () => {
      let fired = 0;
      const unwatch = await img.onUpdate(() => fired++);
      await cluster().rbd(['resize', '--size', '96M', `${pool()}/img1`, '--no-progress']);
      await waitFor(() => fired > 0 && img.size() === 96 * MiB, 10_000, 'the update notification');
      assert.equal((await img.info()).size, 96 * MiB);
      await unwatch();
      // Resize through the binding too (shrink needs allowShrink).
      await assert.rejects(img.resize(64 * MiB), (e: unknown) => e instanceof CephError && e.code === 'EINVAL');
      await img.resize(64 * MiB, { allowShrink: true });
      assert.equal(img.size(), 64 * MiB);
    });

    test('metadata get/set/list/remove; a missing key is ENOENT', async () => {
      await img.metadataSet('conf_rbd_cache', 'false');
      await img.metadataSet('iscsi.owner', 'gw1');
      assert.equal(await img.metadataGet('iscsi.owner'), 'gw1');
      assert.deepEqual(await img.metadataList(), { conf_rbd_cache: 'false', 'iscsi.owner': 'gw1' });
      await img.metadataRemove('iscsi.owner');
      await assert.rejects(img.metadataGet('iscsi.owner'), (e: unknown) => e instanceof CephError && e.code === 'ENOENT');
    });

    test('snapshots, rollback, protect, clone v2, children, flatten', async () => {
      const before1 = pattern(4096, 30);
      await img.write(0, before1);
      await img.snapCreate('s1');
      await img.write(0, pattern(4096, 31));
      const snaps = await img.snapList();
      assert.deepEqual(
        snaps.map((s) => [s.name, s.size, s.protected]),
        [['s1', 64 * MiB, false]],
      );
      const atSnap = await RbdImage.open(c, pool(), 'img1', { snapshot: 's1' });
      assert.ok(atSnap.readOnly);
      assert.ok((await atSnap.read(0, 4096)).equals(before1));
      await assert.rejects(atSnap.write(0, before1), (e: unknown) => e instanceof CephError && e.code === 'EROFS');
      await atSnap.close();

      await img.snapProtect('s1');
      assert.equal(await img.snapIsProtected('s1'), true);
      await admin.clone(pool(), 'img1', 's1', pool(), 'child1', { features: ['layering', 'exclusive-lock', 'deep-flatten'] });
      assert.deepEqual(
        (await admin.children(pool(), 'img1', 's1')).map((ch) => ch.image),
        ['child1'],
      );
      const child = await RbdImage.open(c, pool(), 'child1');
      const ci = await child.info();
      assert.equal(ci.parent?.image, 'img1');
      assert.equal(ci.parent?.snapshot, 's1');
      assert.ok((await child.read(0, 4096)).equals(before1), "the clone reads its parent's data");
      // Clone v2: a child does not need its snapshot protected, so unprotect succeeds.
      await img.snapUnprotect('s1');
      assert.equal(await img.snapIsProtected('s1'), false);
      await child.flatten();
      assert.equal((await child.info()).parent, null);
      assert.ok((await child.read(0, 4096)).equals(before1));
      await child.close();
      assert.deepEqual(await admin.children(pool(), 'img1', 's1'), []);
      await img.snapRollback('s1');
      assert.ok((await img.read(0, 4096)).equals(before1));
      await img.snapRemove('s1');
      assert.deepEqual(await img.snapList(), []);
      await admin.remove(pool(), 'child1');
    });

    test('exclusive lock: acquire, owners, break (blocklists the owner)', async () => {
      await admin.create(pool(), 'locked', 8 * MiB, { features: ['layering', 'exclusive-lock'] });
      const other = await CephCluster.connect({ confFile: cluster().cephConf });
      const a = await RbdImage.open(other, pool(), 'locked');
      await a.lockAcquire();
      assert.equal(await a.isLockOwner(), true);
      const b = await RbdImage.open(c, pool(), 'locked');
      const owners = await b.lockOwners();
      assert.equal(owners.mode, 'exclusive');
      assert.equal(owners.owners.length, 1);
      assert.equal(await b.isLockOwner(), false);
      assert.ok((await b.watchers()).length >= 2);
      await b.lockBreak(owners.owners[0]);
      // The broken owner is blocklisted: its writes fail from now on.
      const bl = await cluster().ceph(['osd', 'blocklist', 'ls']);
      assert.match(bl, new RegExp(other.address().replace(/^v\d:/, '').split('/')[0].replace(/\./g, '\\.')));
      await b.lockAcquire();
      assert.equal(await b.isLockOwner(), true);
      await b.write(0, pattern(4096, 40));
      await b.lockRelease();
      await b.close();
      await a.close().catch(() => undefined); // fenced: its close may report the blocklisting
      await other.shutdown().catch(() => undefined);
      await admin.remove(pool(), 'locked');
    });

    test('errors carry the errno: open of a missing image is ENOENT; ops after close are EBADF', async () => {
      await assert.rejects(RbdImage.open(c, pool(), 'no-such-image'), (e: unknown) => e instanceof CephError && e.code === 'ENOENT' && e.errno === 2);
      await assert.rejects(admin.remove(pool(), 'no-such-image'), (e: unknown) => e instanceof CephError && e.code === 'ENOENT');
      const t = await RbdImage.open(c, pool(), 'img1', { readOnly: true });
      await t.close();
      await assert.rejects(t.read(0, 512), (e: unknown) => e instanceof CephError && e.code === 'EBADF');
      await t.close(); // idempotent
    });

    test('close with I/O in flight waits for it', async () => {
      const t = await RbdImage.open(c, pool(), 'img1');
      const w = t.write(20 * MiB, pattern(MiB, 50));
      const closed = t.close();
      await w;
      await closed;
      const r = await RbdImage.open(c, pool(), 'img1', { readOnly: true });
      assert.ok((await r.read(20 * MiB, MiB)).equals(pattern(MiB, 50)));
      await r.close();
    });
  });

  test('close + shutdown lets a process exit on its own', async () => {
    const script = `
      const { CephCluster } = require(${JSON.stringify(`${ROOT}/dist/src/ceph/cluster.js`)});
      const { RbdImage } = require(${JSON.stringify(`${ROOT}/dist/src/ceph/rbd-image.js`)});
      (async () => {
        const c = await CephCluster.connect({ confFile: process.argv[1] });
        const img = await RbdImage.open(c, process.argv[2], 'img1');
        await img.onUpdate(() => {});
        await img.write(0, Buffer.alloc(4096, 1));
        await img.close();
        await c.shutdown();
        console.log('done');
      })();
    `;
    const r = await run(process.execPath, ['-e', script, cluster().cephConf, cluster().pool], { timeoutMs: 30_000 });
    assert.equal(r.signal, null, 'exited on its own (not killed by the timeout)');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
  });
});
