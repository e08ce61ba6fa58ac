import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ITNexus, ScsiStatus, TaskManagementFunction as Fn } from '../../../src/scsi/sam';
import { PrState, prStateFromJson, prStateToJson } from '../../../src/scsi/reservations';
import { LocalLuStateStore } from '../../../src/scsi/lu-state';
import { assertGood, assertSense, cdb10, command, deferred, fixture, Fixture, nexus, tick } from './helpers';

const RESERVATION_CONFLICT = ScsiStatus.ReservationConflict;
const WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8;

function prIn(sa: number, alloc = 4096): Buffer {
  return Buffer.from([0x5e, sa, 0, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0]);
}

function prOutCdb(sa: number, type = 0, scope = 0): Buffer {
  return Buffer.from([0x5f, sa, (scope << 4) | type, 0, 0, 0, 0, 0, 24, 0]);
}

function params(rk: bigint, sark: bigint, flags = 0): Buffer {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(rk, 0);
  p.writeBigUInt64BE(sark, 8);
  p[20] = flags;
  return p;
}

async function out(f: Fixture, n: ITNexus, sa: number, rk: bigint, sark: bigint, type = 0, flags = 0) {
  return f.run(prOutCdb(sa, type), { nexus: n, dataOut: params(rk, sark, flags) });
}

async function keys(f: Fixture, n: ITNexus): Promise<{ generation: number; keys: bigint[] }> {
  const d = (await f.run(prIn(0), { nexus: n })).data!;
  const list: bigint[] = [];
  for (let at = 8; at < 8 + d.readUInt32BE(4); at += 8) list.push(d.readBigUInt64BE(at));
  return { generation: d.readUInt32BE(0), keys: list };
}

async function reservation(f: Fixture, n: ITNexus): Promise<{ key: bigint; type: number } | undefined> {
  const d = (await f.run(prIn(1), { nexus: n })).data!;
  return d.readUInt32BE(4) === 0 ? undefined : { key: d.readBigUInt64BE(8), type: d[21] & 0x0f };
}

async function two(settings = {}): Promise<{ f: Fixture; a: ITNexus; b: ITNexus }> {
  const f = await fixture({ settings });
  const b = nexus(2);
  f.target.nexusCreated(b);
  await f.run([0, 0, 0, 0, 0, 0], { nexus: b });
  return { f, a: f.nexus, b };
}

const READ = cdb10(0x28, 1, 1);
const WRITE = cdb10(0x2a, 1, 1);
async function canRead(f: Fixture, n: ITNexus): Promise<boolean> {
  const r = await f.run(READ, { nexus: n });
  return r.status === ScsiStatus.Good;
}
async function canWrite(f: Fixture, n: ITNexus): Promise<boolean> {
  const r = await f.run(WRITE, { nexus: n, dataOut: Buffer.alloc(512) });
  if (r.status !== ScsiStatus.Good) assert.equal(r.status, RESERVATION_CONFLICT);
  return r.status === ScsiStatus.Good;
}

