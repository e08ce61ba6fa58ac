/**
 * Failover between gateway processes on one data dir (embedded store), with the project's test
 * initiator and qemu-io: takeover after SIGKILL of the owner and failback when it returns;
 * takeover after the owner hangs (SIGSTOP) with the hung owner fenced and its queued writes
 * never reaching the image; cooperative hand-over with writes in flight (nothing acknowledged
 * lost); drain and restart under a qemu-io load without an I/O error; lock bouncing between two
 * initiators on two gateways that keeps both making progress. Takeover times are printed.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GWCLI, settingsFile } from '../helpers/gwcli';
import { HA_IQN, HaGateway, haSession, haStatus, read10, readBlocks, scsiUa, senseText, setupHaTarget, stamped, waitHa, write10, writeOk } from '../helpers/ha';
import { TestInitiator } from '../helpers/initiator';
import { qemuIo } from '../helpers/store';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';

const DISK = 'rbd/ha1';

/** REPORT TARGET PORT GROUPS: state and PREF per target port group id. */
async function rtpg(i: TestInitiator): Promise<Map<number, { state: number; pref: boolean }>> {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa3;
  cdb[1] = 0x0a;
  cdb.writeUInt32BE(1024, 6);
  const r = await scsiUa(i, cdb, { read: 1024 });
  assert.equal(r.status, 0, `REPORT TARGET PORT GROUPS: ${senseText(r)}`);
  const out = new Map<number, { state: number; pref: boolean }>();
  const end = 4 + r.data.readUInt32BE(0);
  for (let at = 4; at + 8 <= Math.min(end, r.data.length);) {
    out.set(r.data.readUInt16BE(at + 2), { state: r.data[at] & 0x0f, pref: (r.data[at] & 0x80) !== 0 });
    at += 8 + 4 * r.data[at + 7];
  }
  return out;
}

/** TARGET PORT GROUP id of each gateway of the HA target (stored in the configuration). */
async function groupIds(dir: string): Promise<Record<string, number>> {
  const store = new FileConfigStore(configPath(dir));
  try {
    const t = (await store.read()).config.targets[HA_IQN];
    return Object.fromEntries(Object.entries(t.portals).map(([gw, p], k) => [gw, p.tpg_id ?? k + 1]));
  } finally {
    await store.close();
  }
}

