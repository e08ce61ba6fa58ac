/**
 * The embedded config store: compare-and-swap across processes loses no update, the lock
 * lease of a killed holder blocks others at most its expiry, invalid documents are refused,
 * watchers see commits of other processes, and a v1 gateway.json migrates without loss.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileConfigStore } from '../../../src/config/file-store';
import { emptyV1Document } from '../../../src/config/migrate';
import { emptyAuth } from '../../../src/config/schema';
import { ConfigStoreError } from '../../../src/config/store';

const child = (name: string) => path.join(__dirname, 'children', `${name}.js`);

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'igw-config-'));
}

function runChild(args: string[]): { done: Promise<{ code: number | null; out: string; err: string }>; kill: () => void; out: () => string } {
  const p = spawn(process.execPath, [child('config-writer'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => p.on('close', (code) => r({ code, out, err })));
  return { done, kill: () => p.kill('SIGKILL'), out: () => out };
}

function target() {
  return { acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: {}, clients: {}, groups: {} };
}

describe('FileConfigStore', () => {
  it('two processes doing 100 interleaved read-modify-write updates each lose nothing', async () => {
    const file = path.join(tmp(), 'gateway.json');
    const store = new FileConfigStore(file);
    await store.update((d) => void (d.targets.t1 = target()));
    const a = runChild([file, 'updates', 'a', '100']);
    const b = runChild([file, 'updates', 'b', '100']);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.err);
    assert.equal(rb.code, 0, rb.err);
    const { config, epoch } = await store.read();
    const clients = Object.keys(config.targets.t1.clients);
    assert.equal(clients.length, 200, `lost updates: ${200 - clients.length}`);
    for (let i = 0; i < 100; i++) {
      assert.ok(config.targets.t1.clients[`a-${i}`], `a-${i}`);
      assert.ok(config.targets.t1.clients[`b-${i}`], `b-${i}`);
    }
    assert.equal(epoch, 201, 'one epoch per commit');
  });

  it('a lock holder killed with SIGKILL blocks other writers at most the lease expiry', async () => {
    const file = path.join(tmp(), 'gateway.json');
    const store = new FileConfigStore(file);
    await store.update((d) => void (d.targets.t1 = target()));
    const holder = runChild([file, 'lock', 'holder', '1500']);
    for (let i = 0; i < 200 && !holder.out().includes('locked'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(holder.out().includes('locked'), 'child took the lock');
    // While the holder lives, a writer with a short timeout is refused (it is not ignored).
    await assert.rejects(store.update((d) => void (d.targets.t1.acl_enabled = false), { timeoutMs: 200 }), (e: unknown) => e instanceof ConfigStoreError && e.kind === 'timeout');
    const killedAt = Date.now();
    holder.kill();
    await holder.done;
    // A lease of a dead process on this host is free at once; in any case no later than its expiry.
    const r = await store.update((d) => void (d.targets.t1.acl_enabled = false), { timeoutMs: 10_000 });
    const waited = Date.now() - killedAt;
    assert.equal(r.changed, true);
    assert.ok(waited <= 1500 + 500, `blocked ${waited} ms after the holder died (expiry 1500 ms)`);
  });

  it('a lease that expired while its (live) holder was busy lets others in, and the late holder cannot commit', async () => {
    const file = path.join(tmp(), 'gateway.json');
    const store = new FileConfigStore(file);
    const lock = await store.lock({ owner: 'slow', ttlMs: 300 });
    const other = new FileConfigStore(file);
    const t0 = Date.now();
    await other.update((d) => void (d.targets.t1 = target()), { timeoutMs: 5000 });
    assert.ok(Date.now() - t0 >= 250, 'the other writer waited for the lease');
    await assert.rejects(store.update((d) => void (d.targets.t2 = target()), { lock }), (e: unknown) => e instanceof ConfigStoreError && e.kind === 'lock-lost');
    assert.equal((await store.read()).config.targets.t2, undefined);
  });

  it('refuses a document that breaks the rules and commits nothing', async () => {
    const file = path.join(tmp(), 'gateway.json');
    const store = new FileConfigStore(file);
    await store.update((d) => void (d.targets.t1 = target()));
    const before = fs.readFileSync(file, 'utf8');
    await assert.rejects(store.update((d) => void (d.targets.t1.disks['rbd/nope'] = { lun_id: 0 })), /maps unknown disk rbd\/nope/);
    await assert.rejects(store.update((d) => {
      throw new Error(`mutator says no ${d.epoch}`);
    }), /mutator says no/);
    assert.equal(fs.readFileSync(file, 'utf8'), before);
    const r = await store.update(() => undefined);
    assert.equal(r.changed, false, 'a no-op is not a commit');
    assert.equal(r.epoch, 1);
  });

  it('notifies a watcher of commits made by another process', async () => {
    const file = path.join(tmp(), 'gateway.json');
    const store = new FileConfigStore(file, { pollMs: 200 });
    await store.update((d) => void (d.targets.t1 = target()));
    const seen: number[] = [];
    const stop = store.watch((s) => seen.push(s.epoch));
    const w = runChild([file, 'updates', 'w', '3']);
    assert.equal((await w.done).code, 0);
    for (let i = 0; i < 100 && !seen.includes(4); i++) await new Promise((r) => setTimeout(r, 20));
    stop();
    await store.close();
    assert.ok(seen.includes(4), `saw ${seen.join(',')}`);
  });

  it('migrates a version-1 gateway.json without losing anything and keeps the original', async () => {
    const dir = tmp();
    const file = path.join(dir, 'gateway.json');
    const v1 = emptyV1Document();
    v1.epoch = 7;
    v1.disks['pool1/img'] = { backstore: 'store', pool: 'pool1', image: 'img', wwn: 'w-1', controls: { emulate_tpu: 1 } };
    v1.disks['pool1/img@snap1'] = { backstore: 'store', pool: 'pool1', image: 'img', snapshot: 'snap1', wwn: 'w-2', controls: {} };
    v1.disks['file/raw'] = { backstore: 'file', path: 'images/raw.img', size: 1 << 20, wwn: 'w-3', controls: {} };
    v1.targets['iqn.2003-01.com.example:t1'] = {
      alias: 'one', portal_group_tag: 3, acl_enabled: true, controls: { cmdsn_depth: 64 },
      disks: { 'pool1/img': { lun_id: 0 }, 'pool1/img@snap1': { lun_id: 1 }, 'file/raw': { lun_id: 5 } },
      clients: { 'iqn.1994-05.com.redhat:c1': {} },
    };
    fs.writeFileSync(file, JSON.stringify(v1));
    const store = new FileConfigStore(file);
    assert.equal(await store.migrate({ name: 'gw1', portals: ['127.0.0.1:3260'] }), true);
    assert.equal(await store.migrate({ name: 'gw1', portals: ['127.0.0.1:3260'] }), false, 'only once');
    assert.deepEqual(JSON.parse(fs.readFileSync(`${file}.v1.bak`, 'utf8')), v1);
    const { config } = await store.read();
    assert.equal(config.version, 11);
    assert.equal(config.epoch, 8);
    assert.deepEqual(config.disks['pool1/img'], {
      pool: 'pool1', image: 'img', wwn: 'w-1', backstore: 'rbd', backstore_object_name: 'pool1.img',
      controls: { emulate_tpu: 1 }, allocating_host: 'gw1', owner: 'gw1', created: config.disks['pool1/img'].created,
    });
    assert.equal(config.disks['pool1/img@snap1'].snapshot, 'snap1');
    assert.equal(config.disks['pool1/img@snap1'].backstore, 'rbd');
    assert.equal(config.disks['file/raw'].backstore, 'file');
    assert.equal(config.disks['file/raw'].path, 'images/raw.img');
    assert.equal(config.disks['file/raw'].size, 1 << 20);
    const t = config.targets['iqn.2003-01.com.example:t1'];
    assert.equal(t.alias, 'one');
    assert.equal(t.portal_group_tag, 3);
    assert.equal(t.acl_enabled, true);
    assert.deepEqual(t.controls, { cmdsn_depth: 64 });
    assert.deepEqual(t.disks, v1.targets['iqn.2003-01.com.example:t1'].disks);
    assert.deepEqual(Object.keys(t.clients), ['iqn.1994-05.com.redhat:c1']);
    assert.deepEqual(t.portals.gw1.portal_ip_addresses, ['127.0.0.1']);
    assert.equal(config.gateways.gw1.active_luns, 3);
  });
});