describe('PERSISTENT RESERVE OUT: registration', () => {
  it('REGISTER / REGISTER AND IGNORE EXISTING KEY / unregister, with PRGENERATION', async () => {
    const { f, a, b } = await two();
    assert.deepEqual(await keys(f, a), { generation: 0, keys: [] });
    assertGood(await out(f, a, 0, 0n, 0x1111n));
    assertGood(await out(f, b, 6, 0n, 0x2222n));
    assert.deepEqual(await keys(f, a), { generation: 2, keys: [0x1111n, 0x2222n] });
    assert.equal((await out(f, a, 0, 0x9999n, 0x3333n)).status, RESERVATION_CONFLICT, 'wrong reservation key');
    assert.equal((await out(f, a, 0, 0n, 0x3333n)).status, RESERVATION_CONFLICT, 'already registered');
    assertGood(await out(f, a, 0, 0x1111n, 0x3333n));
    assertGood(await out(f, a, 6, 0n, 0x4444n));
    assert.deepEqual(await keys(f, b), { generation: 4, keys: [0x4444n, 0x2222n] });
    assertGood(await out(f, a, 0, 0x4444n, 0n));
    assert.deepEqual(await keys(f, b), { generation: 5, keys: [0x2222n] });
    assertGood(await out(f, a, 0, 0n, 0n));
    assert.equal((await keys(f, b)).generation, 5, 'registering key 0 when unregistered changes nothing');
    assert.equal((await out(f, a, 0, 0x77n, 0n)).status, RESERVATION_CONFLICT);
  });

  it('READ KEYS truncates to the allocation length but keeps ADDITIONAL LENGTH', async () => {
    const { f, a } = await two();
    assertGood(await out(f, a, 0, 0n, 0xabn));
    const r = await f.run(prIn(0, 8), { nexus: a });
    assert.equal(r.data!.toString('hex'), '00000001' + '00000008');
  });

  it('checks the parameter list and CDB', async () => {
    const { f, a } = await two();
    const short = Buffer.from([0x5f, 0, 0, 0, 0, 0, 0, 0, 20, 0]);
    assertSense(await f.run(short, { nexus: a, dataOut: Buffer.alloc(20) }), 0x5, 0x1a00);
    assertSense(await out(f, a, 0, 0n, 1n, 0, 0x08), 0x5, 0x1a00); // SPEC_I_PT needs TransportIDs
    assertSense(await out(f, a, 6, 0n, 1n, 0, 0x08), 0x5, 0x2600); // SPEC_I_PT only with REGISTER
    const long = Buffer.from([0x5f, 0, 0, 0, 0, 0, 0, 0, 28, 0]);
    assertSense(await f.run(long, { nexus: a, dataOut: Buffer.concat([params(0n, 1n), Buffer.alloc(4)]) }), 0x5, 0x1a00);
    assertSense(await out(f, a, 0, 0n, 1n, 0, 0x10), 0x5, 0x2600); // reserved bit
    assertGood(await out(f, a, 0, 0n, 1n));
    assertSense(await f.run(prOutCdb(1, 2), { nexus: a, dataOut: params(1n, 0n) }), 0x5, 0x2400); // bad type
    assertSense(await f.run(prOutCdb(1, WE, 1), { nexus: a, dataOut: params(1n, 0n) }), 0x5, 0x2400); // scope
    assertSense(await f.run(Buffer.from([0x5f, 8, 0, 0, 0, 0, 0, 0, 24, 0]), { nexus: a, dataOut: params(1n, 0n) }), 0x5, 0x2400);
    for (let sa = 4; sa < 0x20; sa++) assertSense(await f.run(prIn(sa), { nexus: a }), 0x5, 0x2400);
  });

  it('without enforce_pr_isids a registration follows the initiator across ISIDs', async () => {
    for (const enforce of [1, 0]) {
      const f = await fixture({ settings: { enforce_pr_isids: enforce } });
      const other: ITNexus = { ...f.nexus, isid: '400000000099', initiatorPortName: f.nexus.initiatorName + ',i,0x400000000099', key: 'other-isid' };
      f.target.nexusCreated(other);
      await f.run([0, 0, 0, 0, 0, 0], { nexus: other });
      assertGood(await out(f, f.nexus, 0, 0n, 5n));
      const again = await out(f, other, 0, 0n, 6n);
      assert.equal(again.status, enforce ? ScsiStatus.Good : RESERVATION_CONFLICT);
    }
  });

  it('ALL_TG_PT registers the initiator through every target port', async () => {
    const f = await fixture();
    const viaPort2 = nexus(1, 2);
    f.target.nexusCreated(viaPort2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: viaPort2 });
    assertGood(await out(f, f.nexus, 0, 0n, 9n, 0, 0x04));
    assertGood(await out(f, viaPort2, 1, 9n, 0n, EA));
    assert.equal(await canWrite(f, f.nexus), false, 'the holder is the I_T nexus that reserved');
    assert.equal(await canWrite(f, viaPort2), true);
  });
});

