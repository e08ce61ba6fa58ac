/**
 * Failover of a `user:rbd` disk between two gateway processes (iscsi1 on 127.0.0.1, iscsi2 on
 * 127.0.0.2) on one small Ceph cluster, configuration in RADOS, ownership under RBD's exclusive
 * lock (src/ha/rbd-lock.ts). One data dir holds what is still per host (status heartbeats, the
 * HA inbox, the LU state files).
 *
 * - libiscsi MultipathIO with one path on each gateway.
 * - SIGKILL of the owner: writes through the other gateway succeed (the dead client's lock is
 *   broken after blocklisting it); data verified through the other gateway and `rbd export`;
 *   the owner returns with a new client and fails back.
 * - SIGSTOP of the owner (lease 4 s): takeover with fencing (blocklist); after SIGCONT the
 *   stopped gateway's queued writes never reach the image (one of them targets a range nobody
 *   else writes: without the blocklist it would land), it gives up ownership and connects a new
 *   client; restarted, it removes its stale blocklist entries and fails back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CephSettings, cephSettingsFromEnv, closeCeph } from '../../src/ceph/settings';
import { RadosConfigStore } from '../../src/config/rados-store';
import { emptyAuth } from '../../src/config/schema';
import { REGISTRY_OBJECT, parseBlocklist } from '../../src/ha/rbd-lock';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { runSuite } from '../helpers/conformance';
import { freePort, run, tempDir } from '../helpers/daemon';
import { waitApplied } from '../helpers/gateways';
import { HA_IQN, HaGateway, HaSettings, haSession, readBlocks, stamped, waitHa, write10, writeOk } from '../helpers/ha';
import { TestInitiator } from '../helpers/initiator';

const IMAGE = 'cl1';
const DISK = `rbd/${IMAGE}`;
const BLOCKS = (64 * 1024 * 1024) / 512;

describe('failover of a user:rbd disk on Ceph (RBD exclusive lock, blocklist fencing)', { timeout: 240_000 }, () => {
  let cluster: TestCephCluster;
  let ceph: CephSettings;
  let dir: string;
  let port: number;
  const gws: HaGateway[] = [];
  const sessions: TestInitiator[] = [];

  before(async () => {
    cluster = await startCephCluster();
    const s = cephSettingsFromEnv({ CEPH_CONF: cluster.cephConf });
    assert.ok(s);
    ceph = s;
    dir = tempDir('igw-ceph-failover-');
    port = await freePort();
    await cluster.rbd(['create', '--size', '64M', '--image-feature', 'layering,exclusive-lock', DISK]);
  });
  after(async () => {
    for (const i of sessions) i.close();
    for (const g of gws) await g.stop('SIGKILL').catch(() => undefined);
    await closeCeph();
    await cluster?.stop();
  });

  const settings = (s: HaSettings = {}): HaSettings => ({ leaseSecs: 4, ...s, config: ['cluster_name = ceph'], env: { CEPH_CONF: cluster.cephConf } });
  const start = async (name: string, ip: string, s: HaSettings = {}) => {
    const g = await HaGateway.start(dir, name, ip, port, settings(s));
    gws.push(g);
    assert.match(g.out, /configuration in rados:rbd\/gateway\.conf/, g.out);
    return g;
  };
  const session = async (ip: string) => {
    const i = await haSession(ip, port);
    sessions.push(i);
    return i;
  };
  /** The lock client a gateway published in the registry (rados getomapval). */
  const lockClient = async (gateway: string): Promise<{ client: string; address: string; previous: Array<{ address: string }> }> => {
    const file = path.join(dir, `omap-${gateway}-${Date.now()}`);
    await run('rados', ['-p', 'rbd', 'getomapval', REGISTRY_OBJECT, gateway, file], { env: cluster.env, timeoutMs: 30_000 });
    return JSON.parse(fs.readFileSync(file, 'utf8')) as { client: string; address: string; previous: Array<{ address: string }> };
  };
  const blocklist = async (): Promise<string[]> => parseBlocklist(await cluster.ceph(['osd', 'blocklist', 'ls', '--format=json']));
  /** The image's bytes through librbd (not through a gateway). */
  const exported = async (lba: number, blocks: number): Promise<Buffer> => {
    const file = path.join(dir, `export-${Date.now()}`);
    await cluster.rbd(['export', DISK, file]);
    const b = fs.readFileSync(file);
    fs.rmSync(file);
    assert.equal(b.length, BLOCKS * 512);
    return b.subarray(lba * 512, (lba + blocks) * 512);
  };

  let g1: HaGateway;
  let g2: HaGateway;

  it('two gateways serve the user:rbd disk; libiscsi MultipathIO with one path on each', { timeout: 200_000 }, async (t) => {
    g1 = await start('iscsi1', '127.0.0.1');
    g2 = await start('iscsi2', '127.0.0.2');
    const store = await RadosConfigStore.open(ceph);
    try {
      const r = await store.update((d) => {
        const ips = ['127.0.0.1', '127.0.0.2'];
        const portal = (ip: string) => ({ portal_ip_addresses: [ip], inactive_portal_ips: ips.filter((x) => x !== ip), gateway_ip_list: ips, tpgs: 2 });
        d.targets[HA_IQN] = { acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ips, portals: { iscsi1: portal('127.0.0.1'), iscsi2: portal('127.0.0.2') }, disks: {}, clients: {}, groups: {} };
        d.disks[DISK] = {
          pool: 'rbd', image: IMAGE, wwn: '6a1f0a52-0000-4000-8000-00000000c1c1', backstore: 'user:rbd', backstore_object_name: `rbd.${IMAGE}`,
          controls: {}, allocating_host: 'iscsi1', owner: 'iscsi1',
        };
        d.gateways.iscsi1.active_luns = 1;
        d.targets[HA_IQN].disks[DISK] = { lun_id: 0 };
      });
      await waitApplied(dir, ['iscsi1', 'iscsi2'], r.epoch);
    } finally {
      await store.close();
    }
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    // The lock is RBD's: `rbd lock ls`-level truth, the owner is iscsi1's lock client.
    const c1 = await lockClient('iscsi1');
    const lockers = await cluster.rbd(['lock', 'ls', DISK]);
    assert.ok(lockers.includes(c1.address), `iscsi1's client ${c1.address} holds the lock:\n${lockers}`);

    const url = (host: string) => `iscsi://${host}:${port}/${HA_IQN}/0`;
    const verdicts: Record<string, string> = {};
    // CompareAndWrite* move the lock between the gateways on (nearly) every command: 512 and
    // 2000 hand-overs.
    for (const name of ['Simple', 'Reset', 'CompareAndWrite', 'CompareAndWriteAsync']) {
      const t0 = performance.now();
      const r = await runSuite(url('127.0.0.1'), `MultipathIO.${name}`, ['--dataloss'], url('127.0.0.2'));
      Object.assign(verdicts, Object.fromEntries(r.results));
      t.diagnostic(`MultipathIO.${name}: ${JSON.stringify(Object.fromEntries(r.results))} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assert.equal(verdicts[`MultipathIO.${name}`], 'PASS', r.log.slice(-3000));
    }
    console.log(`# libiscsi MultipathIO on user:rbd (Ceph), one path per gateway: ${JSON.stringify(verdicts)}`);
  });

  it('SIGKILL of the owner: the other gateway fences the dead client and takes over; the owner returns and fails back', async () => {
    // Whoever holds it after MultipathIO: make iscsi1 the owner again through I/O on its path.
    const a = await session('127.0.0.1');
    const b = await session('127.0.0.2');
    const before = stamped('before-kill', 0, 64);
    await writeOk(a, 0, before);
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const old = await lockClient('iscsi1');
    // For 2 s after a hand-over the giver leaves a free lock to its taker (manager.ts): a kill
    // right after the hand-over above would measure that, not the failover.
    await new Promise((r) => setTimeout(r, 2500));

    g1.proc.kill('SIGKILL');
    const t0 = performance.now();
    await writeOk(b, 64, stamped('after-kill', 64));
    const takeover = performance.now() - t0;
    assert.ok((await readBlocks(b, 0, 64)).equals(before), 'what the dead owner acknowledged is there');
    const st = await waitHa(dir, 'iscsi2', DISK, (s) => s.owned);
    console.log(`# takeover after SIGKILL of the owner (user:rbd on Ceph): ${(takeover / 1000).toFixed(3)} s (kill to first acknowledged write through the other gateway; gateway's own part ${st.last_takeover_ms} ms: ${st.last_takeover})`);
    assert.match(st.last_takeover ?? '', /^implicit: fenced iscsi1 \(blocklist /);
    assert.ok((await blocklist()).includes(old.address), 'the dead owner\'s client is blocklisted');
    assert.ok((await exported(0, 72)).equals(Buffer.concat([before, stamped('after-kill', 64)])), 'rbd export shows the acknowledged data');
    const disk = await g2.apiCall('GET', `/api/disk/${DISK}`);
    assert.equal((disk.body.status as { lock_owner: string }).lock_owner, 'iscsi2');

    // iscsi1 returns: a new client, its old blocklist entry removed, failback after 1 s.
    const t1 = performance.now();
    g1 = await start('iscsi1', '127.0.0.1', { failbackSecs: 1 });
    const started = performance.now();
    const now = await lockClient('iscsi1');
    assert.notEqual(now.address, old.address, 'a new lock client');
    assert.ok(!(await blocklist()).includes(old.address), 'the returning gateway removed its stale blocklist entry');
    const back = await waitHa(dir, 'iscsi1', DISK, (s) => s.owned, 40_000);
    console.log(`# failback to the returning preferred owner: ${((performance.now() - started) / 1000).toFixed(3)} s after its start returned (start took ${((started - t1) / 1000).toFixed(3)} s; settle 1 s)`);
    assert.match(back.last_takeover ?? '', /^failback: hand-over from iscsi2/);
    const a2 = await session('127.0.0.1');
    assert.ok((await readBlocks(a2, 64, 8)).equals(stamped('after-kill', 64)), 'data written through iscsi2 is there after failback');
  });

  it('SIGSTOP of the owner: takeover with fencing after the lease; its queued writes never land; it reconnects, rejoins and fails back', async () => {
    const a = await session('127.0.0.1');
    const b = await session('127.0.0.2');
    await writeOk(a, 1000, stamped('acked', 1000));
    await writeOk(a, 1200, stamped('acked', 1200));
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const fencedBefore = (await waitHa(dir, 'iscsi2', DISK, () => true)).fenced;
    const lostBefore = (await waitHa(dir, 'iscsi1', DISK, () => true)).lock_lost_cnt;
    const old = await lockClient('iscsi1');

    g1.proc.kill('SIGSTOP');
    const t0 = performance.now();
    // Sent to the stopped gateway: they sit in its socket and run the moment it continues. 1100
    // is a range nobody else writes: only the blocklist keeps them from landing there.
    a.issue(write10(1000, 8), { write: 4096, immediate: stamped('LATE', 1000) });
    a.issue(write10(1100, 8), { write: 4096, immediate: stamped('LATE', 1100) });
    await writeOk(b, 1000, stamped('new-owner', 1000));
    const takeover = performance.now() - t0;
    const st = await waitHa(dir, 'iscsi2', DISK, (s) => s.owned);
    console.log(`# takeover after SIGSTOP of the owner (user:rbd on Ceph): ${(takeover / 1000).toFixed(3)} s (lease 4 s, heartbeat 2 s; includes blocklisting the stopped owner; ${st.last_takeover})`);
    assert.equal(st.fenced, fencedBefore + 1);
    assert.match(st.last_takeover ?? '', /fenced iscsi1 \(blocklist /);
    assert.ok((await blocklist()).includes(old.address), 'the stopped owner is blocklisted');

    g1.proc.kill('SIGCONT');
    // Give the stopped gateway every chance to run its queued writes, then look.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok((await readBlocks(b, 1000, 8)).equals(stamped('new-owner', 1000)), 'the new owner\'s data, not the late write');
    assert.ok((await readBlocks(b, 1100, 8)).equals(Buffer.alloc(4096)), 'the late write to an untouched range never landed');
    assert.ok((await readBlocks(b, 1200, 8)).equals(stamped('acked', 1200)), 'acknowledged before the stop: kept');
    assert.ok((await exported(1100, 8)).equals(Buffer.alloc(4096)), 'rbd export: the late write is not in the image');
    // It notices (EBLOCKLISTED), gives the disk up and connects a new client.
    const deadline = Date.now() + 15_000;
    while (!(g1.out + g1.err).includes('this gateway was fenced') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok((g1.out + g1.err).includes('this gateway was fenced'), 'the fenced gateway noticed');
    // ... and dropped its connections: the late writes had sat in them (gateway.ts onLockLost).
    assert.ok((g1.out + g1.err).includes('dropping every iSCSI connection'), 'the fenced gateway dropped its connections');
    // Counted as a lost lock (it fails back later: failback 1 s after a fence, manager.ts).
    await waitHa(dir, 'iscsi1', DISK, (s) => s.lock_lost_cnt > lostBefore);
    let fresh = await lockClient('iscsi1');
    for (let i = 0; i < 50 && fresh.address === old.address; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fresh = await lockClient('iscsi1');
    }
    assert.notEqual(fresh.address, old.address, 'a new lock client after the fence');
    assert.ok(g1.running, 'it keeps running');

    // Restarted, it removes its stale blocklist entries and fails back.
    await g1.stop();
    g1 = await start('iscsi1', '127.0.0.1', { failbackSecs: 1 });
    const t1 = performance.now();
    const listed = await blocklist();
    assert.ok(!listed.includes(old.address), `the fenced client's entry is gone: ${JSON.stringify(listed)}`);
    const back = await waitHa(dir, 'iscsi1', DISK, (s) => s.owned, 40_000);
    console.log(`# failback after the fenced gateway restarted: ${((performance.now() - t1) / 1000).toFixed(3)} s after its start returned (settle 1 s)`);
    if (back.last_takeover_ms !== undefined) console.log(`#   (the failback's own takeover: ${back.last_takeover_ms} ms, ${back.last_takeover})`);
    // Its previous process may have failed back before its stop and handed the disk over on the
    // way out: then the lock can be free when it starts (taken at start, no takeover recorded).
    assert.match(back.last_takeover ?? 'initial', /^(failback|initial)/);
    const a2 = await session('127.0.0.1');
    assert.ok((await readBlocks(a2, 1000, 8)).equals(stamped('new-owner', 1000)));
    await g1.stop();
    await g2.stop();
  });
});
