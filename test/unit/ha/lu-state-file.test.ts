/**
 * The shared logical-unit state file: compare-and-swap under concurrent writers in two
 * processes (no lost update), attentions and state reaching another gateway's store before
 * the committing update returns, revalidation after a stall, power-on and APTPL semantics,
 * and the take-over of single-gateway APTPL files.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileLuStateStore, LuStateFileError } from '../../../src/ha/lu-state-file';
import { saveAptplState } from '../../../src/scsi/aptpl-file';
import type { LuState, SharedAttention } from '../../../src/scsi/lu-state';
import type { Registration } from '../../../src/scsi/reservations';
import { Asc } from '../../../src/scsi/sense';
import { silentLogger } from '../../../src/util/log';

const WWN = '3f2c7e5a-1b4d-4c8e-9a0f-5d6e7f8a9b0c';
const child = path.join(__dirname, 'children', 'lu-state-writer.js');

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lu-state-'));
}

function open(dir: string, instance: string, extra: { ackTimeoutMs?: number; pollMs?: number; legacyAptplDir?: string } = {}) {
  return FileLuStateStore.open({ dir, wwn: WWN, instance, log: silentLogger(), ...extra });
}

function reg(key: bigint, name = `iqn.test:${key}`): Registration {
  return {
    key, initiator: name, initiatorPortName: `${name},i,0x000000000001`, targetPortName: 'iqn.test:t,t,0x0001',
    relativeTargetPortId: 1, allTargetPorts: false,
  };
}

function register(s: LuState, r: Registration, aptpl = false): LuState {
  return { ...s, pr: { ...s.pr, generation: (s.pr.generation + 1) >>> 0, registrations: [...s.pr.registrations, r], aptpl } };
}

function runChild(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.on('exit', (code) => resolve({ code, out, err })));
}

describe('shared logical unit state file', () => {
  it('compare-and-swap: two processes writing concurrently lose no update; a third gateway follows', async () => {
    const dir = tmp();
    const watcher = await open(dir, 'observer');
    try {
      const n = 40;
      const [a, b] = await Promise.all([runChild([dir, WWN, '1', String(n)]), runChild([dir, WWN, '2', String(n)])]);
      assert.equal(a.code, 0, a.err);
      assert.equal(b.code, 0, b.err);
      // Every commit waited for this store's acknowledgement: it is current without a poll.
      const keys = watcher.state.pr.registrations.map((r) => r.key);
      assert.equal(keys.length, 2 * n, 'no lost update');
      assert.equal(new Set(keys).size, 2 * n);
      for (let i = 0; i < n; i++) {
        assert.ok(keys.includes(BigInt(1_000_000 + i)) && keys.includes(BigInt(2_000_000 + i)), `update ${i} of both writers`);
      }
      assert.equal(watcher.state.pr.generation, 2 * n);
      // The file agrees (epoch: one per commit, plus the creation).
      const doc = JSON.parse(fs.readFileSync(watcher.file, 'utf8')) as { epoch: number };
      assert.equal(doc.epoch, watcher.epoch);
      assert.ok(doc.epoch >= 2 * n + 1);
    } finally {
      await watcher.close();
    }
  });

  it('state and unit attentions reach the other gateway before the committing update returns', async () => {
    const dir = tmp();
    const g1 = await open(dir, 'gw1');
    const g2 = await open(dir, 'gw2');
    const got1: SharedAttention[] = [];
    const got2: SharedAttention[] = [];
    g1.subscribe({ attention: (a) => void got1.push(a) });
    g2.subscribe({ attention: (a) => void got2.push(a) });
    try {
      const holder = reg(0xaan);
      await g1.update((s) => ({ state: register(s, holder), result: undefined }));
      assert.equal(g2.state.pr.registrations[0]?.key, 0xaan, 'gateway 2 applied the registration');
      assert.equal(g2.current().pr.registrations.length, 1);
      const result = await g2.update((s) => ({
        state: { ...s, pr: { ...s.pr, registrations: [] } },
        result: 'preempted',
        attentions: [{ asc: Asc.RegistrationsPreempted, regs: s.pr.registrations, except: 'b-nexus', abort: true }],
      }));
      assert.equal(result, 'preempted');
      assert.equal(g1.state.pr.registrations.length, 0);
      assert.equal(got1.length, 1, 'gateway 1 got the attention');
      assert.equal(got1[0].asc, Asc.RegistrationsPreempted);
      assert.equal(got1[0].regs?.[0].key, 0xaan);
      assert.equal(got1[0].regs?.[0].initiatorPortName, holder.initiatorPortName);
      assert.equal(got1[0].except, 'b-nexus');
      assert.equal(got1[0].abort, true);
      assert.equal(got2.length, 1, 'the committing gateway tells its own LUs once');
      // A change that throws leaves the state as it was.
      await assert.rejects(g1.update(() => { throw new Error('conflict'); }), /conflict/);
      assert.equal(g2.state.pr.registrations.length, 0);
      // SPC-2: the holder's gateway is recorded, so the reservation dies with it.
      await g2.update((s) => ({ state: { ...s, spc2: { nexusKey: 'n1' } }, result: undefined }));
      assert.deepEqual(g1.state.spc2, { nexusKey: 'n1', holderInstance: 'gw2' });
    } finally {
      await g1.close();
      await g2.close();
    }
  });

  it('an SPC-2 reservation of a gateway that died is released', async () => {
    const dir = tmp();
    const g1 = await open(dir, 'gw1', { pollMs: 50 });
    const g2 = await open(dir, 'gw2', { pollMs: 50 });
    await g2.update((s) => ({ state: { ...s, spc2: { nexusKey: 'n1' } }, result: undefined }));
    // As if gateway 2 was killed: its watcher lock goes away with it.
    await g2.close();
    const deadline = Date.now() + 5000;
    while (g1.state.spc2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(g1.state.spc2, undefined);
    await g1.close();
  });

  it('a gateway whose event loop stalled past the acknowledgement timeout revalidates before its next command', async () => {
    const dir = tmp();
    const stalled = await open(dir, 'stalled', { pollMs: 100, ackTimeoutMs: 600 });
    try {
      const writer = runChild([dir, WWN, '3', '1'], { ISCSI_GATEWAY_LU_STATE_ACK_MS: '1000' });
      // Block this process's event loop (no watch event, no poll, no acknowledgement) while
      // the other process commits; it gives up waiting for us after its timeout.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 4000);
      // No await in between: the command path's check must see the commit synchronously.
      assert.equal(stalled.current().pr.registrations.length, 1, 'revalidated on the command path');
      const r = await writer;
      assert.equal(r.code, 0, r.err);
    } finally {
      await stalled.close();
    }
  });

  it('power on: without APTPL the reservations are gone once no gateway serves the LU; with APTPL they stay', async () => {
    const dir = tmp();
    let g1 = await open(dir, 'gw1');
    let g2 = await open(dir, 'gw2');
    await g1.update((s) => ({ state: { ...register(s, reg(1n)), spc2: { nexusKey: 'x' } }, result: undefined }));
    await g1.close(); // one gateway goes: nothing changes
    g1 = await open(dir, 'gw1b');
    assert.equal(g1.state.pr.registrations.length, 1);
    assert.ok(g1.state.spc2);
    await g1.close();
    await g2.close(); // the last one goes: power loss
    g1 = await open(dir, 'gw1c');
    assert.equal(g1.state.pr.registrations.length, 0);
    assert.equal(g1.state.spc2, undefined);
    await g1.update((s) => ({ state: register(s, reg(2n), true), result: undefined }));
    await g1.close();
    g2 = await open(dir, 'gw2b');
    assert.deepEqual(g2.state.pr.registrations.map((r) => r.key), [2n]);
    assert.equal(g2.state.pr.aptpl, true);
    await g2.close();
  });

  it('takes over an APTPL file of the single-gateway format, and refuses a damaged state file', async () => {
    const dir = tmp();
    const legacy = tmp();
    const pr = { generation: 4, registrations: [reg(9n)], aptpl: true };
    await saveAptplState(path.join(legacy, `aptpl_${WWN}.json`), WWN, pr);
    const g = await open(dir, 'gw1', { legacyAptplDir: legacy });
    assert.deepEqual(g.state.pr.registrations.map((r) => r.key), [9n]);
    assert.equal(g.state.pr.generation, 4);
    assert.equal(fs.existsSync(path.join(legacy, `aptpl_${WWN}.json`)), false, 'the old file is gone');
    await g.close();
    fs.writeFileSync(path.join(dir, `${WWN}.json`), '{"format": "iscsi-gateway-lu-state-1", "wwn"');
    await assert.rejects(open(dir, 'gw2'), LuStateFileError);
  });
});