describe('PERSISTENT RESERVE OUT: reservations', () => {
  const matrix: [string, number, boolean, boolean, boolean, boolean][] = [
    // type, registered other can read/write, unregistered other can read/write (libiscsi ProutReserve.Access*)
    ['EA', EA, false, false, false, false],
    ['WE', WE, true, false, true, false],
    ['EA_RO', EA_RO, true, true, false, false],
    ['WE_RO', WE_RO, true, true, true, false],
    ['EA_AR', EA_AR, true, true, false, false],
    ['WE_AR', WE_AR, true, true, true, false],
  ];
  for (const [name, type, regRead, regWrite, unregRead, unregWrite] of matrix) {
    it(`${name}: access of the holder and of other nexuses`, async () => {
      const { f, a, b } = await two();
      assertGood(await out(f, a, 0, 0n, 0xan));
      assertGood(await out(f, b, 0, 0n, 0xbn));
      assertGood(await out(f, a, 1, 0xan, 0n, type));
      assert.deepEqual(await reservation(f, b), { key: type === WE_AR || type === EA_AR ? 0n : 0xan, type });
      assert.equal(await canRead(f, a), true);
      assert.equal(await canWrite(f, a), true);
      assert.equal(await canRead(f, b), regRead);
      assert.equal(await canWrite(f, b), regWrite);
      assertGood(await out(f, b, 0, 0xbn, 0n));
      assert.equal(await canRead(f, b), unregRead);
      assert.equal(await canWrite(f, b), unregWrite);
      assertGood(await f.run([0x12, 0, 0, 0, 36, 0], { nexus: b }));
      assertGood(await f.run(prIn(0), { nexus: b }));
      assertGood(await f.run([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], { nexus: b }));
      assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }));
      assertGood(await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { nexus: b }));
      const modeSense = await f.run([0x1a, 0, 0x3f, 0, 255, 0], { nexus: b });
      assert.equal(modeSense.status === ScsiStatus.Good, unregRead);
      assertGood(await out(f, a, 2, 0xan, 0n, type));
      assert.equal(await reservation(f, a), undefined);
      assert.equal(await canWrite(f, b), true);
    });
  }

  it('RESERVE: a second reserve by the holder is a no-op, anyone else conflicts; no generation change', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    assertGood(await out(f, a, 1, 1n, 0n, WE));
    assertGood(await out(f, a, 1, 1n, 0n, WE));
    assert.equal((await out(f, a, 1, 1n, 0n, EA)).status, RESERVATION_CONFLICT);
    assert.equal((await out(f, b, 1, 2n, 0n, WE)).status, RESERVATION_CONFLICT);
    assert.equal((await out(f, a, 1, 2n, 0n, WE)).status, RESERVATION_CONFLICT, 'wrong key');
    assert.equal((await keys(f, a)).generation, 2);
  });

  it('RELEASE: non-holders are ignored, a wrong type is INVALID RELEASE OF PERSISTENT RESERVATION', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    assertGood(await out(f, a, 1, 1n, 0n, EA));
    assertGood(await out(f, b, 2, 2n, 0n, EA));
    assert.deepEqual(await reservation(f, a), { key: 1n, type: EA });
    assertSense(await out(f, a, 2, 1n, 0n, WE), 0x5, 0x2604);
    assert.equal((await f.run(prOutCdb(2, EA), { nexus: nexus(3), dataOut: params(0n, 0n) })).status, RESERVATION_CONFLICT);
    assertGood(await out(f, a, 2, 1n, 0n, EA));
  });

  it('releasing a registrants-only reservation tells the other registrants (RESERVATIONS RELEASED)', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    assertGood(await out(f, a, 1, 1n, 0n, WE_RO));
    assertGood(await out(f, a, 2, 1n, 0n, WE_RO));
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a04);
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: a }));
  });

  it('unregistering the holder releases the reservation; all-registrants reservations survive it', async () => {
    for (const [type, shared] of [[EA, false], [WE_RO, false], [EA_AR, true]] as const) {
      const { f, a, b } = await two();
      assertGood(await out(f, a, 0, 0n, 1n));
      assertGood(await out(f, b, 0, 0n, 2n));
      assertGood(await out(f, a, 1, 1n, 0n, type));
      assertGood(await out(f, a, 0, 1n, 0n));
      assert.deepEqual(await reservation(f, a), shared ? { key: 0n, type } : undefined);
      assertGood(await f.run(prIn(1), { nexus: a })); // no unit attention for the unregistering nexus
      if (type === WE_RO) assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a04);
      if (shared) {
        assertGood(await out(f, b, 2, 2n, 0n, type));
        assert.equal(await reservation(f, a), undefined);
      }
    }
  });

  it('CLEAR removes everything, bumps the generation once and tells the others', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    assertGood(await out(f, a, 1, 1n, 0n, EA));
    const g = (await keys(f, a)).generation;
    assertGood(await out(f, a, 3, 1n, 0n));
    assert.deepEqual(await keys(f, a), { generation: g + 1, keys: [] });
    assert.equal(await reservation(f, a), undefined);
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a03);
  });

  it('PREEMPT removes registrations (REGISTRATIONS PREEMPTED) and takes over the reservation', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    const g = (await keys(f, a)).generation;
    assertGood(await out(f, b, 4, 2n, 1n, EA));
    assert.deepEqual(await keys(f, b), { generation: g + 1, keys: [2n] });
    assert.equal(await reservation(f, b), undefined, 'no reservation: only registrations are preempted');
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: a }), 0x6, 0x2a05);
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, a, 1, 1n, 0n, WE));
    assertGood(await out(f, b, 4, 2n, 1n, EA));
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: a }), 0x6, 0x2a05);
    assert.deepEqual(await reservation(f, a), { key: 2n, type: EA });
    assert.equal((await out(f, b, 4, 2n, 0x55n, EA)).status, RESERVATION_CONFLICT, 'no such key');
    assertSense(await out(f, b, 4, 2n, 0n, EA), 0x5, 0x2600);
  });

  it('PREEMPT AND ABORT also ends the preempted nexus\'s tasks', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, b, 0, 0n, 2n));
    const held = deferred<Buffer>();
    const w = f.target.execute(command(cdb10(0x2a, 0, 1), { nexus: a, dataOutLength: 512, receive: (_n, signal) => {
      signal.addEventListener('abort', () => held.reject(new Error('aborted')));
      return held.promise;
    } }));
    await tick();
    assertGood(await out(f, b, 5, 2n, 1n, EA));
    const r = await w;
    assert.deepEqual(r.aborted, { reportStatus: true });
  });

  it('REPORT CAPABILITIES and READ FULL STATUS', async () => {
    const { f, a, b } = await two();
    assert.equal((await f.run(prIn(2), { nexus: a })).data!.toString('hex'), '00080d90ea010000');
    assertGood(await out(f, a, 0, 0n, 0x11n, 0, 0x01));
    assertGood(await out(f, b, 0, 0n, 0x22n, 0, 0x05));
    assertGood(await out(f, a, 1, 0x11n, 0n, WE_RO));
    assert.equal((await f.run(prIn(2), { nexus: a })).data![3], 0x91, 'PTPL_A');
    const d = (await f.run(prIn(3), { nexus: a })).data!;
    assert.equal(d.readUInt32BE(0), 2);
    const name = Buffer.from(a.initiatorPortName);
    const tidLen = (name.length + 1 + 3) & ~3;
    assert.equal(d.readUInt32BE(4), 2 * (24 + 4 + tidLen));
    let at = 8;
    assert.equal(d.readBigUInt64BE(at), 0x11n);
    assert.equal(d[at + 12], 0x01, 'R_HOLDER');
    assert.equal(d[at + 13], WE_RO);
    assert.equal(d.readUInt16BE(at + 18), 1);
    assert.equal(d.readUInt32BE(at + 20), 4 + tidLen);
    assert.equal(d[at + 24], 0x45);
    assert.equal(d.readUInt16BE(at + 26), tidLen);
    assert.equal(d.subarray(at + 28, at + 28 + name.length).toString(), a.initiatorPortName);
    at += 24 + 4 + tidLen;
    assert.equal(d.readBigUInt64BE(at), 0x22n);
    assert.equal(d[at + 12], 0x02, 'ALL_TG_PT, not the holder');
    assert.equal(d.readUInt16BE(at + 18), 0);
  });

  it('persistent reservations survive resets and nexus loss', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assertGood(await out(f, a, 1, 1n, 0n, EA));
    await f.target.taskManagement({ nexus: b, fn: Fn.LogicalUnitReset, lun: 0 });
    await f.target.nexusLost(a);
    f.target.nexusCreated(a);
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2903);
    assert.deepEqual(await reservation(f, b), { key: 1n, type: EA });
    assert.equal((await f.run(READ, { nexus: b })).status, RESERVATION_CONFLICT);
  });
});

