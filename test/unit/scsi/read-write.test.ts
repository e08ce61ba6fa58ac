import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/sam';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { BlockDeviceError } from '../../../src/block/block-device';
import {
  assertGood, assertInvalidField, assertSense, cdb10, cdb12, cdb16, cdb6, fixture, pattern,
} from './helpers';

const READ10 = 0x28, WRITE10 = 0x2a, READ12 = 0xa8, WRITE12 = 0xaa, READ16 = 0x88, WRITE16 = 0x8a;
const ILLEGAL = 0x5, LBA_OOB = 0x2100, INVALID_IU = 0x0e03;

describe('READ / WRITE', () => {
  it('writes and reads back at the start and end of the medium, all CDB sizes', async () => {
    const f = await fixture({ blocks: 1000 });
    const cases: [number, number, (lba: number, n: number) => Buffer][] = [
      [0x0a, 0x08, (l, n) => cdb6(0, l, n)],
      [WRITE10, READ10, (l, n) => cdb10(0, l, n)],
      [WRITE12, READ12, (l, n) => cdb12(0, l, n)],
      [WRITE16, READ16, (l, n) => cdb16(0, l, n)],
    ];
    let seed = 1;
    for (const [w, r, build] of cases) {
      for (const [lba, n] of [[0, 1], [3, 17], [1000 - 8, 8], [999, 1]]) {
        const data = pattern(n * 512, seed++);
        const wc = build(lba, n); wc[0] = w;
        const wr = await f.run(wc, { dataOut: data });
        assertGood(wr);
        assert.equal(wr.dataOutTransferLength, n * 512);
        const rc = build(lba, n); rc[0] = r;
        const rr = await f.run(rc);
        assertGood(rr);
        assert.deepEqual(rr.data, data);
      }
    }
  });

  it('READ(6)/WRITE(6) transfer length 0 means 256 blocks', async () => {
    const f = await fixture({ blocks: 1000 });
    const data = pattern(256 * 512, 9);
    assertGood(await f.run(cdb6(0x0a, 10, 0), { dataOut: data }));
    const r = await f.run(cdb6(0x08, 10, 0));
    assertGood(r);
    assert.equal(r.data?.length, 256 * 512);
    assert.deepEqual(r.data, data);
  });

  it('zero-length transfers are GOOD without data or Data-Out', async () => {
    const f = await fixture();
    for (const op of [READ10, WRITE10]) {
      const r = await f.run(cdb10(op, 0, 0));
      assertGood(r);
      assert.equal(r.data, undefined);
    }
  });

  it('reads straight into the buffer it returns (one backstore call)', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    const calls: [number, number, boolean][] = [];
    const read = device.read.bind(device);
    device.read = (offset, length, into) => {
      calls.push([offset, length, into !== undefined]);
      return read(offset, length, into);
    };
    const f = await fixture({ device });
    const r = await f.run(cdb10(READ10, 7, 300));
    assertGood(r);
    assert.deepEqual(calls, [[7 * 512, 300 * 512, true]]);
  });

  it('writes the Data-Out buffer without copying it', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    let seen: Buffer | undefined;
    const write = device.write.bind(device);
    device.write = (offset, data, options) => {
      seen = data;
      return write(offset, data, options);
    };
    const f = await fixture({ device });
    const data = pattern(4 * 512);
    assertGood(await f.run(cdb10(WRITE10, 0, 4), { dataOut: data }));
    assert.equal(seen?.buffer, data.buffer);
    assert.equal(seen?.byteOffset, data.byteOffset);
  });

  it('LBA OUT OF RANGE beyond the end, for LBA alone and LBA + length', async () => {
    const f = await fixture({ blocks: 100 });
    for (const [lba, n] of [[100, 1], [101, 0], [99, 2], [0x80000000, 1], [0xffffffff, 1], [100, 0]]) {
      assertSense(await f.run(cdb10(READ10, lba, n)), ILLEGAL, LBA_OOB);
      const w = await f.run(cdb10(WRITE10, lba, n), { dataOut: Buffer.alloc(n * 512) });
      assertSense(w, ILLEGAL, LBA_OOB);
    }
    for (const lba of [0x8000000000000000n, 0xffffffffffffffffn, 1n << 55n, 100n]) {
      assertSense(await f.run(cdb16(READ16, lba, 1)), ILLEGAL, LBA_OOB);
    }
    assertSense(await f.run(cdb6(0x08, 0x1fffff, 1)), ILLEGAL, LBA_OOB);
  });

  it('out-of-range writes never solicit Data-Out', async () => {
    const f = await fixture({ blocks: 100 });
    let asked = 0;
    const r = await f.run(cdb10(WRITE10, 99, 2), { dataOutLength: 1024, receive: async () => { asked++; return Buffer.alloc(1024); } });
    assertSense(r, ILLEGAL, LBA_OOB);
    assert.equal(asked, 0);
    assert.equal(r.dataOutTransferLength, 1024);
  });

  it('transfer length above the Block Limits maximum is INVALID FIELD IN CDB at the length field', async () => {
    const f = await fixture({ blocks: 40000 });
    const max = (8 * 1024 * 1024) / 512;
    assertInvalidField(await f.run(cdb10(READ10, 0, max + 1)), 7, 7);
    assertInvalidField(await f.run(cdb12(READ12, 0, max + 1)), 6, 7);
    assertInvalidField(await f.run(cdb16(READ16, 0, max + 1)), 10, 7);
    assertInvalidField(await f.run(cdb16(WRITE16, 0, max + 1), { dataOut: Buffer.alloc(0) }), 10, 7);
    assertGood(await f.run(cdb10(READ10, 0, max)));
  });

  it('RDPROTECT/WRPROTECT other than 0 is INVALID FIELD IN CDB (no protection information)', async () => {
    const f = await fixture();
    for (let p = 1; p < 8; p++) {
      assertInvalidField(await f.run(cdb10(READ10, 0, 1, p << 5)), 1, 7);
      assertInvalidField(await f.run(cdb16(WRITE16, 0, 1, p << 5), { dataOut: Buffer.alloc(512) }), 1, 7);
    }
  });

  it('reserved bits and the control byte are checked with a bit pointer', async () => {
    const f = await fixture();
    assertInvalidField(await f.run(cdb10(READ10, 0, 1, 0x04)), 1, 2); // RARC
    assertInvalidField(await f.run(cdb10(READ10, 0, 1, 0x01)), 1, 0); // obsolete
    assertInvalidField(await f.run(cdb10(READ10, 0, 1, 0, 0x20)), 6, 5); // reserved bit above GROUP NUMBER
    const naca = cdb10(READ10, 0, 1); naca[9] = 0x04;
    assertInvalidField(await f.run(naca), 9, 2);
    const vendor = cdb10(READ10, 0, 1); vendor[9] = 0xc0;
    assertGood(await f.run(vendor));
    assertInvalidField(await f.run(Buffer.from([0x08, 0xe0, 0, 0, 1, 0])), 1, 7);
  });

  it('DPO, FUA, FUA_NV and GROUP NUMBER are accepted', async () => {
    const f = await fixture();
    for (const b1 of [0x10, 0x08, 0x18, 0x02, 0x1a]) {
      assertGood(await f.run(cdb10(READ10, 0, 1, b1, 3)));
      assertGood(await f.run(cdb10(WRITE10, 0, 1, b1, 3), { dataOut: Buffer.alloc(512) }));
    }
  });

  it('FUA writes, and writes with the write cache disabled, are durable writes', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    const fuas: (boolean | undefined)[] = [];
    const write = device.write.bind(device);
    device.write = (offset, data, options) => { fuas.push(options?.fua); return write(offset, data, options); };
    const f = await fixture({ device, settings: { emulate_write_cache: 1 } });
    assertGood(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }));
    assertGood(await f.run(cdb10(WRITE10, 0, 1, 0x08), { dataOut: Buffer.alloc(512) }));
    const g = await fixture({ settings: { emulate_write_cache: 0 }, device });
    assertGood(await g.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }));
    assert.deepEqual(fuas, [false, true, true]);
  });

  it('FUA reads flush a volatile write cache first (emulate_fua_read)', async () => {
    for (const [fuaRead, wce, flushes] of [[1, 1, 1], [0, 1, 0], [1, 0, 0]]) {
      const device = new MemoryBackstore({ size: 2048 * 512 });
      let n = 0;
      device.flush = async () => { n++; };
      const f = await fixture({ device, settings: { emulate_fua_read: fuaRead, emulate_write_cache: wce } });
      assertGood(await f.run(cdb10(READ10, 0, 1, 0x08)));
      assertGood(await f.run(cdb10(READ10, 0, 1)));
      assert.equal(n, flushes, `emulate_fua_read=${fuaRead} wce=${wce}`);
    }
  });

  it('without DPOFUA (emulate_dpo=0 or emulate_fua_write=0) DPO and FUA are invalid', async () => {
    for (const settings of [{ emulate_dpo: 0 }, { emulate_fua_write: 0 }]) {
      const f = await fixture({ settings });
      assertInvalidField(await f.run(cdb10(READ10, 0, 1, 0x10)), 1, 4);
      assertInvalidField(await f.run(cdb10(READ10, 0, 1, 0x08)), 1, 3);
      assertInvalidField(await f.run(cdb10(WRITE10, 0, 1, 0x08), { dataOut: Buffer.alloc(512) }), 1, 3);
      assertInvalidField(await f.run(cdb10(0x2f, 0, 1, 0x10)), 1, 4); // VERIFY DPO
    }
  });

  it('is write protected on a read-only device: DATA PROTECT / WRITE PROTECTED, no Data-Out', async () => {
    const f = await fixture({ readOnly: true });
    for (const c of [cdb10(WRITE10, 0, 1), cdb12(WRITE12, 0, 1), cdb16(WRITE16, 0, 1), cdb6(0x0a, 0, 1), cdb10(0x2e, 0, 1, 0x02)]) {
      const cmd = await f.run(c, { dataOut: Buffer.alloc(512), receive: () => assert.fail('no data wanted') });
      assertSense(cmd, 0x7, 0x2700);
    }
    assertGood(await f.run(cdb10(READ10, 0, 1)));
  });

  it('maps backstore failures to sense data', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    const f = await fixture({ device });
    device.read = () => Promise.reject(new BlockDeviceError('boom', 'io'));
    assertSense(await f.run(cdb10(READ10, 0, 1)), 0x3, 0x1100);
    device.write = () => Promise.reject(new BlockDeviceError('boom', 'io'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x3, 0x0c00);
    device.write = () => Promise.reject(new BlockDeviceError('full', 'no-space'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x7, 0x2707);
    device.write = () => Promise.reject(new TypeError('bug'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x4, 0x4400);
  });

  it('a failed Data-Out transfer is ABORTED COMMAND / DATA PHASE ERROR', async () => {
    const f = await fixture();
    const r = await f.run(cdb10(WRITE10, 0, 1), { dataOutLength: 512, receive: () => Promise.reject(new Error('connection reset')) });
    assertSense(r, 0xb, 0x4b00);
  });
});

