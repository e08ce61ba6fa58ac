/**
 * The ConfigStore contract, run against each implementation (the embedded file store in
 * test/unit/config/file-store.test.ts, the RADOS object in test/integration/ceph-config-store
 * .test.ts): compare-and-swap across processes loses no update, the lock lease of a killed
 * holder blocks others at most its expiry, an expired lease cannot commit, invalid documents
 * are refused, watchers see commits of other processes, and a v1 document migrates without loss.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { emptyV1Document } from '../../src/config/migrate';
import type { MigratingGateway } from '../../src/config/migrate';
import { emptyAuth } from '../../src/config/schema';
import type { TargetConfig } from '../../src/config/schema';
import { ConfigStore, ConfigStoreError } from '../../src/config/store';

/** One fresh, empty store location per test. */
export interface ContractLocation {
  /** A new store instance on this location (a process may hold several). */
  open(options?: { readonly fastWatch?: boolean }): Promise<ConfigStore & { migrate(g: MigratingGateway): Promise<boolean> }>;
  /** What test/unit/config/children/config-writer.js takes to open the same location. */
  readonly childSpec: string;
  /** The stored bytes now (undefined: nothing stored). */
  raw(): Promise<string | undefined>;
  /** Store bytes as they are (an old-format document). */
  writeRaw(text: string): Promise<void>;
  /** The backup the migration keeps of a v<version> document. */
  backup(version: number): Promise<string | undefined>;
}

const writer = path.join(__dirname, '..', 'unit', 'config', 'children', 'config-writer.js');

