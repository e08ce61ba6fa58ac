/**
 * The logical-unit state in RADOS (src/ha/lu-state-rados.ts) on a real (memstore) cluster:
 * compare-and-swap under two writer processes (no lost update), a third gateway current as
 * soon as each commit returns, attentions delivered before update() resolves, the SPC-2
 * reservation of a killed gateway released, revalidation after a stall, power-on and APTPL,
 * the bounds, and a RADOS failure during a change ending in a SCSI error, never an
 * acknowledged change that was not stored.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CephCluster } from '../../src/ceph/cluster';
import type { NativeIoCtx } from '../../src/ceph/binding';
import { RadosObject } from '../../src/ceph/rados-object';
import { MAX_REGISTRATIONS, RadosLuStateStore, luStateObjectName, EPOCH_XATTR } from '../../src/ha/lu-state-rados';
import type { LuState, SharedAttention } from '../../src/scsi/lu-state';
import type { Registration } from '../../src/scsi/reservations';
import { Asc, SenseError, SenseKey } from '../../src/scsi/sense';
import { silentLogger } from '../../src/util/log';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { tempDir } from '../helpers/daemon';
import { FileLuStateStore } from '../../src/ha/lu-state-file';

const child = path.join(__dirname, 'children', 'rados-lu-state-child.js');
let serial = 0;
const nextWwn = () => `6001405${process.pid}${(serial++).toString().padStart(4, '0')}`;

function reg(key: bigint, name = `iqn.test:${key}`): Registration {
  return {
    key, initiator: name, initiatorPortName: `${name},i,0x000000000001`, targetPortName: 'iqn.test:t,t,0x0001',
    relativeTargetPortId: 1, allTargetPorts: false,
  };
}

function register(s: LuState, r: Registration, aptpl = false): LuState {
  return { ...s, pr: { ...s.pr, generation: (s.pr.generation + 1) >>> 0, registrations: [...s.pr.registrations, r], aptpl } };
}

interface Child {
  readonly proc: ChildProcess;
  readonly done: Promise<{ code: number | null; out: string; err: string }>;
  /** Resolves when stdout contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
}

function runChild(cluster: TestCephCluster, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [child, cluster.pool, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cluster.env, ...env } });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  });
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) => proc.on('exit', (code) => resolve({ code, out, err })));
  return {
    proc, done,
    waitFor: (text, timeoutMs = 30_000) => new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out.includes(text)) {
          waiters.delete(check);
          clearTimeout(t);
          resolve();
        }
      };
      const t = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`child did not print ${JSON.stringify(text)}: ${out} ${err}`));
      }, timeoutMs);
      waiters.add(check);
      void done.then(() => setTimeout(() => {
        if (!out.includes(text)) reject(new Error(`child exited without ${JSON.stringify(text)}: ${out} ${err}`));
      }, 0));
      check();
    }),
  };
}

describe('logical-unit state in RADOS', () => {
  let cluster: TestCephCluster;
  let conn: CephCluster;
  let io: NativeIoCtx;

  before(async () => {
    cluster = await startCephCluster();
    conn = await CephCluster.connect({ confFile: cluster.cephConf, osdOpTimeout: 3, monOpTimeout: 10 });
    io = await conn.openIoCtx(cluster.pool);
  });
  after(async () => {
    io?.close();
    await conn?.shutdown().catch(() => undefined);
    await cluster?.stop();
  });

  const objOf = (wwn: string) => new RadosObject(io, cluster.pool, luStateObjectName(wwn));
  const open = (wwn: string, instance: string, extra: { ackTimeoutMs?: number; verifyMs?: number; memberLeaseMs?: number } = {}) =>
    RadosLuStateStore.open({ obj: objOf(wwn), wwn, instance, log: silentLogger(), ...extra });

  it('compare-and-swap: two processes writing concurrently lose no update; a third gateway is current when each commit returns', async () => {
    const wwn = nextWwn();
    const observer = await open(wwn, 'observer');
    try {
      const n = 25;
      const a = runChild(cluster, [wwn, '1', 'writes', String(n)]);
      const b = runChild(cluster, [wwn, '2', 'writes', String(n)]);
      const [ra, rb] = await Promise.all([a.done, b.done]);
      assert.equal(ra.code, 0, ra.err);
      assert.equal(rb.code, 0, rb.err);
      // Every commit waited for the observer's acknowledgement of the applied epoch: it is
      // current without a poll (its verification runs every 250 ms, the check is immediate).
      const keys = observer.state.pr.registrations.map((r) => r.key);
      assert.equal(keys.length, 2 * n, 'no lost update');
      assert.equal(new Set(keys).size, 2 * n);
      for (let i = 0; i < n; i++) {
        assert.ok(keys.includes(BigInt(1_000_000 + i)) && keys.includes(BigInt(2_000_000 + i)), `update ${i} of both writers`);
      }
      assert.equal(observer.state.pr.generation, 2 * n);
      const stamp = await objOf(wwn).getXattr(EPOCH_XATTR);
      assert.equal(Number(stamp?.toString()), observer.epoch, 'the epoch xattr is the document epoch');
      assert.ok(observer.epoch >= 2 * n + 1);
      process.stdout.write(`# RADOS LU state: 2 writers x ${n} updates, slowest update ${ra.out.trim().split(' ')[2]} / ${rb.out.trim().split(' ')[2]} ms\n`);
    } finally {
      await observer.close();
    }
  });

  it('state and unit attentions reach the other gateway before the committing update returns', async () => {
    const wwn = nextWwn();
    const g1 = await open(wwn, 'gw1');
    const g2 = await open(wwn, 'gw2');
    const got1: SharedAttention[] = [];
    const got2: SharedAttention[] = [];
    g1.subscribe({ attention: (a) => void got1.push(a) });
    g2.subscribe({ attention: (a) => void got2.push(a) });
    try {
      assert.deepEqual(await g1.members(), ['gw2']);
      const holder = reg(0xaan);
      await g1.update((s) => ({ state: register(s, holder), result: undefined }));
      assert.equal(g2.state.pr.registrations[0]?.key, 0xaan, 'gateway 2 applied the registration');
      // PREEMPT AND ABORT: gateway 1's listener ends its tasks (takes a while) before acking.
      let aborted = false;
      g1.subscribe({ attention: (a) => (a.abort ? new Promise<void>((r) => setTimeout(() => { aborted = true; r(); }, 200)) : undefined) });
      const result = await g2.update((s) => ({
        state: { ...s, pr: { ...s.pr, registrations: [] } },
        result: 'preempted',
        attentions: [{ asc: Asc.RegistrationsPreempted, regs: s.pr.registrations, except: 'b-nexus', abort: true }],
      }));
      assert.equal(result, 'preempted');
      assert.equal(aborted, true, 'the other gateway ended the preempted tasks before update() returned');
      assert.equal(g1.state.pr.registrations.length, 0);
      assert.equal(got1.length, 1, 'gateway 1 got the attention');
      assert.equal(got1[0].asc, Asc.RegistrationsPreempted);
      assert.equal(got1[0].regs?.[0].key, 0xaan);
      assert.equal(got1[0].regs?.[0].initiatorPortName, holder.initiatorPortName);
      assert.equal(got1[0].except, 'b-nexus');
      assert.equal(got1[0].abort, true);
      assert.equal(got2.length, 1, 'the committing gateway tells its own LUs once');
      await assert.rejects(g1.update(() => { throw new Error('conflict'); }), /conflict/);
      assert.equal(g2.state.pr.registrations.length, 0);
      await g2.update((s) => ({ state: { ...s, spc2: { nexusKey: 'n1' } }, result: undefined }));
      assert.deepEqual(g1.state.spc2, { nexusKey: 'n1', holderInstance: 'gw2' });
    } finally {
      await g1.close();
      await g2.close();
    }
  });

  it("a killed gateway's SPC-2 reservation is released once its membership lock expires; commits do not wait for it", async () => {
    const wwn = nextWwn();
    const g1 = await open(wwn, 'gw1');
    const c = runChild(cluster, [wwn, '7', 'spc2'], { ISCSI_GATEWAY_LU_STATE_LEASE_MS: '2000' });
    try {
      await c.waitFor('held');
      assert.equal(g1.state.spc2?.nexusKey, 'nexus-7');
      c.proc.kill('SIGKILL');
      await c.done;
      const killed = Date.now();
      while (g1.state.spc2 && Date.now() - killed < 10_000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(g1.state.spc2, undefined, 'released');
      process.stdout.write(`# SPC-2 of a SIGKILLed gateway released after ${Date.now() - killed} ms (member lease 2 s)\n`);
      // The dead member no longer delays commits.
      const t0 = Date.now();
      await g1.update((s) => ({ state: register(s, reg(5n)), result: undefined }));
      assert.ok(Date.now() - t0 < 2500, `commit took ${Date.now() - t0} ms`);
      assert.deepEqual(await g1.members(), []);
    } finally {
      c.proc.kill('SIGKILL');
      await g1.close();
    }
  });

  it('a gateway whose event loop stalled past the acknowledgement timeout revalidates before its next command', async () => {
    const wwn = nextWwn();
    const stalled = await open(wwn, 'stalled', { ackTimeoutMs: 900, verifyMs: 100 });
    try {
      assert.equal(stalled.ready(), undefined, 'a fresh cache is used as it is');
      const writer = runChild(cluster, [wwn, '3', 'writes', '1'], { ISCSI_GATEWAY_LU_STATE_ACK_MS: '900' });
      // Block this process's event loop (no notify handled, no verification) while the
      // other process commits; it gives up waiting for our acknowledgement after 900 ms.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);
      // The stale cache is not used: the command path must wait for a revalidation.
      const wait = stalled.ready();
      assert.ok(wait, 'the cache is not trusted after the stall');
      await wait;
      assert.equal(stalled.current().pr.registrations.length, 1, 'revalidated before the next command');
      const r = await writer.done;
      assert.equal(r.code, 0, r.err);
      const slowest = Number(r.out.trim().split(' ')[2]);
      assert.ok(slowest >= 850, `the writer waited for the stalled gateway (${slowest} ms)`);
    } finally {
      await stalled.close();
    }
  });

  it('power on: without APTPL the reservations are gone once no gateway serves the LU; with APTPL they stay', async () => {
    const wwn = nextWwn();
    let g1 = await open(wwn, 'gw1');
    let g2 = await open(wwn, 'gw2');
    await g1.update((s) => ({ state: { ...register(s, reg(1n)), spc2: { nexusKey: 'x' } }, result: undefined }));
    await g1.close(); // one gateway goes: nothing changes
    g1 = await open(wwn, 'gw1b');
    assert.equal(g1.state.pr.registrations.length, 1);
    assert.ok(g1.state.spc2);
    await g1.close();
    await g2.close(); // the last one goes: power loss
    g1 = await open(wwn, 'gw1c');
    assert.equal(g1.state.pr.registrations.length, 0);
    assert.equal(g1.state.spc2, undefined);
    await g1.update((s) => ({ state: register(s, reg(2n), true), result: undefined }));
    await g1.close();
    g2 = await open(wwn, 'gw2b');
    assert.deepEqual(g2.state.pr.registrations.map((r) => r.key), [2n]);
    assert.equal(g2.state.pr.aptpl, true);
    await g2.close();
  });

  it("takes over the APTPL reservations of the data dir's state file when the LU has none in RADOS", async () => {
    const wwn = nextWwn();
    const dir = tempDir('igw-lu-file-');
    const file = await FileLuStateStore.open({ dir, wwn, instance: 'old', log: silentLogger() });
    await file.update((s) => ({ state: register(s, reg(0x5an), true), result: undefined }));
    await file.close();
    const g = await RadosLuStateStore.open({ obj: objOf(wwn), wwn, instance: 'gw1', log: silentLogger(), legacyStateFile: path.join(dir, `${wwn}.json`) });
    try {
      assert.deepEqual(g.state.pr.registrations.map((r) => r.key), [0x5an]);
      assert.equal(g.state.pr.aptpl, true);
    } finally {
      await g.close();
    }
  });

  it('bounds: registrations beyond the limit get INSUFFICIENT REGISTRATION RESOURCES; a damaged object is refused', async () => {
    const wwn = nextWwn();
    const g = await open(wwn, 'gw1');
    try {
      const many = Array.from({ length: MAX_REGISTRATIONS }, (_, i) => reg(BigInt(i + 1)));
      await g.update((s) => ({ state: { ...s, pr: { ...s.pr, registrations: many } }, result: undefined }));
      const err = await g.update((s) => ({ state: register(s, reg(99_999n)), result: undefined })).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof SenseError, String(err));
      assert.equal(err.key, SenseKey.IllegalRequest);
      assert.equal(err.asc, Asc.InsufficientRegistrationResources);
      assert.equal(g.state.pr.registrations.length, MAX_REGISTRATIONS, 'nothing stored');
      // Removing registrations is always possible.
      await g.update((s) => ({ state: { ...s, pr: { ...s.pr, registrations: s.pr.registrations.slice(1) } }, result: undefined }));
    } finally {
      await g.close();
    }
    await objOf(wwn).writeFull(Buffer.from('{"format": "iscsi-gateway-lu-state-1", "wwn"'));
    await assert.rejects(open(wwn, 'gw2'), /not valid JSON/);
  });

  it('a RADOS failure during a change is a CHECK CONDITION, and the cache is not trusted until read again', async () => {
    const wwn = nextWwn();
    const g = await open(wwn, 'gw1', { ackTimeoutMs: 2000 });
    const osds = cluster.osdPids();
    assert.ok(osds.length > 0);
    try {
      await g.update((s) => ({ state: register(s, reg(1n)), result: undefined }));
      for (const pid of osds) process.kill(pid, 'SIGSTOP');
      // osd_op_timeout of this test's connection is 3 s: the read or the write fails.
      const err = await g.update((s) => ({ state: register(s, reg(2n)), result: undefined })).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof SenseError, String(err));
      assert.equal(err.key, SenseKey.HardwareError);
      assert.equal(err.asc, Asc.LogicalUnitCommunicationFailure);
      // Commands wait for a revalidation, which fails too while the cluster does not answer.
      const wait = g.ready();
      assert.ok(wait, 'stale while the cluster is unreachable');
      await assert.rejects(wait, (e: unknown) => e instanceof SenseError && e.asc === Asc.LogicalUnitCommunicationFailure);
    } finally {
      for (const pid of osds) process.kill(pid, 'SIGCONT');
    }
    // Back: the state is what was stored (the failed change is not there).
    for (let i = 0; i < 100 && g.ready(); i++) await g.ready()?.catch(() => new Promise((r) => setTimeout(r, 200)));
    assert.equal(g.ready(), undefined);
    assert.deepEqual(g.current().pr.registrations.map((r) => r.key), [1n]);
    await g.close();
  });
});