describe('reservation store', () => {
  it('persists while APTPL is set, and drops the copy when APTPL is cleared', async () => {
    const saved: (PrState | undefined)[] = [];
    const store = new LocalLuStateStore({ persist: async (s) => { saved.push(s); } });
    const f = await fixture({ luState: store });
    assertGood(await out(f, f.nexus, 0, 0n, 7n, 0, 0x01));
    assertGood(await out(f, f.nexus, 1, 7n, 0n, EA));
    assertGood(await out(f, f.nexus, 0, 7n, 8n, 0, 0x00));
    assert.equal(saved.length, 3);
    assert.equal(saved[1]?.reservation?.type, EA);
    assert.equal(saved[2], undefined);
    const restored = prStateFromJson(JSON.parse(JSON.stringify(prStateToJson(saved[1]!))));
    assert.equal(restored.reservation?.holder, restored.registrations[0]);
    assert.equal(restored.registrations[0].key, 7n);
  });

  it('force_pr_aptpl persists every registration', async () => {
    const f = await fixture({ settings: { force_pr_aptpl: 1 } });
    assertGood(await out(f, f.nexus, 0, 0n, 7n));
    assert.equal((await f.run(prIn(2))).data![3] & 0x01, 1);
  });

  it('a failing persist leaves the state unchanged and fails the command', async () => {
    const store = new LocalLuStateStore({ persist: async () => { throw new Error('disk full'); } });
    await assert.rejects(store.update((s) => ({ state: { pr: { ...s.pr, aptpl: true, generation: 1 } }, result: 1 })), /disk full/);
    assert.equal(store.state.pr.generation, 0);
    assert.equal(await store.update((s) => ({ state: { pr: { ...s.pr, generation: 2 } }, result: 2 })), 2);
  });
});