describe('Data-Out residuals (iSCSIResiduals)', () => {
  it('EDTL 0 for a 1-block WRITE: GOOD, nothing written, transfer length = CDB length', async () => {
    const f = await fixture();
    const r = await f.run(cdb10(WRITE10, 0, 1), { dataOutLength: 0 });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 512);
  });

  it('EDTL larger than the CDB: GOOD, writes only the CDB length', async () => {
    const f = await fixture();
    const data = Buffer.alloc(10000, 0xa6);
    let asked = 0;
    const r = await f.run(cdb10(WRITE10, 0, 1), { dataOut: data, receive: async (n) => { asked = n; return data.subarray(0, n); } });
    assertGood(r);
    assert.equal(asked, 512);
    assert.equal(r.dataOutTransferLength, 512);
    const back = await f.run(cdb10(READ10, 0, 2));
    assert.deepEqual(back.data?.subarray(0, 512), Buffer.alloc(512, 0xa6));
    assert.deepEqual(back.data?.subarray(512), Buffer.alloc(512));
  });

  it('EDTL of one block for a 2-block WRITE writes only the first block', async () => {
    const f = await fixture();
    assertGood(await f.run(cdb10(WRITE10, 0, 2), { dataOut: Buffer.alloc(1024, 0x61) }));
    const r = await f.run(cdb10(WRITE10, 0, 2), { dataOut: Buffer.alloc(512, 0x62) });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 1024);
    const back = await f.run(cdb10(READ10, 0, 2));
    assert.deepEqual(back.data, Buffer.concat([Buffer.alloc(512, 0x62), Buffer.alloc(512, 0x61)]));
  });

  it('EDTL that is not a whole number of blocks: INVALID FIELD IN INFORMATION UNIT, no data taken', async () => {
    const f = await fixture();
    for (const op of [WRITE10, 0x2e]) {
      const cmd = await f.run(cdb10(op, 0, 1), { dataOut: Buffer.alloc(200), receive: () => assert.fail('no data wanted') });
      assertSense(cmd, ILLEGAL, INVALID_IU);
      assert.equal(cmd.dataOutTransferLength, 512);
    }
  });

  it('READ returns the CDB length; the transport trims to EDTL', async () => {
    const f = await fixture();
    const r = await f.run(cdb10(READ10, 0, 2), { dataInLength: 512 });
    assertGood(r);
    assert.equal(r.data?.length, 1024);
  });
});