export function runWriter(spec: string, args: string[]): { done: Promise<{ code: number | null; out: string; err: string }>; kill: () => void; out: () => string; pid: number } {
  const p = spawn(process.execPath, [writer, spec, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => p.on('close', (code) => r({ code, out, err })));
  return { done, kill: () => p.kill('SIGKILL'), out: () => out, pid: p.pid ?? -1 };
}

function target(): TargetConfig {
  return { acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: {}, clients: {}, groups: {} };
}

export interface ContractOptions {
  /** Interleaved updates per process (default 100). */
  readonly updates?: number;
  /**
   * How long after the holder's death its lock may still block (file store: the lease of a
   * dead local pid is free at once; RADOS: the lease's own expiry).
   */
  readonly killedHolderSlackMs?: number;
}

/** Register the contract's tests (inside the caller's describe). */
export function configStoreContract(location: () => Promise<ContractLocation>, options: ContractOptions = {}): void {
  const n = options.updates ?? 100;

  it(`two processes doing ${n} interleaved read-modify-write updates each lose nothing`, async () => {
    const loc = await location();
    const store = await loc.open();
    await store.update((d) => void (d.targets.t1 = target()));
    const a = runWriter(loc.childSpec, ['updates', 'a', String(n)]);
    const b = runWriter(loc.childSpec, ['updates', 'b', String(n)]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.err);
    assert.equal(rb.code, 0, rb.err);
    const { config, epoch } = await store.read();
    const clients = Object.keys(config.targets.t1.clients);
    assert.equal(clients.length, 2 * n, `lost updates: ${2 * n - clients.length}`);
    for (let i = 0; i < n; i++) {
      assert.ok(config.targets.t1.clients[`a-${i}`], `a-${i}`);
      assert.ok(config.targets.t1.clients[`b-${i}`], `b-${i}`);
    }
    assert.equal(epoch, 2 * n + 1, 'one epoch per commit');
    await store.close();
  });

  it('a lock holder killed with SIGKILL blocks other writers at most the lease expiry', async () => {
    const loc = await location();
    const store = await loc.open();
    await store.update((d) => void (d.targets.t1 = target()));
    const holder = runWriter(loc.childSpec, ['lock', 'holder', '1500']);
    for (let i = 0; i < 400 && !holder.out().includes('locked'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(holder.out().includes('locked'), 'child took the lock');
    // While the holder lives, a writer with a short timeout is refused (it is not ignored).
    await assert.rejects(store.update((d) => void (d.targets.t1.acl_enabled = false), { timeoutMs: 200 }), (e: unknown) => e instanceof ConfigStoreError && e.kind === 'timeout');
    const killedAt = Date.now();
    holder.kill();
    await holder.done;
    const r = await store.update((d) => void (d.targets.t1.acl_enabled = false), { timeoutMs: 10_000 });
    const waited = Date.now() - killedAt;
    assert.equal(r.changed, true);
    assert.ok(waited <= 1500 + (options.killedHolderSlackMs ?? 500), `blocked ${waited} ms after the holder died (expiry 1500 ms)`);
    await store.close();
  });

  it('a lease that expired while its (live) holder was busy lets others in, and the late holder cannot commit', async () => {
    const loc = await location();
    const store = await loc.open();
    const lock = await store.lock({ owner: 'slow', ttlMs: 300 });
    const other = await loc.open();
    await other.update((d) => void (d.targets.t1 = target()), { timeoutMs: 5000 });
    // Committed only once the lease had run out (not "some time after lock()": under load the
    // lock call itself may take a good part of the 300 ms).
    const committedAt = Date.now();
    assert.ok(committedAt >= lock.expiresAt - 5, `the other writer committed ${lock.expiresAt - committedAt} ms before the lease expired`);
    await assert.rejects(store.update((d) => void (d.targets.t2 = target()), { lock }), (e: unknown) => e instanceof ConfigStoreError && e.kind === 'lock-lost');
    assert.equal((await store.read()).config.targets.t2, undefined);
    await store.close();
    await other.close();
  });

  it('a held lock lets its holder commit and keeps others waiting until released', async () => {
    const loc = await location();
    const store = await loc.open();
    const other = await loc.open();
    const lock = await store.lock({ owner: 'holder', ttlMs: 5000 });
    await assert.rejects(other.update((d) => void (d.targets.t9 = target()), { timeoutMs: 150 }), (e: unknown) => e instanceof ConfigStoreError && e.kind === 'timeout' && /holder/.test(e.message));
    await store.update((d) => void (d.targets.t1 = target()), { lock });
    await lock.renew();
    assert.ok(lock.expiresAt > Date.now() + 4000, 'renewed for another ttl');
    const waiting = other.update((d) => void (d.targets.t2 = target()), { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    await lock.release();
    const r = await waiting;
    assert.deepEqual(Object.keys(r.config.targets).sort(), ['t1', 't2']);
    assert.equal(r.epoch, 2);
    await store.close();
    await other.close();
  });

  it('refuses a document that breaks the rules and commits nothing', async () => {
    const loc = await location();
    const store = await loc.open();
    await store.update((d) => void (d.targets.t1 = target()));
    const before = await loc.raw();
    await assert.rejects(store.update((d) => void (d.targets.t1.disks['rbd/nope'] = { lun_id: 0 })), /maps unknown disk rbd\/nope/);
    await assert.rejects(store.update((d) => {
      throw new Error(`mutator says no ${d.epoch}`);
    }), /mutator says no/);
    assert.equal(await loc.raw(), before);
    const r = await store.update(() => undefined);
    assert.equal(r.changed, false, 'a no-op is not a commit');
    assert.equal(r.epoch, 1);
    await store.close();
  });

  it('a large document (2000 clients, ~0.5 MB) is written and read back whole by another instance', async () => {
    const loc = await location();
    const store = await loc.open();
    await store.update((d) => {
      const t = target();
      for (let i = 0; i < 2000; i++) t.clients[`iqn.1994-05.com.example:host-${String(i).padStart(5, '0')}`] = { auth: emptyAuth(), luns: {}, group_name: '' };
      d.targets.t1 = t;
    });
    const other = await loc.open();
    const { config, epoch } = await other.read();
    assert.equal(epoch, 1);
    assert.equal(Object.keys(config.targets.t1.clients).length, 2000);
    assert.ok(((await loc.raw()) ?? '').length > 256 * 1024, 'larger than a first read buffer');
    await store.close();
    await other.close();
  });

  it('notifies a watcher of commits made by another process', async () => {
    const loc = await location();
    const store = await loc.open({ fastWatch: true });
    await store.update((d) => void (d.targets.t1 = target()));
    const seen: number[] = [];
    const stop = store.watch((s) => seen.push(s.epoch));
    const w = runWriter(loc.childSpec, ['updates', 'w', '3']);
    assert.equal((await w.done).code, 0);
    for (let i = 0; i < 100 && !seen.includes(4); i++) await new Promise((r) => setTimeout(r, 20));
    stop();
    await store.close();
    assert.ok(seen.includes(4), `saw ${seen.join(',')}`);
  });

  it('migrates a version-1 document without losing anything and keeps the original', async () => {
    const loc = await location();
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
    await loc.writeRaw(JSON.stringify(v1));
    const store = await loc.open();
    assert.equal(await store.migrate({ name: 'gw1', portals: ['127.0.0.1:3260'] }), true);
    assert.equal(await store.migrate({ name: 'gw1', portals: ['127.0.0.1:3260'] }), false, 'only once');
    assert.deepEqual(JSON.parse((await loc.backup(1)) ?? 'null'), v1);
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
    await store.close();
  });
}