describe('SPC-2 RESERVE / RELEASE', () => {
  it('reserve the LU for one nexus; others conflict except INQUIRY, REPORT LUNS, REQUEST SENSE, RELEASE', async () => {
    const { f, a, b } = await two();
    for (const op of [0x16, 0x56]) {
      const reserve = op === 0x16 ? [0x16, 0, 0, 0, 0, 0] : [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      const release = op === 0x16 ? [0x17, 0, 0, 0, 0, 0] : [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      assertGood(await f.run(reserve, { nexus: a }));
      assertGood(await f.run(reserve, { nexus: a }));
      assert.equal((await f.run(reserve, { nexus: b })).status, RESERVATION_CONFLICT);
      assertGood(await f.run(release, { nexus: b }));
      assert.equal((await f.run([0x1a, 0, 0x3f, 0, 255, 0], { nexus: b })).status, RESERVATION_CONFLICT);
      assert.equal((await f.run([0, 0, 0, 0, 0, 0], { nexus: b })).status, RESERVATION_CONFLICT);
      assertGood(await f.run([0x12, 0, 0, 0, 36, 0], { nexus: b }));
      assertGood(await f.run([0x03, 0, 0, 0, 18, 0], { nexus: b }));
      assertGood(await f.run([0x1a, 0, 0x3f, 0, 255, 0], { nexus: a }));
      assertGood(await f.run(release, { nexus: a }));
      assertGood(await f.run(reserve, { nexus: b }));
      assertGood(await f.run(release, { nexus: b }));
    }
  });

  it('is released by LU reset, target reset, I_T nexus reset and nexus loss', async () => {
    for (const fn of [Fn.LogicalUnitReset, Fn.TargetWarmReset, Fn.TargetColdReset, Fn.ITNexusReset, -1]) {
      const { f, a, b } = await two();
      assertGood(await f.run([0x16, 0, 0, 0, 0, 0], { nexus: a }));
      if (fn < 0) await f.target.nexusLost(a);
      else await f.target.taskManagement({ nexus: a, fn, lun: 0 });
      const r = await f.run([0x16, 0, 0, 0, 0, 0], { nexus: b });
      if (r.status === ScsiStatus.CheckCondition) assertGood(await f.run([0x16, 0, 0, 0, 0, 0], { nexus: b }));
      else assertGood(r);
    }
  });

  it('conflicts with persistent registrations (CRH=0)', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, a, 0, 0n, 1n));
    assert.equal((await f.run([0x16, 0, 0, 0, 0, 0], { nexus: b })).status, RESERVATION_CONFLICT);
    assert.equal((await f.run([0x17, 0, 0, 0, 0, 0], { nexus: a })).status, RESERVATION_CONFLICT);
  });

  it('UA_INTLCK_CTRL 11b leaves PREVIOUS RESERVATION CONFLICT STATUS behind', async () => {
    const { f, a, b } = await two({ emulate_ua_intlck_ctrl: 2 });
    await f.run([0x03, 0, 0, 0, 18, 0], { nexus: b });
    assertGood(await f.run([0x16, 0, 0, 0, 0, 0], { nexus: a }));
    assert.equal((await f.run(READ, { nexus: b })).status, RESERVATION_CONFLICT);
    const rs = await f.run([0x03, 0, 0, 0, 18, 0], { nexus: b });
    assert.equal(rs.data!.readUInt16BE(12), 0x2c09);
  });

  it('with emulate_pr=0 neither persistent nor SPC-2 reservations exist', async () => {
    const f = await fixture({ settings: { emulate_pr: 0 } });
    assertSense(await f.run(prIn(0)), 0x5, 0x2000);
    assertSense(await f.run([0x16, 0, 0, 0, 0, 0]), 0x5, 0x2000);
  });
});

