/**
 * The ConfigStore in RADOS on a real (memstore) Ceph cluster: the same contract as the file
 * store (test/helpers/config-contract.ts: two processes' interleaved updates lose nothing, a
 * SIGKILLed lock holder blocks at most its lease, an expired lease cannot commit, invalid
 * documents are refused, another process's commit reaches a watcher, v1 migrates), with the
 * safety re-read set to a minute so that watch/notify alone must deliver. Plus what only RADOS
 * has: the lock is a real cls lock (`rados lock info` shows it, with its expiry), the epoch
 * xattr mirrors the document, a notify reaches another process's watcher in milliseconds, and
 * a watcher whose watch the OSD dropped (process paused past osd_client_watch_timeout) learns it
 * from librados, watches again and hears the next commit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RadosError, RadosObject } from '../../src/ceph/rados-object';
import { CephSettings, cephPool, cephSettingsFromEnv, closeCeph } from '../../src/ceph/settings';
import { RadosConfigStore } from '../../src/config/rados-store';
import { emptyAuth } from '../../src/config/schema';
import { run } from '../helpers/daemon';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { configStoreContract, runWriter } from '../helpers/config-contract';

const NO_POLL = { resyncMs: 60_000 };

describe('RadosConfigStore on a real cluster', () => {
  let cluster: TestCephCluster;
  let ceph: CephSettings;
  let seq = 0;

  before(async () => {
    // A short watch timeout: the paused-watcher test waits for the OSD to drop the watch.
    cluster = await startCephCluster({ watchTimeout: 3 });
    // The children (config-writer) inherit it, as the daemons do.
    process.env.CEPH_CONF = cluster.cephConf;
    const s = cephSettingsFromEnv();
    assert.ok(s, 'CEPH_CONF selects Ceph');
    ceph = s;
  });
  after(async () => {
    await closeCeph();
    await cluster?.stop();
    delete process.env.CEPH_CONF;
  });

  const object = async (oid: string) => new RadosObject(await cephPool(ceph, 'rbd'), 'rbd', oid);
  const text = async (oid: string) => {
    const c = await (await object(oid)).read();
    return c && c.data.length > 0 ? c.data.toString('utf8') : undefined;
  };

  configStoreContract(
    async () => {
      const oid = `gateway.conf.contract${++seq}`;
      return {
        open: () => RadosConfigStore.at(ceph, 'rbd', oid, NO_POLL),
        childSpec: `rados:rbd/${oid}`,
        raw: () => text(oid),
        writeRaw: async (t) => (await object(oid)).writeFull(Buffer.from(t, 'utf8')),
        backup: (version) => text(`${oid}.v${version}.bak`),
      };
    },
    { updates: 50 },
  );

  it('the lock is a cls lock on the object (rados lock info shows owner and expiry); the epoch xattr mirrors the document', async () => {
    const oid = 'gateway.conf.cls';
    const store = await RadosConfigStore.at(ceph, 'rbd', oid, NO_POLL);
    const lock = await store.lock({ owner: 'gateway gw1 (pid 42)', ttlMs: 20_000 });
    const info = await run('rados', ['-p', 'rbd', 'lock', 'info', oid, 'lock', '--format=json'], { env: cluster.env, timeoutMs: 30_000 });
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as { name: string; type: string; lockers: Array<{ cookie: string; description: string; expiration: string }> };
    assert.equal(parsed.name, 'lock');
    assert.equal(parsed.type, 'exclusive');
    assert.equal(parsed.lockers.length, 1);
    assert.equal(parsed.lockers[0].description, 'gateway gw1 (pid 42)');
    assert.notEqual(parsed.lockers[0].expiration, '0.000000', 'the lease expires');
    const r = await store.update((d) => {
      d.targets['iqn.2003-01.com.example:x'] = { acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: {}, clients: {}, groups: {} };
    }, { lock });
    await lock.release();
    const after = await run('rados', ['-p', 'rbd', 'lock', 'info', oid, 'lock', '--format=json'], { env: cluster.env, timeoutMs: 30_000 });
    assert.deepEqual((JSON.parse(after.stdout) as { lockers: unknown[] }).lockers, [], 'released');
    const xattr = await run('rados', ['-p', 'rbd', 'getxattr', oid, 'epoch'], { env: cluster.env, timeoutMs: 30_000 });
    assert.equal(xattr.stdout.trim(), String(r.epoch));
    const doc = JSON.parse((await text(oid)) ?? '{}') as { epoch: number; version: number };
    assert.deepEqual([doc.version, doc.epoch], [11, r.epoch]);
    await store.close();
  });

  it("another process's commit reaches a watcher by notify, not by the (1 min) re-read", async () => {
    const oid = 'gateway.conf.notify';
    const store = await RadosConfigStore.at(ceph, 'rbd', oid, NO_POLL);
    await store.update((d) => {
      d.targets.t1 = { acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: {}, clients: {}, groups: {} };
    });
    const seen = new Map<number, number>();
    const stop = store.watch((s) => {
      if (!seen.has(s.epoch)) seen.set(s.epoch, Date.now());
    });
    for (let i = 0; i < 100 && !seen.has(1); i++) await new Promise((r) => setTimeout(r, 10));
    const latencies: number[] = [];
    for (let round = 0; round < 5; round++) {
      const w = runWriter(`rados:rbd/${oid}`, ['updates', `r${round}`, '1']);
      const res = await w.done;
      assert.equal(res.code, 0, res.err);
      // The writer prints the commit's epoch and time (same host clock) as soon as it returned.
      const m = /commit (\d+) (\d+)/.exec(res.out);
      assert.ok(m, res.out);
      const [epoch, committedAt] = [Number(m[1]), Number(m[2])];
      for (let i = 0; i < 200 && !seen.has(epoch); i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(seen.has(epoch), `epoch ${epoch} not seen within 1 s of the writer's exit (saw ${[...seen.keys()].join(',')})`);
      latencies.push((seen.get(epoch) ?? 0) - committedAt);
    }
    stop();
    await store.close();
    process.stdout.write(`# watch/notify: another process's commit seen by this watcher ${latencies.join(', ')} ms after its update() returned (negative: seen before the busy writer got to stamp the time)\n`);
    assert.ok(Math.max(...latencies) < 1000, `latencies ${latencies.join(', ')} ms`);
  });

  it('a watcher paused past the watch timeout is told, watches again, and hears the next commit', async () => {
    const oid = 'gateway.conf.rewatch';
    const store = await RadosConfigStore.at(ceph, 'rbd', oid, NO_POLL);
    await store.update((d) => {
      d.targets.t1 = { acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: {}, clients: {}, groups: {} };
    });
    const w = runWriter(`rados:rbd/${oid}`, ['watch']);
    try {
      const waitFor = async (what: string, ms: number) => {
        for (let i = 0; i < ms / 20 && !w.out().includes(what); i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(w.out().includes(what), `watcher did not print "${what}" within ${ms} ms:\n${w.out()}`);
      };
      await waitFor('epoch 1', 10_000);
      process.kill(w.pid, 'SIGSTOP');
      // osd_client_watch_timeout is 3 s in this cluster: the OSD drops the silent watcher.
      await new Promise((r) => setTimeout(r, 5000));
      process.kill(w.pid, 'SIGCONT');
      await waitFor('watch lost', 20_000);
      await waitFor('watch restored', 20_000);
      await store.update((d) => void (d.targets.t1.acl_enabled = false));
      await waitFor('epoch 2', 1000);
    } finally {
      w.kill();
      await w.done;
      await store.close();
    }
  });

  it('RadosObject primitives: write/read/stat, xattrs, omap, compare-and-swap steps, locks, remove', async () => {
    const o = await object('primitives');
    const errno = (code: string) => (e: unknown) => e instanceof RadosError && e.code === code;
    assert.equal(await o.read(), undefined);
    assert.equal(await o.stat(), undefined);
    await o.operate([{ op: 'create', exclusive: true }, { op: 'writeFull', data: Buffer.from('hello') }, { op: 'setxattr', name: 'epoch', value: Buffer.from('1') }]);
    await assert.rejects(o.operate([{ op: 'create', exclusive: true }]), errno('EEXIST'));
    const c = await o.read();
    assert.ok(c);
    assert.equal(c.data.toString(), 'hello');
    assert.equal(c.xattrs.get('epoch')?.toString(), '1');
    assert.equal((await o.stat())?.size, 5);
    assert.equal((await o.getXattr('epoch'))?.toString(), '1');
    assert.equal(await o.getXattr('nope'), undefined);
    // cmpxattr: a mismatch cancels the whole compound write.
    await assert.rejects(o.operate([{ op: 'cmpxattr', name: 'epoch', comparison: 'eq', value: Buffer.from('2') }, { op: 'writeFull', data: Buffer.from('lost') }]), errno('ECANCELED'));
    assert.equal((await o.read())?.data.toString(), 'hello');
    await o.operate([{ op: 'cmpxattr', name: 'epoch', comparison: 'eq', value: Buffer.from('1') }, { op: 'writeFull', data: Buffer.from('won') }]);
    assert.equal((await o.read())?.data.toString(), 'won');
    // assert_version: the version read is the version written.
    const v = (await o.read())?.version ?? 0n;
    await assert.rejects(o.operate([{ op: 'assertVersion', version: v + 5n }, { op: 'writeFull', data: Buffer.from('x') }]), (e: unknown) => e instanceof RadosError && (e.code === 'EOVERFLOW' || e.code === 'ERANGE'));
    await o.operate([{ op: 'assertVersion', version: v }, { op: 'writeFull', data: Buffer.from('v') }]);
    // omap, paged internally.
    const entries = new Map<string, Buffer>();
    for (let i = 0; i < 2500; i++) entries.set(`k${String(i).padStart(5, '0')}`, Buffer.from(String(i)));
    await o.omapSet(entries);
    const got = await o.omapGet();
    assert.equal(got.size, 2500);
    assert.equal(got.get('k02499')?.toString(), '2499');
    await o.omapRemove(['k00000', 'k00001']);
    const after = await o.omapGet('k00000', 3);
    assert.deepEqual([...after.keys()], ['k00002', 'k00003', 'k00004']);
    await o.setXattr('other', Buffer.from('y'));
    await o.operate([{ op: 'rmxattr', name: 'other' }]);
    assert.equal(await o.getXattr('other'), undefined);
    // Locks: held, listed, refused to others, broken, expired.
    await o.lockExclusive({ name: 'l', cookie: 'c1', description: 'd1', durationMs: 60_000 });
    await assert.rejects(o.lockExclusive({ name: 'l', cookie: 'c2', description: 'd2', durationMs: 60_000 }), errno('EBUSY'));
    const info = await o.lockers('l');
    assert.equal(info.exclusive, true);
    assert.equal(info.lockers.length, 1);
    assert.equal(info.lockers[0].cookie, 'c1');
    assert.match(info.lockers[0].client, /^client\.\d+$/);
    await o.breakLock('l', info.lockers[0].client, 'c1');
    assert.deepEqual((await o.lockers('l')).lockers, []);
    await assert.rejects(o.unlock('l', 'c1'), errno('ENOENT'));
    await o.lockExclusive({ name: 'l', cookie: 'c3', description: 'short', durationMs: 300 });
    await new Promise((r) => setTimeout(r, 500));
    await assert.rejects(o.lockExclusive({ name: 'l', cookie: 'c3', description: 'short', durationMs: 300, renew: 'must' }), errno('ENOENT'));
    await o.lockExclusive({ name: 'l', cookie: 'c4', description: 'next', durationMs: 1000 });
    await o.lockExclusive({ name: 'l', cookie: 'c4', description: 'next', durationMs: 1000, renew: 'must' });
    await o.unlock('l', 'c4');
    await o.remove();
    assert.equal(await o.read(), undefined);
    await assert.rejects(o.remove(), errno('ENOENT'));
  });
});
