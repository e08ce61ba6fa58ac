/**
 * One logical-unit state for every LU of an image: two targets over one store (as the daemon
 * wires a disk mapped to two targets, or the same image on two gateways) share persistent and
 * SPC-2 reservations, the unit attentions one nexus's action causes for others, MODE SELECT,
 * and a LOGICAL UNIT RESET; a replaced LU keeps the attentions its nexuses were not told yet.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ITNexus, ScsiStatus, TaskManagementFunction as Fn } from '../../../src/scsi/sam';
import { LocalLuStateStore } from '../../../src/scsi/lu-state';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertSense, cdb10, fixture, Fixture, nexus, WWN } from './helpers';

const WE = 1;
const WRITE = cdb10(0x2a, 1, 1);
const BLOCK = Buffer.alloc(512, 7);

function prOut(f: Fixture, n: ITNexus, sa: number, rk: bigint, sark: bigint, type = 0) {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(rk, 0);
  p.writeBigUInt64BE(sark, 8);
  return f.run(Buffer.from([0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0]), { nexus: n, dataOut: p });
}

/** Two targets (ports 1 and 2) exporting one image through one shared state. */
async function twoTargets(): Promise<{ t1: Fixture; t2: Fixture; a: ITNexus; b: ITNexus; store: LocalLuStateStore; device: MemoryBackstore }> {
  const store = new LocalLuStateStore();
  const device = new MemoryBackstore({ size: 2048 * 512, name: 'mem-shared' });
  const t1 = await fixture({ luState: store, device });
  const t2 = await fixture({ luState: store, device });
  // The fixture's nexus is initiator 1 through port 1; on target 2 use initiator 2 through port 2.
  const b = nexus(2, 2);
  t2.target.nexusCreated(b);
  await t2.run([0, 0, 0, 0, 0, 0], { nexus: b });
  return { t1, t2, a: t1.nexus, b, store, device };
}

describe('one logical unit state for every LU of an image', () => {
  it('PREEMPT through one target reaches the preempted nexus on the other, and the reservation binds both', async () => {
    const { t1, t2, a, b } = await twoTargets();
    assertGood(await prOut(t1, a, 0, 0n, 0xan));
    assertGood(await prOut(t1, a, 1, 0xan, 0n, WE));
    assert.equal((await t2.run(WRITE, { nexus: b, dataOut: BLOCK })).status, ScsiStatus.ReservationConflict);
    assertGood(await prOut(t2, b, 0, 0n, 0xbn));
    assertGood(await prOut(t2, b, 4, 0xbn, 0xan, WE));
    assertSense(await t1.run([0, 0, 0, 0, 0, 0], { nexus: a }), 0x6, 0x2a05);
    assertGood(await t2.run(WRITE, { nexus: b, dataOut: BLOCK }));
    assert.equal((await t1.run(WRITE, { nexus: a, dataOut: BLOCK })).status, ScsiStatus.ReservationConflict);
  });

  it('SPC-2 RESERVE through one target binds the other until the holder\'s nexus is lost', async () => {
    const { t1, t2, a, b } = await twoTargets();
    assertGood(await t1.run([0x16, 0, 0, 0, 0, 0], { nexus: a }));
    assert.equal((await t2.run(cdb10(0x28, 0, 1), { nexus: b })).status, ScsiStatus.ReservationConflict);
    await t1.target.nexusLost(a);
    assertGood(await t2.run(cdb10(0x28, 0, 1), { nexus: b }));
  });

  it('MODE SELECT and LOGICAL UNIT RESET through one target reach the other target\'s nexuses', async () => {
    const { t1, t2, a, b } = await twoTargets();
    const control = Buffer.from('000000000a0a020008400000ffff0000', 'hex'); // SWP=1
    assertGood(await t1.run([0x15, 0x10, 0, 0, control.length, 0], { nexus: a, dataOut: control }));
    assertSense(await t2.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a01);
    assertSense(await t2.run(WRITE, { nexus: b, dataOut: BLOCK }), 0x7, 0x2700);
    const r = await t1.target.taskManagement({ fn: Fn.LogicalUnitReset, nexus: a, lun: 0 });
    assert.equal(r, 0);
    assertSense(await t2.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2903);
    assertGood(await t2.run(WRITE, { nexus: b, dataOut: BLOCK }));
  });

  it('a replaced LU keeps the attentions its nexuses have not been told yet', async () => {
    const { t1, t2, a, b, store, device } = await twoTargets();
    assertGood(await prOut(t2, b, 0, 0n, 0xbn));
    assertGood(await prOut(t1, a, 0, 0n, 0xan));
    assertGood(await prOut(t1, a, 4, 0xan, 0xbn, WE));
    // Before b hears of it, its LU is replaced (an ALUA transition, new controls, ...).
    await t2.target.replaceLogicalUnit({ lun: 0, device, wwn: WWN, name: 'rbd/disk_1', luState: store });
    assertSense(await t2.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a05);
    assertSense(await t2.run([0, 0, 0, 0, 0, 0], { nexus: b }), 0x6, 0x2a01);
    assertGood(await t2.run([0, 0, 0, 0, 0, 0], { nexus: b }));
  });
});