describe('target resets', () => {
  it('report POWER ON, RESET (warm) or POWER ON OCCURRED (cold) to every nexus on every LU', async () => {
    for (const [fn, asc] of [[Fn.TargetWarmReset, 0x2900], [Fn.TargetColdReset, 0x2901]]) {
      const { f, a, b } = await two();
      assert.equal(await f.target.taskManagement({ nexus: a, fn, lun: 0 }), 0);
      assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: a }), 0x6, asc);
      assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, asc);
    }
  });
});

/** An iSCSI TransportID: format 01b for "name,i,0xISID", 00b for a bare node name. */
function tid(name: string, format = name.includes(',i,0x') ? 1 : 0, protocol = 5): Buffer {
  const len = Math.max(20, (Buffer.byteLength(name) + 1 + 3) & ~3);
  const b = Buffer.alloc(4 + len);
  b[0] = (format << 6) | protocol;
  b.writeUInt16BE(len, 2);
  b.write(name, 4);
  return b;
}

function longOut(sa: number, p: Buffer, type = 0): Buffer {
  const c = Buffer.from([0x5f, sa, type, 0, 0, 0, 0, 0, 0, 0]);
  c.writeUInt32BE(p.length, 5);
  return c;
}

/** REGISTER with SPEC_I_PT=1 and the given TransportIDs. */
function specIpt(rk: bigint, sark: bigint, ids: Buffer[], flags = 0): Buffer {
  const list = Buffer.concat(ids);
  const p = Buffer.concat([params(rk, sark, 0x08 | flags), Buffer.alloc(4), list]);
  p.writeUInt32BE(list.length, 24);
  return p;
}

/** REGISTER AND MOVE parameter list. */
function moveParams(rk: bigint, sark: bigint, rtpi: number, id: Buffer, flags = 0): Buffer {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(rk, 0);
  p.writeBigUInt64BE(sark, 8);
  p[17] = flags;
  p.writeUInt16BE(rtpi, 18);
  p.writeUInt32BE(id.length, 20);
  return Buffer.concat([p, id]);
}

