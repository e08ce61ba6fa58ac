import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertGood, assertInvalidField, assertSense, cdb10, fixture, nexus } from './helpers';
import { decodeSense } from '../../../src/scsi/sense';

function sense6(page: number, pc = 0, dbd = false, alloc = 255, subpage = 0): Buffer {
  return Buffer.from([0x1a, dbd ? 0x08 : 0, (pc << 6) | page, subpage, alloc, 0]);
}

function sense10(page: number, pc = 0, dbd = false, llbaa = false, alloc = 1024): Buffer {
  return Buffer.from([0x5a, (dbd ? 0x08 : 0) | (llbaa ? 0x10 : 0), (pc << 6) | page, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0]);
}

function select6(params: Buffer, pf = true, sp = false): Buffer {
  return Buffer.from([0x15, (pf ? 0x10 : 0) | (sp ? 1 : 0), 0, 0, params.length, 0]);
}

function select10(params: Buffer): Buffer {
  return Buffer.from([0x55, 0x10, 0, 0, 0, 0, 0, params.length >> 8, params.length & 0xff, 0]);
}

/** Pages of MODE SENSE(6) data by page code. */
function pages6(d: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let at = 4 + d[3]; at < d.length; at += 2 + d[at + 1]) m.set(d[at] & 0x3f, d.subarray(at, at + 2 + d[at + 1]));
  return m;
}

const CONTROL_DEFAULT = '0a0a' + '02' + '00' + '00' + '40' + '0000' + 'ffff' + '0000';

describe('MODE SENSE', () => {
  it('(6) return-all: header, block descriptor, pages 01 08 0A 1C in order', async () => {
    const f = await fixture({ blocks: 2048 });
    const r = await f.run(sense6(0x3f));
    assertGood(r);
    const d = r.data!;
    assert.equal(d[0], d.length - 1);
    assert.equal(d[1], 0);
    assert.equal(d[2], 0x10, 'DPOFUA, not write protected');
    assert.equal(d[3], 8);
    assert.equal(d.subarray(4, 12).toString('hex'), '00000800' + '00000200');
    const p = pages6(d);
    assert.deepEqual([...p.keys()], [0x01, 0x08, 0x0a, 0x1c]);
    assert.equal(p.get(0x01)!.toString('hex'), '010a' + '00'.repeat(10));
    assert.equal(p.get(0x08)!.toString('hex'), '0812' + '00'.repeat(18), 'WCE=0 by default');
    assert.equal(p.get(0x0a)!.toString('hex'), CONTROL_DEFAULT);
    assert.equal(p.get(0x1c)!.toString('hex'), '1c0a08' + '00'.repeat(9));
    assert.deepEqual((await f.run(sense6(0x3f, 0, false, 255, 0xff))).data, d);
  });

  it('(6) one page, DBD, allocation length truncation', async () => {
    const f = await fixture();
    const r = await f.run(sense6(0x0a, 0, true));
    assert.equal(r.data!.toString('hex'), '0f' + '00' + '10' + '00' + CONTROL_DEFAULT);
    const t = await f.run(sense6(0x3f, 0, false, 4));
    assert.equal(t.data!.length, 4);
    assert.equal(t.data![0], 4 + 8 + 12 + 20 + 12 + 12 - 1);
  });

  it('(10) with LLBAA returns a long LBA block descriptor', async () => {
    const f = await fixture({ blocks: 1234, blockSize: 4096 });
    const r = await f.run(sense10(0x08, 0, false, true));
    assertGood(r);
    const d = r.data!;
    assert.equal(d.readUInt16BE(0), d.length - 2);
    assert.equal(d[4], 0x01, 'LONGLBA');
    assert.equal(d.readUInt16BE(6), 16);
    assert.equal(d.subarray(8, 24).toString('hex'), '00000000000004d2' + '00000000' + '00001000');
    assert.equal(d[24], 0x08);
    const s = await f.run(sense10(0x08));
    assert.equal(s.data!.readUInt16BE(6), 8);
    assert.equal(s.data!.subarray(8, 16).toString('hex'), '000004d2' + '00001000');
  });

  it('changeable and default values; saved values are not supported', async () => {
    const f = await fixture({ settings: { emulate_write_cache: 1, emulate_tas: 0, emulate_ua_intlck_ctrl: 2, emulate_rest_reord: 0 } });
    const ch = pages6((await f.run(sense6(0x3f, 1, true))).data!);
    assert.equal(ch.get(0x08)!.toString('hex'), '0812' + '04' + '00'.repeat(17));
    assert.equal(ch.get(0x0a)!.toString('hex'), '0a0a' + '04' + 'f0' + '38' + '40' + '00'.repeat(6));
    assert.equal(ch.get(0x01)!.toString('hex'), '010a' + '00'.repeat(10));
    const def = pages6((await f.run(sense6(0x3f, 2, true))).data!);
    assert.equal(def.get(0x08)![2], 0x04, 'WCE from emulate_write_cache');
    assert.equal(def.get(0x0a)!.toString('hex'), '0a0a' + '02' + '10' + '30' + '00' + '0000' + 'ffff' + '0000');
    assertSense(await f.run(sense6(0x3f, 3)), 0x5, 0x3900);
  });

  it('unknown pages and subpages are INVALID FIELD IN CDB', async () => {
    const f = await fixture();
    assertInvalidField(await f.run(sense6(0x19)), 2, 5);
    assertInvalidField(await f.run(sense6(0x0a, 0, false, 255, 1)), 3, 7);
    assertInvalidField(await f.run(sense6(0x3f, 0, false, 255, 5)), 3, 7);
  });

  it('WP reflects a read-only device', async () => {
    const f = await fixture({ readOnly: true });
    assert.equal((await f.run(sense6(0x3f))).data![2], 0x90);
    assert.equal((await f.run(sense10(0x3f))).data![3], 0x90);
  });

  it('DPOFUA is clear when DPO or FUA is not emulated', async () => {
    const f = await fixture({ settings: { emulate_fua_write: 0 } });
    assert.equal((await f.run(sense6(0x3f))).data![2], 0x00);
  });
});

