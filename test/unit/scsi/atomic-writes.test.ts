import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertInvalidField, assertSense, cdb10, command, deferred, fixture, nexus, pattern, tick } from './helpers';

function caw(lba: number, blocks: number, byte1 = 0): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x89;
  c[1] = byte1;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c[13] = blocks;
  return c;
}

function orwrite(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x8b;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt32BE(blocks, 10);
  return c;
}

function writeAtomic(lba: number, blocks: number, boundary = 0): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x9c;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt16BE(boundary, 10);
  c.writeUInt16BE(blocks, 12);
  return c;
}

describe('COMPARE AND WRITE', () => {
  it('writes when the verify data matches; MISCOMPARE with the offset otherwise, nothing written', async () => {
    const f = await fixture({ blocks: 1000 });
    const old = Buffer.alloc(3 * 512, 'A');
    assertGood(await f.run(cdb10(0x2a, 10, 3), { dataOut: old }));
    const ok = await f.run(caw(10, 3), { dataOut: Buffer.concat([old, Buffer.alloc(3 * 512, 'B')]) });
    assertGood(ok);
    assert.equal(ok.dataOutTransferLength, 3 * 1024);
    assert.deepEqual((await f.run(cdb10(0x28, 10, 3))).data, Buffer.alloc(3 * 512, 'B'));
    const verify = Buffer.alloc(3 * 512, 'B');
    verify[3 * 512 - 27] = 0x43;
    const s = assertSense(await f.run(caw(10, 3), { dataOut: Buffer.concat([verify, Buffer.alloc(3 * 512, 'C')]) }), 0xe, 0x1d00);
    assert.equal(s.information, 3 * 512 - 27);
    assert.deepEqual((await f.run(cdb10(0x28, 10, 3))).data, Buffer.alloc(3 * 512, 'B'));
  });

  it('advertises 255 blocks; the Data-Out must be exactly 2N blocks', async () => {
    const f = await fixture({ blocks: 1000 });
    assert.equal((await f.run([0x12, 1, 0xb0, 0, 64, 0])).data![5], 255);
    assertInvalidField(await f.run(caw(0, 0), { dataOut: Buffer.alloc(512 * 512) }), 13, 7);
    assertInvalidField(await f.run(caw(0, 1), { dataOut: Buffer.alloc(4 * 512) }), 13, 7);
    assertInvalidField(await f.run(caw(0, 3), { dataOut: Buffer.alloc(4 * 512) }), 13, 7);
    assertGood(await f.run(caw(0, 0)));
    assertSense(await f.run(caw(999, 2), { dataOut: Buffer.alloc(2048) }), 0x5, 0x2100);
    for (let p = 1; p < 8; p++) assertInvalidField(await f.run(caw(0, 1, p << 5), { dataOut: Buffer.alloc(1024) }), 1, 7);
    assertGood(await f.run(caw(0, 1, 0x18), { dataOut: Buffer.alloc(1024) }));
  });

  it('does not exist with emulate_caw=0; read-only LUs refuse it', async () => {
    const off = await fixture({ settings: { emulate_caw: 0 } });
    assertSense(await off.run(caw(0, 1), { dataOut: Buffer.alloc(1024) }), 0x5, 0x2000);
    assert.equal((await off.run([0x12, 1, 0xb0, 0, 64, 0])).data![5], 0);
    const ro = await fixture({ readOnly: true });
    assertSense(await ro.run(caw(0, 1), { dataOut: Buffer.alloc(1024) }), 0x7, 0x2700);
  });

  it('is atomic against a WRITE from another nexus that arrives in between', async () => {
    const f = await fixture({ blocks: 100, settings: { emulate_rest_reord: 0 } });
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 });
    const reads = deferred<void>();
    const read = f.device.read.bind(f.device);
    let gateReads = true;
    f.device.read = async (o, l, into) => { if (gateReads) await reads.promise; return read(o, l, into); };
    const a = Buffer.alloc(512, 'A');
    const c = f.target.execute(command(caw(5, 1), { nexus: f.nexus, dataOut: Buffer.concat([Buffer.alloc(512), a]) }));
    await tick();
    const w = f.target.execute(command(cdb10(0x2a, 5, 1), { nexus: n2, dataOut: Buffer.alloc(512, 'W') }));
    await tick();
    gateReads = false;
    reads.resolve();
    assertGood(await c);
    assertGood(await w);
    assert.deepEqual((await f.run(cdb10(0x28, 5, 1))).data, Buffer.alloc(512, 'W'), 'the later WRITE lands after the CAW');
  });
});