describe('PERSISTENT RESERVE OUT: SPEC_I_PT', () => {
  it('registers the receiving nexus and every named initiator port, once, with one generation', async () => {
    const { f, a, b } = await two();
    const c = nexus(3);
    const c2: ITNexus = { ...c, isid: '400000000077', initiatorPortName: c.initiatorName + ',i,0x400000000077', key: 'c2' };
    for (const n of [c, c2]) {
      f.target.nexusCreated(n);
      await f.run([0, 0, 0, 0, 0, 0], { nexus: n });
    }
    // b by initiator port (format 01b), node 3 by name (format 00b).
    const p = specIpt(0n, 0x55n, [tid(b.initiatorPortName), tid(c.initiatorName)]);
    const r = await f.run(longOut(0, p), { nexus: a, dataOut: p });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, p.length);
    assert.deepEqual(await keys(f, a), { generation: 1, keys: [0x55n, 0x55n, 0x55n] });
    // Every named nexus is a registrant: b and both ports of node 3 may reserve / release.
    assertGood(await out(f, b, 1, 0x55n, 0n, WE));
    assertGood(await out(f, b, 2, 0x55n, 0n, WE));
    assertGood(await out(f, c2, 1, 0x55n, 0n, WE));
    assertGood(await out(f, c2, 2, 0x55n, 0n, WE));
    // READ FULL STATUS reports the node-wide registration with a format 00b TransportID.
    const d = (await f.run(prIn(3), { nexus: a })).data!;
    const tids: string[] = [];
    for (let at = 8; at < 8 + d.readUInt32BE(4); at += 24 + d.readUInt32BE(at + 20)) {
      tids.push(`${d[at + 24].toString(16)}:${d.subarray(at + 28, at + 24 + d.readUInt32BE(at + 20)).toString().replace(/\0+$/, '')}`);
    }
    assert.deepEqual(tids, [`45:${a.initiatorPortName}`, `45:${b.initiatorPortName}`, `5:${c.initiatorName}`]);
  });

  it('leaves already registered initiator ports alone; refuses SPEC_I_PT from a registered nexus', async () => {
    const { f, a, b } = await two();
    assertGood(await out(f, b, 0, 0n, 0x22n));
    const p = specIpt(0n, 0x11n, [tid(b.initiatorPortName)]);
    assertGood(await f.run(longOut(0, p), { nexus: a, dataOut: p }));
    assert.deepEqual((await keys(f, a)).keys, [0x22n, 0x11n]);
    const again = specIpt(0x11n, 0x33n, [tid(nexus(4).initiatorPortName)]);
    const s = assertSense(await f.run(longOut(0, again), { nexus: a, dataOut: again }), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 20, bit: 3 });
  });

  it('validates the TransportIDs and registers nothing when one is bad', async () => {
    const { f, a } = await two();
    const good = tid(nexus(4).initiatorPortName);
    const cases: [Buffer, number, number, number][] = [
      [specIpt(0n, 1n, [good, tid(nexus(6).initiatorPortName, 1, 1)]), 0x2600, 28 + good.length, 3], // not iSCSI
      [specIpt(0n, 1n, [tid(nexus(6).initiatorPortName, 2)]), 0x2600, 28, 7], // format 10b
      [specIpt(0n, 1n, [tid('iqn.2024-01.test:x,i,0x12')]), 0x2600, 32, 7], // short ISID
      [specIpt(0n, 1n, [tid('iqn.2024-01.test:x,y')]), 0x2600, 32, 7], // a comma in a node name
      [specIpt(0n, 1n, [Buffer.alloc(16, 0x45)]), 0x2600, 28, 7], // too short
    ];
    const noNul = tid('iqn.2024-01.test:abcdefghijk');
    noNul.fill(0x61, 4);
    cases.push([specIpt(0n, 1n, [noNul]), 0x2600, 32, 7]);
    const oddLength = tid(nexus(6).initiatorPortName);
    oddLength.writeUInt16BE(oddLength.readUInt16BE(2) - 2, 2);
    cases.push([specIpt(0n, 1n, [oddLength]), 0x2600, 30, 7]);
    for (const [p, asc, byte, bit] of cases) {
      const s = assertSense(await f.run(longOut(0, p), { nexus: a, dataOut: p }), 0x5, asc);
      assert.deepEqual(s.field, { cdb: false, byte, bit });
    }
    const mismatch = specIpt(0n, 1n, [good]);
    mismatch.writeUInt32BE(good.length + 4, 24);
    assertSense(await f.run(longOut(0, mismatch), { nexus: a, dataOut: mismatch }), 0x5, 0x1a00);
    assert.deepEqual(await keys(f, a), { generation: 0, keys: [] });
  });
});

