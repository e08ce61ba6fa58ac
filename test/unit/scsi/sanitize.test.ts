import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus, TaskManagementFunction as Fn, TaskManagementResponse as Rsp } from '../../../src/scsi/sam';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { BlockDeviceError } from '../../../src/block/block-device';
import { Fixture, FixtureOptions, assertGood, assertInvalidField, assertSense, cdb10, cdb16, command, deferred, fixture as plainFixture, nexus, pattern, tick } from './helpers';

const TP = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1 };

/** A LU on which the administrator allowed SANITIZE. */
function fixture(o: FixtureOptions = {}): Promise<Fixture> {
  return plainFixture({ ...o, settings: { emulate_sanitize: 1, ...o.settings } });
}
const OVERWRITE = 0x01;
const BLOCK_ERASE = 0x02;
const EXIT_FAILURE_MODE = 0x1f;

function sanitizeCdb(sa: number, length: number, o: { immed?: boolean; ause?: boolean } = {}): Buffer {
  return Buffer.from([0x48, (o.immed ? 0x80 : 0) | (o.ause ? 0x20 : 0) | sa, 0, 0, 0, 0, 0, length >> 8, length & 0xff, 0]);
}

function overwriteParams(fill: number, patternLength: number, passes = 1, invert = false): Buffer {
  const p = Buffer.alloc(4 + patternLength, fill);
  p[0] = (invert ? 0x80 : 0) | passes;
  p[1] = 0;
  p.writeUInt16BE(patternLength, 2);
  return p;
}

/** A MemoryBackstore whose writeSame/discard wait for release() (a long sanitize). */
function slowDevice(blocks = 2048): { device: MemoryBackstore; release: () => void; fail: (e: Error) => void } {
  const device = new MemoryBackstore({ size: blocks * 512 });
  let gate = deferred<void>();
  const writeSame = device.writeSame.bind(device);
  const discard = device.discard.bind(device);
  device.writeSame = async (o, l, p, opt) => { await gate.promise; return writeSame(o, l, p, opt); };
  device.discard = async (o, l) => { await gate.promise; return discard(o, l); };
  return {
    device,
    release: () => { gate.resolve(); gate = deferred<void>(); },
    fail: (e) => { gate.reject(e); gate = deferred<void>(); },
  };
}