describe('WRITE AND VERIFY / VERIFY', () => {
  it('WRITE AND VERIFY writes durably and compares (BYTCHK=1) or verifies the medium (BYTCHK=0)', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    const fuas: (boolean | undefined)[] = [];
    const write = device.write.bind(device);
    device.write = (o, d, opt) => { fuas.push(opt?.fua); return write(o, d, opt); };
    const f = await fixture({ device, settings: { emulate_write_cache: 1 } });
    for (const [c, bytchk] of [[cdb10(0x2e, 5, 3, 0x02), 1], [cdb12(0xae, 5, 3), 0], [cdb16(0x8e, 5, 3, 0x12), 1]] as const) {
      const data = pattern(3 * 512, Number(bytchk) + c[0]);
      const r = await f.run(c, { dataOut: data });
      assertGood(r);
      assert.equal(r.dataOutTransferLength, 3 * 512);
      assert.deepEqual((await f.run(cdb10(READ10, 5, 3))).data, data);
    }
    assert.deepEqual(fuas, [true, true, true]);
  });

  it('WRITE AND VERIFY reports a backstore that does not keep the data as MISCOMPARE', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    const f = await fixture({ device });
    const write = device.write.bind(device);
    device.write = (o, d, opt) => { const bad = Buffer.from(d); bad[700] ^= 1; return write(o, bad, opt); };
    const s = assertSense(await f.run(cdb10(0x2e, 0, 2, 0x02), { dataOut: pattern(1024) }), 0xe, 0x1d00);
    assert.equal(s.information, 700);
  });

  it('VERIFY BYTCHK=1 compares, and reports the first differing byte in INFORMATION', async () => {
    const f = await fixture();
    const data = pattern(8 * 512, 3);
    assertGood(await f.run(cdb10(WRITE10, 100, 8), { dataOut: data }));
    for (const c of [cdb10(0x2f, 100, 8, 0x02), cdb12(0xaf, 100, 8, 0x02), cdb16(0x8f, 100, 8, 0x02)]) {
      const r = await f.run(c, { dataOut: data });
      assertGood(r);
      assert.equal(r.dataOutTransferLength, 8 * 512);
      const bad = Buffer.from(data);
      bad[2049] ^= 0x58;
      const s = assertSense(await f.run(c, { dataOut: bad }), 0xe, 0x1d00);
      assert.equal(s.information, 2049);
    }
  });

  it('VERIFY BYTCHK=0 verifies the medium without Data-Out; BYTCHK=3 compares one block against each', async () => {
    const f = await fixture();
    const block = pattern(512, 5);
    for (let i = 0; i < 4; i++) assertGood(await f.run(cdb10(WRITE10, 10 + i, 1), { dataOut: block }));
    const r0 = await f.run(cdb10(0x2f, 10, 4), { receive: () => assert.fail('no data wanted') });
    assertGood(r0);
    assert.equal(r0.dataOutTransferLength, undefined);
    const r3 = await f.run(cdb10(0x2f, 10, 4, 0x06), { dataOut: block });
    assertGood(r3);
    assert.equal(r3.dataOutTransferLength, 512);
    assertGood(await f.run(cdb10(WRITE10, 12, 1), { dataOut: pattern(512, 6) }));
    const s = assertSense(await f.run(cdb10(0x2f, 10, 4, 0x06), { dataOut: block }), 0xe, 0x1d00);
    assert.ok(s.information !== undefined && s.information >= 1024 && s.information < 1536);
  });

  it('VERIFY BYTCHK=10b and VRPROTECT are invalid; range is checked first', async () => {
    const f = await fixture({ blocks: 100 });
    assertInvalidField(await f.run(cdb10(0x2f, 0, 1, 0x04)), 1, 2);
    for (let p = 1; p < 8; p++) assertInvalidField(await f.run(cdb10(0x2f, 0, 1, (p << 5) | 0x02), { dataOut: Buffer.alloc(512) }), 1, 7);
    assertSense(await f.run(cdb10(0x2f, 100, 1, 0x02), { dataOut: Buffer.alloc(512) }), ILLEGAL, LBA_OOB);
    assertSense(await f.run(cdb10(0x2f, 101, 0, 0x02)), ILLEGAL, LBA_OOB);
  });
});