describe('PERSISTENT RESERVE OUT: REGISTER AND MOVE', () => {
  it('moves the reservation to the named I_T nexus with the new key; UNREG drops the source', async () => {
    for (const unreg of [false, true]) {
      const { f, a, b } = await two();
      assertGood(await out(f, a, 0, 0n, 0x1n));
      assertGood(await out(f, a, 1, 0x1n, 0n, WE));
      const p = moveParams(0x1n, 0x2n, 1, tid(b.initiatorPortName), unreg ? 0x02 : 0);
      const r = await f.run(longOut(7, p, EA), { nexus: a, dataOut: p });
      assertGood(r);
      assert.equal(r.dataOutTransferLength, p.length);
      assert.deepEqual(await reservation(f, a), { key: 0x2n, type: WE }, 'same type, whatever the CDB says');
      assert.deepEqual(await keys(f, a), { generation: 2, keys: unreg ? [0x2n] : [0x1n, 0x2n] });
      assert.equal(await canWrite(f, b), true);
      assert.equal(await canWrite(f, a), false);
    }
  });

  it('moves to a nexus through another target port by RELATIVE TARGET PORT IDENTIFIER', async () => {
    const { f, a, b } = await two();
    const bPort2 = nexus(2, 2);
    f.target.nexusCreated(bPort2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: bPort2 });
    assertGood(await out(f, b, 0, 0n, 0x7n));
    assertGood(await out(f, a, 0, 0n, 0x1n));
    assertGood(await out(f, a, 1, 0x1n, 0n, EA));
    const p = moveParams(0x1n, 0x9n, 2, tid(b.initiatorPortName));
    assertGood(await f.run(longOut(7, p), { nexus: a, dataOut: p }));
    assert.equal(await canRead(f, bPort2), true);
    assert.equal(await canRead(f, b), false, 'b through port 1 is another I_T nexus');
    assert.deepEqual((await keys(f, a)).keys, [0x7n, 0x1n, 0x9n]);
  });

  it('errors: conflicts for non-holders and all-registrants, bad parameters, no reservation', async () => {
    const { f, a, b } = await two();
    const toB = (rk: bigint, sark: bigint, rtpi = 1) => moveParams(rk, sark, rtpi, tid(b.initiatorPortName));
    const move = (n: ITNexus, p: Buffer) => f.run(longOut(7, p), { nexus: n, dataOut: p });
    assert.equal((await move(a, toB(0n, 2n))).status, RESERVATION_CONFLICT, 'not registered');
    assertGood(await out(f, a, 0, 0n, 0x1n));
    assert.equal((await move(a, toB(0x5n, 2n))).status, RESERVATION_CONFLICT, 'wrong key');
    assertSense(await move(a, toB(0x1n, 2n)), 0x5, 0x2400); // no reservation
    assertGood(await out(f, b, 0, 0n, 0x2n));
    assertGood(await out(f, b, 1, 0x2n, 0n, WE));
    assert.equal((await move(a, moveParams(0x1n, 3n, 1, tid(nexus(3).initiatorPortName)))).status, RESERVATION_CONFLICT, 'not the holder');
    assertGood(await out(f, b, 2, 0x2n, 0n, WE));
    assertGood(await out(f, a, 1, 0x1n, 0n, WE_AR));
    assert.equal((await move(a, toB(0x1n, 3n))).status, RESERVATION_CONFLICT, 'all registrants');
    assertGood(await out(f, a, 2, 0x1n, 0n, WE_AR));
    assertGood(await out(f, a, 1, 0x1n, 0n, EA));
    let s = assertSense(await move(a, toB(0x1n, 0n)), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 8, bit: 7 });
    s = assertSense(await move(a, toB(0x1n, 3n, 9)), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 18, bit: 7 });
    s = assertSense(await move(a, moveParams(0x1n, 3n, 1, tid(a.initiatorPortName))), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 24, bit: 7 });
    const bad = toB(0x1n, 3n);
    bad.writeUInt32BE(4, 20);
    assertSense(await move(a, bad), 0x5, 0x1a00);
    const reserved = toB(0x1n, 3n);
    reserved[17] = 0x04;
    assertSense(await move(a, reserved), 0x5, 0x2600);
    assert.deepEqual(await reservation(f, a), { key: 0x1n, type: EA }, 'nothing moved');
  });
});