describe('ORWRITE', () => {
  it('ORs the data into the medium', async () => {
    const f = await fixture();
    assertGood(await f.run(cdb10(0x2a, 0, 2), { dataOut: Buffer.alloc(1024, 0xa5) }));
    const r = await f.run(orwrite(0, 2), { dataOut: Buffer.alloc(1024, 0x5a) });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 1024);
    assert.deepEqual((await f.run(cdb10(0x28, 0, 2))).data, Buffer.alloc(1024, 0xff));
    assertSense(await f.run(orwrite(2047, 2), { dataOut: Buffer.alloc(1024) }), 0x5, 0x2100);
    assertInvalidField(await f.run(Buffer.from([0x8b, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]), { dataOut: Buffer.alloc(512) }), 1, 7);
    assertGood(await f.run(orwrite(0, 0)));
  });
});

describe('WRITE ATOMIC (16)', () => {
  it('writes in one backstore call within the advertised atomic limits', async () => {
    const f = await fixture({ blocks: 1000 });
    const b0 = (await f.run([0x12, 1, 0xb0, 0, 64, 0])).data!;
    assert.equal(b0.readUInt32BE(44), 16384, 'MAXIMUM ATOMIC TRANSFER LENGTH');
    assert.equal(b0.readUInt32BE(48), 1, 'ATOMIC ALIGNMENT');
    assert.equal(b0.readUInt32BE(52), 1, 'ATOMIC TRANSFER LENGTH GRANULARITY');
    let writes = 0;
    const write = f.device.write.bind(f.device);
    f.device.write = (o, d, opt) => { writes++; return write(o, d, opt); };
    const data = pattern(64 * 512);
    assertGood(await f.run(writeAtomic(100, 64), { dataOut: data }));
    assert.equal(writes, 1);
    assert.deepEqual((await f.run(cdb10(0x28, 100, 64))).data, data);
    assertGood(await f.run(writeAtomic(0, 0)));
    assertSense(await f.run(writeAtomic(999, 2), { dataOut: Buffer.alloc(1024) }), 0x5, 0x2100);
    assertInvalidField(await f.run(writeAtomic(0, 1, 8), { dataOut: Buffer.alloc(512) }), 11, 3); // ATOMIC BOUNDARY: not supported
    assertSense(await f.run(writeAtomic(0, 2), { dataOut: Buffer.alloc(512) }), 0x5, 0x0e03);
  });

  it('a page-cache backstore: exactly one aligned 4 KiB page; the range is checked first', async () => {
    const device = new MemoryBackstore({ size: 1024 * 512 });
    Object.defineProperty(device, 'capabilities', {
      value: { ...device.capabilities, atomicWriteBytes: 4096, atomicWriteAlignment: 4096 },
    });
    const f = await fixture({ device });
    const b0 = (await f.run([0x12, 1, 0xb0, 0, 64, 0])).data!;
    assert.deepEqual([b0.readUInt32BE(44), b0.readUInt32BE(48), b0.readUInt32BE(52)], [8, 8, 8], 'max, alignment, granularity');
    const data = pattern(4096);
    assertGood(await f.run(writeAtomic(16, 8), { dataOut: data }));
    assert.deepEqual((await f.run(cdb10(0x28, 16, 8))).data, data);
    assertGood(await f.run(writeAtomic(1016, 0)));
    assertInvalidField(await f.run(writeAtomic(1, 8), { dataOut: data }), 2, 7);
    assertInvalidField(await f.run(writeAtomic(0, 4), { dataOut: Buffer.alloc(2048) }), 12, 7);
    assertInvalidField(await f.run(writeAtomic(0, 16), { dataOut: Buffer.alloc(8192) }), 12, 7);
    assertSense(await f.run(writeAtomic(1023, 16), { dataOut: Buffer.alloc(8192) }), 0x5, 0x2100);
    assertSense(await f.run(writeAtomic(1024 + 8, 0)), 0x5, 0x2100);
  });
});