describe('PRE-FETCH / SYNCHRONIZE CACHE', () => {
  it('PRE-FETCH checks the range and completes GOOD (no cache to fill, so not CONDITION MET)', async () => {
    const f = await fixture({ blocks: 100 });
    for (const c of [cdb10(0x34, 0, 100), cdb10(0x34, 99, 1, 0x02, 3), cdb16(0x90, 0, 0)]) {
      assert.equal((await f.run(c)).status, ScsiStatus.Good);
    }
    assertSense(await f.run(cdb10(0x34, 99, 2)), ILLEGAL, LBA_OOB);
    assertSense(await f.run(cdb16(0x90, 0xffffffffffffffffn, 1)), ILLEGAL, LBA_OOB);
  });

  it('SYNCHRONIZE CACHE flushes the backstore, IMMED returns first', async () => {
    const device = new MemoryBackstore({ size: 100 * 512 });
    let flushes = 0;
    let release = (): void => undefined;
    device.flush = () => { flushes++; return flushes === 1 ? new Promise<void>((r) => { release = r; }) : Promise.resolve(); };
    const f = await fixture({ device });
    const pending = f.run(cdb10(0x35, 0, 0));
    await new Promise((r) => setImmediate(r));
    assert.equal(flushes, 1);
    let done = false;
    void pending.then(() => { done = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'waits for the flush');
    release();
    assertGood(await pending);
    assertGood(await f.run(cdb16(0x91, 0, 10, 0x02))); // IMMED
    assert.equal(flushes, 2);
    assertGood(await f.run(cdb10(0x35, 0, 10, 0x04))); // SYNC_NV is obsolete and ignored
    assert.equal(flushes, 3);
    assertSense(await f.run(cdb10(0x35, 50, 51)), ILLEGAL, LBA_OOB);
  });
});