describe('MODE SELECT', () => {
  function controlPage(byte2: number, byte4: number, byte5: number, byte3 = 0): Buffer {
    return Buffer.from('00000000' + '0a0a' + [byte2, byte3, byte4, byte5].map((b) => b.toString(16).padStart(2, '0')).join('') + '0000ffff0000', 'hex');
  }

  it('sets SWP: WRITE is then WRITE PROTECTED, MODE SENSE shows SWP and WP', async () => {
    const f = await fixture();
    const r = await f.run(select6(controlPage(0x02, 0x08, 0x40)), { dataOut: controlPage(0x02, 0x08, 0x40) });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 16);
    const d = (await f.run(sense6(0x0a, 0, true))).data!;
    assert.equal(d[2], 0x90);
    assert.equal(d[4 + 4], 0x08);
    assertGood(await f.run(cdb10(0x28, 0, 1)));
    assertSense(await f.run(cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512) }), 0x7, 0x2700);
    assertGood(await f.run(select6(controlPage(0x02, 0x00, 0x40)), { dataOut: controlPage(0x02, 0x00, 0x40) }));
    assertGood(await f.run(cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512) }));
  });

  it('D_SENSE switches to descriptor-format sense data', async () => {
    const f = await fixture();
    const p = controlPage(0x06, 0x00, 0x40);
    assertGood(await f.run(select6(p), { dataOut: p }));
    const r = await f.run(Buffer.from([0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0]));
    assert.equal(r.sense![0], 0x72);
    assert.equal(decodeSense(r.sense!).asc, 0x2100);
  });

  it('WCE on the caching page turns off write-through', async () => {
    const f = await fixture();
    const fuas: (boolean | undefined)[] = [];
    const write = f.device.write.bind(f.device);
    f.device.write = (o, d, opt) => { fuas.push(opt?.fua); return write(o, d, opt); };
    const p = Buffer.from('00000000' + '0812' + '04' + '00'.repeat(17), 'hex');
    assertGood(await f.run(select10(Buffer.concat([Buffer.alloc(4), p])), { dataOut: Buffer.concat([Buffer.alloc(4), p]) }));
    assertGood(await f.run(cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512) }));
    assert.deepEqual(fuas, [false]);
  });

  it('raises MODE PARAMETERS CHANGED on the other nexuses only, and only on a change', async () => {
    const f = await fixture();
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 });
    const same = controlPage(0x02, 0x00, 0x40);
    assertGood(await f.run(select6(same), { dataOut: same }));
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }));
    const tas0 = controlPage(0x02, 0x00, 0x00);
    assertGood(await f.run(select6(tas0), { dataOut: tas0 }));
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2a01);
  });

  it('withdraws an unreported MODE PARAMETERS CHANGED once the parameters are back to what that nexus knew', async () => {
    const f = await fixture();
    const n2 = nexus(2);
    const n3 = nexus(3);
    for (const n of [n2, n3]) {
      f.target.nexusCreated(n);
      await f.run([0, 0, 0, 0, 0, 0], { nexus: n });
    }
    const swpOn = controlPage(0x02, 0x08, 0x40);
    const swpOff = controlPage(0x02, 0x00, 0x40);
    assertGood(await f.run(select6(swpOn), { dataOut: swpOn }));
    // n3 sees the change; n2 does not look before SWP is cleared again.
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n3 }), 0x6, 0x2a01);
    assertGood(await f.run(select6(swpOff), { dataOut: swpOff }));
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }));
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n3 }), 0x6, 0x2a01);
    // A change that is not undone is still reported, once.
    const tas0 = controlPage(0x02, 0x08, 0x00);
    assertGood(await f.run(select6(swpOn), { dataOut: swpOn }));
    assertGood(await f.run(select6(tas0), { dataOut: tas0 }));
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2a01);
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }));
  });

  it('refuses changes to non-changeable bits with a parameter-list field pointer', async () => {
    const f = await fixture();
    const tst = controlPage(0x22, 0x00, 0x40);
    const s = assertSense(await f.run(select6(tst), { dataOut: tst }), 0x5, 0x2600);
    assert.deepEqual(s.field, { cdb: false, byte: 6, bit: 5 });
    const qerr = controlPage(0x02, 0x00, 0x40, 0x02);
    assert.deepEqual(assertSense(await f.run(select6(qerr), { dataOut: qerr }), 0x5, 0x2600).field, { cdb: false, byte: 7, bit: 1 });
    const ua1 = controlPage(0x02, 0x10, 0x40);
    assert.deepEqual(assertSense(await f.run(select6(ua1), { dataOut: ua1 }), 0x5, 0x2600).field, { cdb: false, byte: 8, bit: 5 });
    const busy = Buffer.from(controlPage(0x02, 0x00, 0x40)); busy[12] = 0;
    assertSense(await f.run(select6(busy), { dataOut: busy }), 0x5, 0x2600);
  });

  it('checks page codes, page lengths, block descriptors and truncation', async () => {
    const f = await fixture({ blocks: 2048 });
    const unknown = Buffer.from('00000000' + '190a' + '00'.repeat(10), 'hex');
    assert.deepEqual(assertSense(await f.run(select6(unknown), { dataOut: unknown }), 0x5, 0x2600).field, { cdb: false, byte: 4, bit: 5 });
    const badLen = Buffer.from('00000000' + '0a08' + '00'.repeat(8), 'hex');
    assert.deepEqual(assertSense(await f.run(select6(badLen), { dataOut: badLen }), 0x5, 0x2600).field, { cdb: false, byte: 5, bit: 7 });
    const short = controlPage(0x02, 0x00, 0x40).subarray(0, 10);
    assertSense(await f.run(select6(short), { dataOut: short }), 0x5, 0x1a00);
    const bd = Buffer.concat([Buffer.from('00000008' + '00000800' + '00000200', 'hex'), controlPage(0x02, 0, 0x40).subarray(4)]);
    assertGood(await f.run(select6(bd), { dataOut: bd }));
    const bdSize = Buffer.from('00000008' + '00000000' + '00001000', 'hex');
    assertSense(await f.run(select6(bdSize), { dataOut: bdSize }), 0x5, 0x2600);
    const medium = Buffer.from('00010000', 'hex');
    assertSense(await f.run(select6(medium), { dataOut: medium }), 0x5, 0x2600);
  });

  it('SP=1 is INVALID FIELD IN CDB before any data; PF=0 with pages too; length 0 is a no-op', async () => {
    const f = await fixture();
    const p = controlPage(0x02, 0x08, 0x40);
    assertInvalidField(await f.run(select6(p, true, true), { dataOut: p, receive: () => assert.fail('no data wanted') }), 1, 0);
    assertInvalidField(await f.run(select6(p, false), { dataOut: p }), 1, 4);
    const r = await f.run(select6(Buffer.alloc(0)));
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 0);
  });

  it('a LU reset returns mode parameters to their defaults', async () => {
    const f = await fixture();
    const p = controlPage(0x02, 0x08, 0x40);
    assertGood(await f.run(select6(p), { dataOut: p }));
    await f.target.taskManagement({ nexus: f.nexus, fn: 5, lun: 0 });
    await f.run([0, 0, 0, 0, 0, 0]);
    assert.equal((await f.run(sense6(0x0a, 0, true))).data![8], 0x00);
  });
});