describe('failover between gateways', { timeout: 200_000 }, () => {
  const gws: HaGateway[] = [];
  const sessions: TestInitiator[] = [];
  after(async () => {
    for (const s of sessions) s.close();
    for (const g of gws) await g.stop('SIGKILL').catch(() => undefined);
  });
  const start = async (dir: string, name: string, ip: string, port: number, s: Parameters<typeof HaGateway.start>[4] = {}) => {
    const g = await HaGateway.start(dir, name, ip, port, s);
    gws.push(g);
    return g;
  };
  const session = async (ip: string, port: number, name?: string) => {
    const s = await haSession(ip, port, name);
    sessions.push(s);
    return s;
  };

  it('SIGKILL of the owner: the other gateway takes over on the next I/O; the owner fails back when it returns', async () => {
    const dir = tempDir('igw-ha-kill-');
    const port = await freePort();
    const g1 = await start(dir, 'iscsi1', '127.0.0.1', port);
    const g2 = await start(dir, 'iscsi2', '127.0.0.2', port);
    await setupHaTarget(dir, [g1, g2], ['ha1'], 'iscsi1');
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const a = await session('127.0.0.1', port);
    const b = await session('127.0.0.2', port);
    const before = stamped('before-kill', 0, 64);
    await writeOk(a, 0, before);

    g1.proc.kill('SIGKILL');
    const t0 = performance.now();
    await writeOk(b, 64, stamped('after-kill', 64));
    const takeover = performance.now() - t0;
    console.log(`# takeover after SIGKILL of the owner: ${(takeover / 1000).toFixed(3)} s (kill to first acknowledged write through the other gateway)`);
    assert.ok((await readBlocks(b, 0, 64)).equals(before), 'what the dead owner acknowledged is there');
    const st = await waitHa(dir, 'iscsi2', DISK, (s) => s.owned);
    assert.equal(st.failovers, 1);
    assert.equal(st.fenced, 0, 'a dead holder needs no fencing');
    assert.match(st.last_takeover ?? '', /^implicit/);
    assert.equal((await g1.exited).signal, 'SIGKILL');
    // ALUA follows the lock: iscsi2's group is active/optimized now, iscsi1 (dead, preferred)
    // active/non-optimized with PREF.
    const ids = await groupIds(dir);
    const states = await rtpg(b);
    assert.deepEqual(states.get(ids.iscsi2), { state: 0, pref: false }, JSON.stringify([...states]));
    assert.deepEqual(states.get(ids.iscsi1), { state: 1, pref: true }, JSON.stringify([...states]));

    // GET /api/disk reports the lock owner and the counters of every gateway.
    const disk = await g2.apiCall('GET', `/api/disk/${DISK}`);
    assert.equal(disk.status, 200, JSON.stringify(disk.body));
    const status = disk.body.status as { lock_owner: string; state: string; gateways: Record<string, { failovers: number }> };
    assert.equal(status.lock_owner, 'iscsi2');
    assert.equal(status.state, 'Online');
    assert.equal(status.gateways.iscsi2.failovers, 1);

    // The preferred owner returns (a new process: its stale lease is cleared) and fails back
    // after its settle time, without any I/O through it.
    const g1b = await start(dir, 'iscsi1', '127.0.0.1', port, { failbackSecs: 1 });
    const t1 = performance.now();
    const back = await waitHa(dir, 'iscsi1', DISK, (s) => s.owned, 20_000);
    console.log(`# failback to the returning preferred owner: ${((performance.now() - t1) / 1000).toFixed(3)} s after its start returned (settle 1 s from its HA start)`);
    assert.match(back.last_takeover ?? '', /^failback: hand-over from iscsi2/);
    await waitHa(dir, 'iscsi2', DISK, (s) => !s.owned);
    const a2 = await session('127.0.0.1', port);
    assert.ok((await readBlocks(a2, 64, 8)).equals(stamped('after-kill', 64)), 'data written through iscsi2 is there after failback');
    // iscsi2's nexus hears of the move (ASYMMETRIC ACCESS STATE CHANGED) and sees iscsi1 optimized again.
    const ua = await b.scsi(Buffer.alloc(6));
    assert.equal(ua.status, 2, 'a unit attention for the state change');
    assert.deepEqual([ua.sense![2] & 0x0f, ua.sense![12], ua.sense![13]], [6, 0x2a, 0x06]);
    const after = await rtpg(b);
    assert.equal(after.get(ids.iscsi1)?.state, 0);
    assert.equal(after.get(ids.iscsi2)?.state, 1);
    await g1b.stop();
    await g2.stop();
  });

  it('SIGSTOP of the owner: taken over after the lease, the hung owner is fenced and its queued writes never land', async () => {
    const dir = tempDir('igw-ha-hang-');
    const port = await freePort();
    const g1 = await start(dir, 'iscsi1', '127.0.0.1', port, { leaseSecs: 2 });
    const g2 = await start(dir, 'iscsi2', '127.0.0.2', port, { leaseSecs: 2 });
    await setupHaTarget(dir, [g1, g2], ['ha1'], 'iscsi1');
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const a = await session('127.0.0.1', port);
    const b = await session('127.0.0.2', port);
    await writeOk(a, 0, stamped('acked', 0));
    await writeOk(a, 200, stamped('acked', 200));

    g1.proc.kill('SIGSTOP');
    const t0 = performance.now();
    // Writes sent to the hung gateway: they sit in its socket, would be executed the moment it
    // runs again, and must never reach the image after another gateway took over.
    a.issue(write10(0, 8), { write: 4096, immediate: stamped('LATE', 0) });
    a.issue(write10(100, 8), { write: 4096, immediate: stamped('LATE', 100) });
    await writeOk(b, 0, stamped('new-owner', 0));
    const takeover = performance.now() - t0;
    console.log(`# takeover after SIGSTOP of the owner: ${(takeover / 1000).toFixed(3)} s (lease 2 s; includes fencing the hung owner)`);
    const exit = await Promise.race([g1.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))]);
    assert.equal(exit?.signal, 'SIGKILL', 'the hung owner was fenced (SIGKILLed) before its lock was broken');
    const st = await waitHa(dir, 'iscsi2', DISK, (s) => s.owned);
    assert.equal(st.fenced, 1);
    assert.match(st.last_takeover ?? '', /fenced iscsi1 \(SIGKILL pid \d+/);
    // Give a surviving owner every chance to run its queued writes, then look.
    g1.proc.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok((await readBlocks(b, 0, 8)).equals(stamped('new-owner', 0)), 'the new owner\'s data, not the late write');
    assert.ok((await readBlocks(b, 100, 8)).equals(Buffer.alloc(4096)), 'the late write to an untouched range never landed');
    assert.ok((await readBlocks(b, 200, 8)).equals(stamped('acked', 200)), 'acknowledged before the hang: kept');
    await g2.stop();
  });

  it('cooperative hand-over with writes in flight: nothing acknowledged is lost', async () => {
    const dir = tempDir('igw-ha-handover-');
    const port = await freePort();
    const g1 = await start(dir, 'iscsi1', '127.0.0.1', port);
    const g2 = await start(dir, 'iscsi2', '127.0.0.2', port);
    await setupHaTarget(dir, [g1, g2], ['ha1'], 'iscsi1');
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const a = await session('127.0.0.1', port);
    const b = await session('127.0.0.2', port);
    const acked = new Map<number, Buffer>();
    // A: batches of 16 pipelined 4 KiB writes through iscsi1 (each batch in flight at once). A
    // write answered with UNIT ATTENTION (the ALUA state changed) is sent again, as an
    // initiator does; every other status fails the test.
    let stopA = false;
    let batches = 0;
    let unitAttentions = 0;
    const writerA = (async () => {
      let lba = 0;
      while (!stopA && lba < 16 * 8 * 200) {
        let todo: Array<{ lba: number; data: Buffer }> = [];
        for (let k = 0; k < 16; k++, lba += 8) todo.push({ lba, data: stamped(`A${batches}`, lba) });
        for (let round = 0; todo.length > 0; round++) {
          assert.ok(round < 5, 'writes keep getting unit attentions');
          const sent = new Map<number, { lba: number; data: Buffer }>();
          for (const w of todo) sent.set(a.issue(write10(w.lba, 8), { write: 4096, immediate: w.data }), w);
          const again: typeof todo = [];
          for (let got = 0; got < sent.size;) {
            const p = await a.receive(20_000);
            assert.ok(p, 'a response for every write in flight');
            if (p.opcode === 0x20) continue;
            assert.equal(p.opcode, 0x21);
            a.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
            const w = sent.get(p.bhs.readUInt32BE(16));
            assert.ok(w);
            got++;
            const senseData = p.data.subarray(2);
            if (p.bhs[3] === 2 && (senseData[2] & 0x0f) === 6) {
              unitAttentions++;
              again.push(w);
              continue;
            }
            assert.equal(p.bhs[3], 0, `write at ${w.lba} in flight during the hand-over: status ${p.bhs[3]}, sense ${senseData.toString('hex')}`);
            acked.set(w.lba, w.data);
          }
          todo = again;
        }
        batches++;
      }
    })();
    writerA.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const bData = stamped('B', 60_000);
    await writeOk(b, 60_000, bData);
    const handover = performance.now() - t0;
    console.log(`# cooperative hand-over under load: ${(handover / 1000).toFixed(3)} s (B's first write through iscsi2 while A writes 16 in flight through iscsi1)`);
    await new Promise((r) => setTimeout(r, 500));
    stopA = true;
    await writerA;
    assert.ok(batches >= 2, `A kept writing (${batches} batches)`);
    const s1 = await haStatus(dir, 'iscsi1', DISK);
    const s2 = await haStatus(dir, 'iscsi2', DISK);
    assert.ok((s2?.failovers ?? 0) >= 1, `iscsi2 took the disk over: ${JSON.stringify(s2)}`);
    assert.ok((s1?.lock_lost_cnt ?? 0) >= 1, `iscsi1 handed it over: ${JSON.stringify(s1)}`);
    assert.equal((s2?.fenced ?? 0) + (s1?.fenced ?? 0), 0, 'a live owner is asked, never fenced');
    // Every acknowledged write is there, read through either path.
    for (const [lba, data] of acked) assert.ok((await readBlocks(b, lba, 8)).equals(data), `acknowledged write at ${lba}`);
    assert.ok((await readBlocks(a, 60_000, 8)).equals(bData));
    console.log(`# hand-over test: ${acked.size} acknowledged writes through iscsi1 verified (${unitAttentions} unit attentions retried); iscsi1 ${JSON.stringify(s1)}; iscsi2 ${JSON.stringify(s2)}`);
    await g1.stop();
    await g2.stop();
  });

  it('drain and restart of a gateway under a qemu-io load through the other one: zero I/O errors', async () => {
    const dir = tempDir('igw-ha-drain-');
    const port = await freePort();
    const g1 = await start(dir, 'iscsi1', '127.0.0.1', port);
    const g2 = await start(dir, 'iscsi2', '127.0.0.2', port);
    await setupHaTarget(dir, [g1, g2], ['ha1'], 'iscsi1', 64);
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);

    // Drain iscsi1 through iscsi2's API: the disk moves to iscsi2 before any I/O needs it.
    const t0 = performance.now();
    const d = await g2.apiCall('PUT', '/api/drain/iscsi1');
    console.log(`# drain of the owner (API): ${((performance.now() - t0) / 1000).toFixed(3)} s`);
    assert.equal(d.status, 200, `${JSON.stringify(d.body)}\n${g1.out.slice(-3000)}\n${g2.out.slice(-3000)}`);
    assert.equal(d.body.draining, true);
    assert.deepEqual(d.body.active_disks, []);
    const took = await waitHa(dir, 'iscsi2', DISK, (s) => s.owned);
    assert.match(took.last_takeover ?? '', /^take: hand-over from iscsi1/);
    // A draining gateway takes nothing: I/O through it is refused with a retryable error.
    const a = await session('127.0.0.1', port);
    const refused = await scsiUa(a, write10(0, 8), { write: Buffer.alloc(4096, 0xee) });
    assert.equal(refused.status, 2, 'CHECK CONDITION through the draining gateway');
    // Reads there still work (the coherent read-only view), without moving the lock.
    assert.equal((await scsiUa(a, read10(0, 8), { read: 4096 })).status, 0);
    assert.equal(await haStatus(dir, 'iscsi2', DISK).then((s) => s?.owned), true, 'the disk stayed with iscsi2');
    // The same through gwcli (against iscsi2's API): resume, then drain again.
    const cfg = settingsFile(dir, Number(g2.api.split(':')[1]), `api_host = 127.0.0.2\n`);
    const gwcli = (args: string[]) => run(process.execPath, [GWCLI, '--config', cfg, ...args], { env: { GWCLI_HOME: path.join(dir, 'gwcli-home'), NO_COLOR: '1' }, timeoutMs: 60_000 });
    const node = `/iscsi-targets/${HA_IQN}/gateways/iscsi1`;
    const resumed = await gwcli([node, 'resume']);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.equal((await g2.apiCall('GET', '/api/drain/iscsi1')).body.draining, false);
    const drained = await gwcli([node, 'drain']);
    assert.equal(drained.code, 0, drained.stdout + drained.stderr);
    assert.match(drained.stdout + drained.stderr, /drained/);
    assert.equal((await g2.apiCall('GET', '/api/drain/iscsi1')).body.draining, true);
    assert.equal((await g2.apiCall('PUT', '/api/drain/nosuchgw')).status, 404);

    // qemu-io load through iscsi2 while iscsi1 is stopped (SIGTERM) and started again.
    const url = `iscsi://127.0.0.2:${port}/${HA_IQN}/0`;
    const cmds: string[] = [];
    for (let k = 0; k < 48; k++) cmds.push(`write -P ${(k % 250) + 1} ${k * 1024}k 1024k`);
    for (let k = 0; k < 48; k++) cmds.push(`read -P ${(k % 250) + 1} ${k * 1024}k 1024k`);
    const load = qemuIo(url, [...cmds, ...cmds]);
    const logoutSeen = (async () => {
      // iscsi1's sessions are asked to log out (Async Message, AsyncEvent 1) before it stops.
      for (;;) {
        const p = await a.receive(20_000);
        if (!p) return false;
        if (p.opcode === 0x32) return p.bhs[36] === 1;
      }
    })();
    await g1.stop('SIGTERM');
    assert.equal((await g1.exited).code, 0, `iscsi1 stopped cleanly:\n${g1.err.slice(-2000)}`);
    assert.equal(await logoutSeen, true, 'the stopping gateway sent the logout request');
    const g1b = await start(dir, 'iscsi1', '127.0.0.1', port);
    await waitHa(dir, 'iscsi1', DISK, (s) => !s.owned);
    const r = await load;
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    assert.doesNotMatch(out, /failed|error|Pattern verification/i, out);
    assert.equal((out.match(/^(read|wrote) \d+\/\d+ bytes/gm) ?? []).length, cmds.length * 2, 'every command of the load completed');
    const st1 = await haStatus(dir, 'iscsi1', DISK);
    assert.equal(st1?.owned, false, 'the restarted gateway rejoined without taking the disk');

    // SIGTERM on the owner drains by default: iscsi1 owns the disk right after, without any I/O.
    const t1 = performance.now();
    await g2.stop('SIGTERM');
    const moved = await waitHa(dir, 'iscsi1', DISK, (s) => s.owned, 10_000);
    console.log(`# SIGTERM drain of the owner: disk owned by the other gateway ${((performance.now() - t1) / 1000).toFixed(3)} s after the signal`);
    assert.match(moved.last_takeover ?? '', /^take: hand-over from iscsi2/);
    const q = await qemuIo(`iscsi://127.0.0.1:${port}/${HA_IQN}/0`, ['read -P 48 47m 1024k'], { readOnly: true });
    assert.doesNotMatch(q.stdout + q.stderr, /failed|error|Pattern verification/i, q.stdout + q.stderr);
    await g1b.stop();
  });

  it('lock bouncing: two initiators on two gateways writing one LU both keep making progress; bounces are counted', async () => {
    const dir = tempDir('igw-ha-bounce-');
    const port = await freePort();
    const g1 = await start(dir, 'iscsi1', '127.0.0.1', port, { minHoldMs: 100, maxHoldMs: 800 });
    const g2 = await start(dir, 'iscsi2', '127.0.0.2', port, { minHoldMs: 100, maxHoldMs: 800 });
    await setupHaTarget(dir, [g1, g2], ['ha1'], 'iscsi1');
    await waitHa(dir, 'iscsi1', DISK, (s) => s.owned);
    const a = await session('127.0.0.1', port, 'iqn.1994-05.com.example:host-a');
    const b = await session('127.0.0.2', port, 'iqn.1994-05.com.example:host-b');
    const deadline = Date.now() + 5000;
    const worker = async (i: TestInitiator, tag: string, base: number) => {
      const done: number[] = [];
      for (let k = 0; Date.now() < deadline; k++) {
        const lba = base + (k % 256) * 8;
        await writeOk(i, lba, stamped(`${tag}${k}`, lba));
        done.push(k);
      }
      return done.length;
    };
    const [na, nb] = await Promise.all([worker(a, 'A', 0), worker(b, 'B', 10_000)]);
    console.log(`# lock bouncing for 5 s: ${na} writes through iscsi1, ${nb} through iscsi2`);
    assert.ok(na >= 3 && nb >= 3, `both make progress: ${na} / ${nb}`);
    const s1 = await waitHa(dir, 'iscsi1', DISK, () => true);
    const s2 = await waitHa(dir, 'iscsi2', DISK, () => true);
    const bounces = s1.bounces + s2.bounces;
    console.log(`# bounces counted: ${bounces} (iscsi1 ${JSON.stringify(s1)}; iscsi2 ${JSON.stringify(s2)})`);
    assert.ok(bounces >= 1, 'bouncing was detected');
    assert.ok(Math.max(s1.hold_ms, s2.hold_ms) > 100, 'and damped (the minimum hold time grew)');
    // The metric moves too.
    const metricsAddr = g2.proc.spawnargs[g2.proc.spawnargs.indexOf('--metrics') + 1];
    const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
    const m = /^iscsi_gateway_lun_lock_bounces_total\{lun_name="rbd\/ha1"\} (\d+)/m.exec(text);
    assert.ok(m, text.split('\n').filter((l) => l.includes('iscsi_gateway_lun')).join('\n'));
    // The metric is live, the status file up to a heartbeat behind: a counter never below it.
    assert.ok(Number(m[1]) >= s2.bounces, `metric ${m[1]} vs status ${s2.bounces}`);
    await g1.stop();
    await g2.stop();
  });
});
