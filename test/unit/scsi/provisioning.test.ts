import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertInvalidField, assertSense, cdb10, cdb16, fixture, pattern } from './helpers';

const TP = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1 };

function unmapCdb(length: number, anchor = false): Buffer {
  return Buffer.from([0x42, anchor ? 1 : 0, 0, 0, 0, 0, 0, length >> 8, length & 0xff, 0]);
}

function unmapParams(list: [number, number][]): Buffer {
  const p = Buffer.alloc(8 + 16 * list.length);
  p.writeUInt16BE(p.length - 2, 0);
  p.writeUInt16BE(16 * list.length, 2);
  list.forEach(([lba, n], i) => {
    p.writeBigUInt64BE(BigInt(lba), 8 + 16 * i);
    p.writeUInt32BE(n, 16 + 16 * i);
  });
  return p;
}

function getLbaStatus(lba: number, alloc: number): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x9e;
  c[1] = 0x12;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt32BE(alloc, 10);
  return c;
}

function descriptors(d: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let at = 8; at + 16 <= d.length; at += 16) out.push([Number(d.readBigUInt64BE(at)), d.readUInt32BE(at + 8), d[at + 12]]);
  return out;
}

describe('thin provisioning disabled (defaults)', () => {
  it('is fully provisioned: LBPME=0, no UNMAP, WRITE SAME without the UNMAP bit', async () => {
    const f = await fixture();
    assert.equal((await f.run([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data![14], 0);
    const b2 = (await f.run([0x12, 1, 0xb2, 0, 64, 0])).data!;
    assert.equal(b2[5], 0x00);
    assert.equal(b2[6], 0x00, 'provisioning type: full');
    const b0 = (await f.run([0x12, 1, 0xb0, 0, 64, 0])).data!;
    assert.equal(b0.readUInt32BE(20), 0, 'MAXIMUM UNMAP LBA COUNT');
    assert.equal(b0.readUInt32BE(24), 0, 'MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT');
    assert.equal(Number(b0.readBigUInt64BE(36)), 65535, 'MAXIMUM WRITE SAME LENGTH');
    assertSense(await f.run(unmapCdb(24), { dataOut: unmapParams([[0, 1]]) }), 0x5, 0x2000);
    assertInvalidField(await f.run(cdb10(0x41, 0, 1, 0x08), { dataOut: Buffer.alloc(512) }), 1, 3);
    const st = await f.run(getLbaStatus(0, 1024));
    assert.deepEqual(descriptors(st.data!), [[0, 2048, 0]], 'every block mapped');
  });
});

describe('UNMAP', () => {
  it('deallocates, reads back zeros (LBPRZ) and GET LBA STATUS shows it', async () => {
    const f = await fixture({ settings: { ...TP, max_unmap_block_desc_count: 16 }, blocks: 4096 });
    const rc = (await f.run([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data!;
    assert.equal(rc[14], 0xc0, 'LBPME, LBPRZ');
    const b2 = (await f.run([0x12, 1, 0xb2, 0, 64, 0])).data!;
    assert.equal(b2[5], 0xe4, 'LBPU LBPWS LBPWS10 LBPRZ');
    assert.equal(b2[6], 0x02, 'thin');
    const b0 = (await f.run([0x12, 1, 0xb0, 0, 64, 0])).data!;
    assert.equal(b0.readUInt32BE(20), 8192);
    assert.equal(b0.readUInt32BE(24), 16);
    assert.equal(b0.readUInt32BE(28), 8192, 'OPTIMAL UNMAP GRANULARITY');
    assert.equal(b0.readUInt32BE(32), 0x80000000, 'UGAVALID, alignment 0');
    assertGood(await f.run(cdb10(0x2a, 0, 1024), { dataOut: pattern(1024 * 512) }));
    assert.equal(f.device.allocatedBytes(), 1024 * 512);
    const r = await f.run(unmapCdb(40), { dataOut: unmapParams([[0, 128], [512, 300]]) });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 40);
    assert.equal(f.device.allocatedBytes(), (1024 - 128 - 256) * 512, 'whole 64 KiB chunks freed');
    const back = (await f.run(cdb10(0x28, 500, 320))).data!;
    assert.deepEqual(back.subarray(12 * 512, 312 * 512), Buffer.alloc(300 * 512));
    assert.notDeepEqual(back.subarray(0, 512), Buffer.alloc(512));
    assert.deepEqual(descriptors((await f.run(getLbaStatus(0, 1024))).data!), [
      [0, 128, 1], [128, 384, 0], [512, 256, 1], [768, 256, 0], [1024, 3072, 1],
    ]);
  });

  it('checks descriptors: range, counts, lengths; zero-block descriptors are fine', async () => {
    const f = await fixture({ settings: { ...TP, max_unmap_block_desc_count: 2, max_unmap_lba_count: 100 }, blocks: 1000 });
    assertGood(await f.run(unmapCdb(24), { dataOut: unmapParams([[1000, 0]]) }));
    assertGood(await f.run(unmapCdb(8), { dataOut: unmapParams([]) }));
    assertGood(await f.run(unmapCdb(0)));
    assertSense(await f.run(unmapCdb(24), { dataOut: unmapParams([[999, 2]]) }), 0x5, 0x2100);
    assertSense(await f.run(unmapCdb(56), { dataOut: unmapParams([[0, 1], [1, 1], [2, 1]]) }), 0x5, 0x2600);
    assertSense(await f.run(unmapCdb(40), { dataOut: unmapParams([[0, 60], [100, 41]]) }), 0x5, 0x2600);
    assertSense(await f.run(unmapCdb(4), { dataOut: Buffer.alloc(4) }), 0x5, 0x1a00);
    assertInvalidField(await f.run(unmapCdb(24, true), { dataOut: unmapParams([[0, 1]]) }), 1, 0);
  });

  it('is refused on a read-only LU', async () => {
    const f = await fixture({ settings: TP, readOnly: true });
    assertSense(await f.run(unmapCdb(24), { dataOut: unmapParams([[0, 1]]), receive: () => assert.fail('no data wanted') }), 0x7, 0x2700);
  });

  it('a read-only thin device (a snapshot: no discard, real map status) stays thin and refuses with DATA PROTECT', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512 });
    await device.write(0, Buffer.alloc(65536, 1));
    Object.defineProperty(device, 'readOnly', { value: true });
    Object.defineProperty(device, 'capabilities', { value: { ...device.capabilities, discard: false } });
    const f = await fixture({ settings: TP, device });
    const b2 = (await f.run([0x12, 1, 0xb2, 0, 8, 0])).data!;
    assert.deepEqual([b2[5], b2[6] & 0x07], [0x80 | 0x40 | 0x20 | 0x04, 0x02], 'LBPU LBPWS LBPWS10 LBPRZ, thin');
    assert.equal((await f.run([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data![14] & 0x80, 0x80, 'LBPME');
    assertSense(await f.run(unmapCdb(24), { dataOut: unmapParams([[0, 1]]) }), 0x7, 0x2700);
    assertSense(await f.run(cdb16(0x93, 0, 1, 0x08), { dataOut: Buffer.alloc(512) }), 0x7, 0x2700);
    assertSense(await f.run(cdb10(0x41, 0, 1, 0x08), { dataOut: Buffer.alloc(512) }), 0x7, 0x2700);
    assert.deepEqual(descriptors((await f.run(getLbaStatus(0, 64))).data!).slice(0, 2), [[0, 128, 0], [128, 1920, 1]]);
  });
});

describe('WRITE SAME', () => {
  it('(10)/(16) repeat one block over the range with one backstore call', async () => {
    const f = await fixture({ blocks: 1000 });
    let calls = 0;
    const ws = f.device.writeSame.bind(f.device);
    f.device.writeSame = (o, l, p, opt) => { calls++; return ws(o, l, p, opt); };
    const block = pattern(512, 4);
    const r = await f.run(cdb10(0x41, 10, 20), { dataOut: block });
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 512);
    const back = (await f.run(cdb10(0x28, 9, 22))).data!;
    for (let i = 1; i <= 20; i++) assert.deepEqual(back.subarray(i * 512, (i + 1) * 512), block);
    assert.deepEqual(back.subarray(0, 512), Buffer.alloc(512));
    assertGood(await f.run(cdb16(0x93, 990, 10), { dataOut: block }));
    assert.equal(calls, 2);
  });

  it('NUMBER OF BLOCKS 0 writes to the end, within MAXIMUM WRITE SAME LENGTH', async () => {
    const f = await fixture({ blocks: 1000, settings: { max_write_same_len: 100 } });
    assertInvalidField(await f.run(cdb10(0x41, 0, 0), { dataOut: Buffer.alloc(512, 1) }), 7, 7);
    assertInvalidField(await f.run(cdb10(0x41, 899, 0), { dataOut: Buffer.alloc(512, 1) }), 7, 7);
    assertGood(await f.run(cdb10(0x41, 900, 0), { dataOut: Buffer.alloc(512, 1) }));
    assert.deepEqual((await f.run(cdb10(0x28, 999, 1))).data, Buffer.alloc(512, 1));
    assertInvalidField(await f.run(cdb16(0x93, 0, 101), { dataOut: Buffer.alloc(512) }), 10, 7);
    assertSense(await f.run(cdb10(0x41, 1000, 0), { dataOut: Buffer.alloc(512) }), 0x5, 0x2100);
    assertSense(await f.run(cdb16(0x93, 995, 6), { dataOut: Buffer.alloc(512) }), 0x5, 0x2100);
  });

  it('UNMAP=1 unmaps whatever the block holds; NDOB needs no Data-Out', async () => {
    const f = await fixture({ blocks: 1000, settings: TP });
    assertGood(await f.run(cdb10(0x2a, 0, 256), { dataOut: pattern(256 * 512) }));
    assertGood(await f.run(cdb10(0x41, 0, 128, 0x08), { dataOut: Buffer.alloc(512, 0xff) }));
    assert.deepEqual((await f.run(cdb10(0x28, 0, 128))).data, Buffer.alloc(128 * 512));
    assert.equal(f.device.allocatedBytes(), 128 * 512);
    assertGood(await f.run(cdb16(0x93, 128, 128, 0x09), { receive: () => assert.fail('no data wanted') }));
    assert.equal(f.device.allocatedBytes(), 0);
    assertGood(await f.run(cdb16(0x93, 0, 1, 0x08), { dataOutLength: 0 }));
    assertGood(await f.run(cdb16(0x93, 0, 8, 0x01)));
    assert.deepEqual((await f.run(cdb10(0x28, 0, 8))).data, Buffer.alloc(8 * 512));
    assert.equal(f.device.allocatedBytes(), 64 * 1024, 'NDOB without UNMAP writes (provisions) zeros');
  });

  it('refuses ANCHOR, WRPROTECT, and a Data-Out that is not one block', async () => {
    const f = await fixture({ settings: TP });
    assertInvalidField(await f.run(cdb16(0x93, 0, 1, 0x10), { dataOut: Buffer.alloc(512) }), 1, 4);
    assertInvalidField(await f.run(cdb16(0x93, 0, 1, 0x18), { dataOut: Buffer.alloc(512) }), 1, 4);
    assertInvalidField(await f.run(cdb10(0x41, 0, 1, 0x20), { dataOut: Buffer.alloc(512) }), 1, 7);
    assertSense(await f.run(cdb10(0x41, 0, 1), { dataOut: Buffer.alloc(256) }), 0x5, 0x0e03);
    assertSense(await f.run(cdb10(0x41, 0, 1, 0x08), { dataOut: Buffer.alloc(1024) }), 0x5, 0x0e03);
    assertSense(await f.run(cdb10(0x41, 0, 1), { dataOutLength: 0 }), 0x5, 0x0e03);
  });
});

describe('GET LBA STATUS', () => {
  it('starts at the requested LBA, honours the allocation length, refuses LBAs beyond the end', async () => {
    const f = await fixture({ blocks: 1024, settings: TP });
    assertGood(await f.run(cdb10(0x2a, 200, 100), { dataOut: pattern(100 * 512) }));
    assert.deepEqual(descriptors((await f.run(getLbaStatus(5, 1024))).data!), [[5, 123, 1], [128, 256, 0], [384, 640, 1]]);
    const one = await f.run(getLbaStatus(5, 24));
    assert.equal(one.data!.length, 24);
    assert.equal(one.data!.readUInt32BE(0), 20);
    assert.deepEqual(descriptors(one.data!), [[5, 123, 1]]);
    assert.equal((await f.run(getLbaStatus(1023, 8))).data!.length, 8);
    for (const lba of [1024, 1025]) assertSense(await f.run(getLbaStatus(lba, 24)), 0x5, 0x2100);
    const c = getLbaStatus(0, 24);
    c.writeBigUInt64BE(0xffffffffffffffffn, 2);
    assertSense(await f.run(c), 0x5, 0x2100);
  });

  it('with 8 logical blocks per physical block the first descriptor still contains the starting LBA (SBC-4 §5.8.2)', async () => {
    // libiscsi GetLBAStatus.UnmapSingle: unmap [0, 8), status at LBA 9 (it wants a descriptor at 16).
    const device = new MemoryBackstore({ size: 1024 * 512, physicalBlockBytes: 4096, chunkSize: 4096 });
    const f = await fixture({ device, settings: TP });
    assertGood(await f.run(cdb10(0x2a, 0, 264), { dataOut: pattern(264 * 512) }));
    const u = Buffer.alloc(24);
    u.writeUInt16BE(22, 0);
    u.writeUInt16BE(16, 2);
    u.writeBigUInt64BE(0n, 8);
    u.writeUInt32BE(8, 16);
    assertGood(await f.run([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { dataOut: u }));
    const [first] = descriptors((await f.run(getLbaStatus(9, 24))).data!);
    assert.ok(first[0] <= 9 && 9 < first[0] + first[1], `descriptor [${first[0]}, +${first[1]}) contains LBA 9`);
    assert.equal(first[2], 0, 'mapped');
    assert.deepEqual(descriptors((await f.run(getLbaStatus(0, 24))).data!), [[0, 8, 1]]);
  });
});