describe('SANITIZE', () => {
  it('exists only where emulate_sanitize allows it', async () => {
    const f = await plainFixture({ settings: TP });
    assertSense(await f.run(sanitizeCdb(BLOCK_ERASE, 0)), 0x5, 0x2000);
    const rsoc = await f.run([0xa3, 0x0c, 0x03, 0x48, 0, 2, 0, 0, 0, 16, 0, 0]);
    assertGood(rsoc);
    assert.equal(rsoc.data![1] & 0x07, 0x01, 'REPORT SUPPORTED OPERATION CODES: not supported');
    const b1 = (await f.run([0x12, 1, 0xb1, 0, 64, 0])).data!;
    assert.equal(b1[7] & 0xc0, 0, 'no WABEREQ without BLOCK ERASE');
  });

  it('OVERWRITE fills the whole medium with the pattern', async () => {
    const f = await fixture({ blocks: 1024 });
    assertGood(await f.run(cdb10(0x2a, 1000, 8), { dataOut: pattern(4096) }));
    const r = await f.run(sanitizeCdb(OVERWRITE, 4 + 512), { dataOut: overwriteParams(0xaa, 512) });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 516);
    for (const lba of [0, 1000, 1023]) {
      const d = (await f.run(cdb10(0x28, lba, 1))).data!;
      assert.ok(d.equals(Buffer.alloc(512, 0xaa)), `block ${lba}`);
    }
  });

  it('OVERWRITE with a short pattern repeats it; INVERT with 2 passes ends on the pattern', async () => {
    const f = await fixture({ blocks: 64 });
    const p = overwriteParams(0, 4, 2, true);
    p.set([1, 2, 3, 4], 4);
    assertGood(await f.run(sanitizeCdb(OVERWRITE, p.length), { dataOut: p }));
    const d = (await f.run(cdb10(0x28, 63, 1))).data!;
    assert.deepEqual([...d.subarray(0, 8)], [1, 2, 3, 4, 1, 2, 3, 4]);
  });

  it('validates the OVERWRITE parameter list length and parameters', async () => {
    const f = await fixture();
    for (const len of [0, 1, 4]) assertInvalidField(await f.run(sanitizeCdb(OVERWRITE, len), { dataOut: Buffer.alloc(len) }), 7, 7);
    assertInvalidField(await f.run(sanitizeCdb(OVERWRITE, 517), { dataOut: Buffer.alloc(520) }), 7, 7);
    const noPasses = overwriteParams(0, 512, 0);
    let s = assertSense(await f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: noPasses }), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 0, bit: 4 });
    const zeroLength = overwriteParams(0, 512);
    zeroLength.writeUInt16BE(0, 2);
    s = assertSense(await f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: zeroLength }), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 2, bit: 7 });
    const tooLong = overwriteParams(0, 512);
    tooLong.writeUInt16BE(516, 2);
    assertSense(await f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: tooLong }), 0x5, 0x2600);
    // Nothing was written by the refused commands.
    assert.equal(f.device.allocatedBytes(), 0);
  });

  it('rejects unsupported service actions and reserved CDB fields', async () => {
    const f = await fixture();
    for (const sa of [0, 3, 4, 0x10, 0x1e]) assertInvalidField(await f.run(sanitizeCdb(sa, 0)), 1, 4);
    // BLOCK ERASE exists only on a thin-provisioned LU.
    assertInvalidField(await f.run(sanitizeCdb(BLOCK_ERASE, 0)), 1, 4);
    const c = sanitizeCdb(OVERWRITE, 516);
    c[1] |= 0x40;
    assertInvalidField(await f.run(c, { dataOut: overwriteParams(0, 512) }), 1, 6);
    for (let byte = 2; byte <= 6; byte++) {
      const r = sanitizeCdb(OVERWRITE, 516);
      r[byte] = 0x04;
      assertInvalidField(await f.run(r, { dataOut: overwriteParams(0, 512) }), byte, 2);
    }
    assertInvalidField(await f.run(sanitizeCdb(EXIT_FAILURE_MODE, 8), { dataOut: Buffer.alloc(8) }), 7, 7);
  });

  it('BLOCK ERASE deallocates everything on a thin LU; WABEREQ=01b, reads succeed with zeros', async () => {
    const f = await fixture({ settings: TP, blocks: 1024 });
    const b1 = (await f.run([0x12, 1, 0xb1, 0, 64, 0])).data!;
    assert.equal(b1[7] & 0xc0, 0x40, 'WABEREQ');
    assertGood(await f.run(cdb10(0x2a, 0, 256), { dataOut: Buffer.alloc(256 * 512, 0x61) }));
    assertInvalidField(await f.run(sanitizeCdb(BLOCK_ERASE, 8), { dataOut: Buffer.alloc(8) }), 7, 7);
    assertGood(await f.run(sanitizeCdb(BLOCK_ERASE, 0)));
    assert.equal(f.device.allocatedBytes(), 0);
    const d = (await f.run(cdb10(0x28, 0, 256))).data!;
    assert.ok(d.equals(Buffer.alloc(256 * 512)));
  });

  it('without thin provisioning WABEREQ is 0', async () => {
    const f = await fixture();
    const b1 = (await f.run([0x12, 1, 0xb1, 0, 64, 0])).data!;
    assert.equal(b1[7] & 0xc0, 0);
  });

  it('refuses a write-protected LU with DATA PROTECT before transferring data', async () => {
    const f = await fixture({ readOnly: true, settings: TP });
    const cmd = command(sanitizeCdb(OVERWRITE, 516), { nexus: f.nexus, dataOut: overwriteParams(0, 512) });
    assertSense(await f.target.execute(cmd), 0x7, 0x2700);
    assert.deepEqual(cmd.received, []);
    assertSense(await f.run(sanitizeCdb(BLOCK_ERASE, 0)), 0x7, 0x2700);
  });

  it('IMMED: GOOD at once; then NOT READY / SANITIZE IN PROGRESS except INQUIRY, REPORT LUNS, REQUEST SENSE', async () => {
    const slow = slowDevice();
    const f = await fixture({ device: slow.device });
    assertGood(await f.run(sanitizeCdb(OVERWRITE, 516, { immed: true }), { dataOut: overwriteParams(0x55, 512) }));
    const tur = assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x2, 0x041b);
    assert.equal(tur.field, undefined);
    assert.equal(tur.progress, 0);
    const fixed = (await f.run([0, 0, 0, 0, 0, 0])).sense!;
    assert.equal(fixed[15], 0x80, 'SKSV with a progress indication');
    assertSense(await f.run(cdb10(0x28, 0, 1)), 0x2, 0x041b);
    assertSense(await f.run(cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512) }), 0x2, 0x041b);
    // Whatever the CDB: an eject of the non-removable medium, an unknown operation code.
    assertSense(await f.run([0x1b, 1, 0, 0, 2, 0]), 0x2, 0x041b);
    assertSense(await f.run([0xff, 0, 0, 0, 0, 0]), 0x2, 0x041b);
    assertGood(await f.run([0x12, 0, 0, 0, 36, 0]));
    assertGood(await f.run([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]));
    const rs = await f.run([0x03, 0, 0, 0, 252, 0]);
    assertGood(rs);
    assert.deepEqual([rs.data![2] & 0xf, rs.data![12], rs.data![13], rs.data![15]], [0x2, 0x04, 0x1b, 0x80]);
    const rsDesc = await f.run([0x03, 1, 0, 0, 252, 0]);
    assert.equal(rsDesc.data![0], 0x72);
    assert.deepEqual([...rsDesc.data!.subarray(8, 12)], [0x02, 0x06, 0, 0]);
    assert.equal(rsDesc.data![12], 0x80);
    slow.release();
    await tick(20);
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    assert.ok((await f.run(cdb10(0x28, 2047, 1))).data!.equals(Buffer.alloc(512, 0x55)));
  });

  it('without IMMED the command waits; a LOGICAL UNIT RESET neither waits for nor stops the sanitize', async () => {
    const slow = slowDevice();
    const f = await fixture({ device: slow.device });
    let done = false;
    const pending = f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: overwriteParams(0x77, 512) }).then((r) => { done = true; return r; });
    await tick();
    assert.equal(done, false);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.LogicalUnitReset, lun: 0 }), Rsp.FunctionComplete);
    const r = await pending;
    assert.equal(r.status, ScsiStatus.TaskAborted);
    // The reset UA comes first, then the sanitize is still reported.
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x6, 0x2903);
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x2, 0x041b);
    slow.release();
    await tick(20);
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    assert.ok((await f.run(cdb10(0x28, 5, 1))).data!.equals(Buffer.alloc(512, 0x77)));
  });

  it('a failed sanitize: MEDIUM ERROR / SANITIZE COMMAND FAILED for medium access until EXIT FAILURE MODE (AUSE=1)', async () => {
    const slow = slowDevice();
    const f = await fixture({ device: slow.device });
    const pending = f.run(sanitizeCdb(OVERWRITE, 516, { ause: true }), { dataOut: overwriteParams(0, 512) });
    await tick();
    slow.fail(new BlockDeviceError('boom', 'io'));
    assertSense(await pending, 0x3, 0x3103);
    assertSense(await f.run(cdb10(0x28, 0, 1)), 0x3, 0x3103);
    assertSense(await f.run(cdb16(0x8a, 0, 1), { dataOut: Buffer.alloc(512) }), 0x3, 0x3103);
    assertGood(await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    assertGood(await f.run(sanitizeCdb(EXIT_FAILURE_MODE, 0)));
    assertGood(await f.run(cdb10(0x28, 0, 1)));
  });

  it('after a failed sanitize without AUSE, EXIT FAILURE MODE is refused and only a new sanitize recovers', async () => {
    const slow = slowDevice();
    const f = await fixture({ device: slow.device });
    const pending = f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: overwriteParams(0, 512) });
    await tick();
    slow.fail(new BlockDeviceError('boom', 'io'));
    assertSense(await pending, 0x3, 0x3103);
    assertInvalidField(await f.run(sanitizeCdb(EXIT_FAILURE_MODE, 0)), 1, 4);
    assertSense(await f.run(cdb10(0x28, 0, 1)), 0x3, 0x3103);
    const again = f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: overwriteParams(0x11, 512) });
    await tick();
    slow.release();
    assertGood(await again);
    const d = await f.run(cdb10(0x28, 0, 1));
    assertGood(d);
    assert.equal(d.data![0], 0x11);
  });

  it('is refused under another nexus\'s reservation', async () => {
    const f = await fixture();
    const other = nexus(2);
    f.target.nexusCreated(other);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: other });
    assertGood(await f.run([0x16, 0, 0, 0, 0, 0], { nexus: other }));
    const r = await f.run(sanitizeCdb(OVERWRITE, 516), { dataOut: overwriteParams(0, 512) });
    assert.equal(r.status, ScsiStatus.ReservationConflict);
  });
});
