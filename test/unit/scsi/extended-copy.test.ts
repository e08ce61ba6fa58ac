import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { deriveNaa } from '../../../src/scsi/vpd';
import { assertGood, assertSense, cdb10, fixture, Fixture, pattern, WWN } from './helpers';

function xcopyCdb(length: number): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x83;
  c.writeUInt32BE(length, 10);
  return c;
}

function rcr(sa: number, listId: number, alloc = 1024): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x84;
  c[1] = sa;
  c[2] = listId;
  c.writeUInt32BE(alloc, 10);
  return c;
}

function target(naa: Buffer, blockSize = 512, type = 0xe4): Buffer {
  const t = Buffer.alloc(32);
  t[0] = type;
  t[4] = 0x01; // binary
  t[5] = 0x03; // association LU, NAA
  t[7] = 8;
  naa.copy(t, 8);
  t.writeUIntBE(blockSize, 29, 3);
  return t;
}

function segment(src: number, dst: number, blocks: number, srcLba: number, dstLba: number, type = 0x02): Buffer {
  const s = Buffer.alloc(28);
  s[0] = type;
  s.writeUInt16BE(24, 2);
  s.writeUInt16BE(src, 4);
  s.writeUInt16BE(dst, 6);
  s.writeUInt16BE(blocks, 10);
  s.writeBigUInt64BE(BigInt(srcLba), 12);
  s.writeBigUInt64BE(BigInt(dstLba), 20);
  return s;
}

function params(listId: number, usage: number, targets: Buffer[], segments: Buffer[]): Buffer {
  const h = Buffer.alloc(16);
  h[0] = listId;
  h[1] = usage << 3;
  const t = Buffer.concat(targets);
  const s = Buffer.concat(segments);
  h.writeUInt16BE(t.length, 2);
  h.writeUInt32BE(s.length, 8);
  return Buffer.concat([h, t, s]);
}

async function xcopy(f: Fixture, p: Buffer) {
  return f.run(xcopyCdb(p.length), { dataOut: p });
}

const NAA0 = deriveNaa(WWN);

describe('EXTENDED COPY (LID1)', () => {
  it('copies within a LU and between LUs found by NAA designator', async () => {
    const f = await fixture({
      blocks: 4096,
      extraUnits: [{ lun: 1, device: new MemoryBackstore({ size: 4096 * 512 }), wwn: 'second-disk', name: 'd1' }],
    });
    const data = pattern(3000 * 512, 7);
    assertGood(await f.run(cdb10(0x2a, 0, 3000), { dataOut: data }));
    const r = await xcopy(f, params(1, 2, [target(NAA0)], [segment(0, 0, 1000, 0, 3000)]));
    assertGood(r);
    assert.equal(r.dataOutTransferLength, 16 + 32 + 28);
    assert.deepEqual((await f.run(cdb10(0x28, 3000, 1000))).data, data.subarray(0, 1000 * 512));
    const naa1 = deriveNaa('second-disk');
    assertGood(await xcopy(f, params(2, 2, [target(NAA0), target(naa1)], [segment(0, 1, 3000, 0, 10), segment(0, 1, 5, 0, 4000)])));
    assert.deepEqual((await f.run(cdb10(0x28, 10, 3000), { lun: 1 })).data, data);
    assert.deepEqual((await f.run(cdb10(0x28, 4000, 5), { lun: 1 })).data, data.subarray(0, 5 * 512));
  });

  it('moves no data for the holes of a thin source: they stay holes on a thin destination', async () => {
    const dst = new MemoryBackstore({ size: 65536 * 512 });
    await dst.write(0, Buffer.alloc(65536 * 512, 0xee));
    const f = await fixture({ blocks: 65536, extraUnits: [{ lun: 1, device: dst, wwn: 'thin-dst', name: 'd1' }] });
    const data = pattern(100 * 512, 9);
    assertGood(await f.run(cdb10(0x2a, 0, 100), { dataOut: data }));
    let reads = 0;
    const read = f.device.read.bind(f.device);
    f.device.read = (o, l, into) => { reads++; return read(o, l, into); };
    const copied = 40960; // a multiple of the memory backstore's 64 KiB allocation unit
    assertGood(await xcopy(f, params(1, 2, [target(NAA0), target(deriveNaa('thin-dst'))], [segment(0, 1, copied, 0, 0)])));
    assert.equal(reads, 1, 'only the first chunk (16384 blocks) holds data');
    assert.deepEqual((await f.run(cdb10(0x28, 0, 100), { lun: 1 })).data, data);
    assert.deepEqual((await f.run(cdb10(0x28, 100, 16284), { lun: 1 })).data, Buffer.alloc(16284 * 512));
    assert.deepEqual((await f.run(cdb10(0x28, 16384, 16384), { lun: 1 })).data, Buffer.alloc(16384 * 512));
    assert.deepEqual((await f.run(cdb10(0x28, copied, 1), { lun: 1 })).data, Buffer.alloc(512, 0xee), 'nothing past the segment');
    const map = await dst.mapStatus(16384 * 512, (copied - 16384) * 512);
    assert.ok(map.every((e) => e.state === 'deallocated'), JSON.stringify(map));
  });

  it('copies many chunks between LUs while other I/O runs (reads ahead, writes in order)', async () => {
    const f = await fixture({
      blocks: 70000,
      extraUnits: [{ lun: 1, device: new MemoryBackstore({ size: 70000 * 512 }), wwn: 'second-disk', name: 'd1' }],
    });
    const data = pattern(65535 * 512, 5);
    for (let at = 0; at < 65535; at += 16384) {
      const n = Math.min(16384, 65535 - at);
      assertGood(await f.run(cdb10(0x2a, at, n), { dataOut: data.subarray(at * 512, (at + n) * 512) }));
    }
    const copy = xcopy(f, params(1, 2, [target(NAA0), target(deriveNaa('second-disk'))], [segment(0, 1, 65535, 0, 10)]));
    const reader = f.run(cdb10(0x28, 0, 8), { lun: 1 });
    assertGood(await copy);
    assertGood(await reader);
    const back: Buffer[] = [];
    for (let at = 0; at < 65535; at += 16384) back.push((await f.run(cdb10(0x28, 10 + at, Math.min(16384, 65535 - at)), { lun: 1 })).data!);
    assert.ok(Buffer.concat(back).equals(data));
  });

  it('copies overlapping ranges like memmove', async () => {
    const f = await fixture({ blocks: 100000 });
    const data = pattern(40000 * 512, 3);
    assertGood(await f.run(cdb10(0x2a, 0, 16384), { dataOut: data.subarray(0, 16384 * 512) }));
    assertGood(await f.run(cdb10(0x2a, 16384, 16384), { dataOut: data.subarray(16384 * 512, 32768 * 512) }));
    assertGood(await f.run(cdb10(0x2a, 32768, 7232), { dataOut: data.subarray(32768 * 512) }));
    assertGood(await xcopy(f, params(1, 3, [target(NAA0)], [segment(0, 0, 40000, 0, 100)])));
    const back = Buffer.concat([
      (await f.run(cdb10(0x28, 100, 16384))).data!, (await f.run(cdb10(0x28, 16484, 16384))).data!,
      (await f.run(cdb10(0x28, 32868, 7232))).data!,
    ]);
    assert.ok(back.equals(data));
  });

  it('checks lengths, limits and descriptor types in the order libiscsi expects', async () => {
    const f = await fixture({ blocks: 4096 });
    const ok = params(1, 2, [target(NAA0)], [segment(0, 0, 1, 0, 1)]);
    assertSense(await xcopy(f, ok.subarray(0, 16 + 31)), 0x5, 0x1a00);
    assertSense(await xcopy(f, ok.subarray(0, ok.length - 1)), 0x5, 0x1a00);
    assertGood(await f.run(xcopyCdb(0)));
    const nine = Array.from({ length: 9 }, () => target(NAA0));
    assertSense(await xcopy(f, params(1, 2, nine, [segment(0, 0, 1, 0, 1)])), 0x5, 0x2606);
    const segs = Array.from({ length: 65 }, () => segment(0, 0, 1, 0, 1));
    assertSense(await xcopy(f, params(1, 2, [target(NAA0)], segs)), 0x5, 0x2608);
    assertSense(await xcopy(f, params(1, 2, nine, Array.from({ length: 140 }, () => segment(0, 0, 1, 0, 1)))), 0x5, 0x1a00);
    assertSense(await xcopy(f, params(1, 2, [target(NAA0, 512, 0xe0)], [segment(0, 0, 1, 0, 1)])), 0x5, 0x2607);
    assertSense(await xcopy(f, params(1, 2, [target(NAA0)], [segment(0, 0, 1, 0, 1, 0x03)])), 0x5, 0x2609);
  });

  it('aborts the copy for unreachable targets and ranges beyond the end', async () => {
    const f = await fixture({ blocks: 4096 });
    const s = assertSense(await xcopy(f, params(1, 2, [target(NAA0)], [segment(0, 1, 1, 0, 1)])), 0xa, 0x0804);
    assert.equal(s.descriptor, false);
    assertSense(await xcopy(f, params(1, 2, [target(Buffer.from('3000000000000001', 'hex'))], [segment(0, 0, 1, 0, 1)])), 0xa, 0x0804);
    assertSense(await xcopy(f, params(1, 2, [target(NAA0, 4096)], [segment(0, 0, 1, 0, 1)])), 0xa, 0x0804);
    const eol = await xcopy(f, params(1, 2, [target(NAA0)], [segment(0, 0, 1, 0, 1), segment(0, 0, 2048, 0, 4095)]));
    const sense = assertSense(eol, 0xa, 0x0000);
    assert.equal(eol.sense!.readUInt32BE(8), 1, 'COMMAND-SPECIFIC INFORMATION: the failed segment');
    assert.equal(sense.key, 0xa);
  });

  it('does not exist with emulate_3pc=0 (and INQUIRY clears 3PC)', async () => {
    const f = await fixture({ settings: { emulate_3pc: 0 } });
    assertSense(await xcopy(f, params(1, 2, [target(NAA0)], [segment(0, 0, 1, 0, 1)])), 0x5, 0x2000);
    assert.equal((await f.run([0x12, 0, 0, 0, 96, 0])).data![5] & 0x08, 0);
    const on = await fixture();
    assert.equal((await on.run([0x12, 0, 0, 0, 96, 0])).data![5] & 0x08, 0x08);
  });
});

describe('RECEIVE COPY RESULTS', () => {
  it('OPERATING PARAMETERS reports the copy manager limits', async () => {
    const f = await fixture();
    const d = (await f.run(rcr(3, 0))).data!;
    assert.equal(d.length, 46);
    assert.equal(d.readUInt32BE(0), 42);
    assert.equal(d[4], 0x01);
    assert.equal(d.readUInt16BE(8), 8);
    assert.equal(d.readUInt16BE(10), 64);
    assert.equal(d.readUInt32BE(12), 4096);
    assert.equal(d.readUInt32BE(16), 0xffff * 512);
    assert.equal(d[37], 9);
    assert.deepEqual([...d.subarray(43)], [2, 0x02, 0xe4]);
  });

  it('COPY STATUS of a held copy; unknown list identifiers are INVALID FIELD IN CDB', async () => {
    const f = await fixture({ blocks: 4096 });
    assertSense(await f.run(rcr(0, 1)), 0x5, 0x2400);
    assertGood(await xcopy(f, params(1, 0, [target(NAA0)], [segment(0, 0, 2048, 0, 2048)])));
    const d = (await f.run(rcr(0, 1))).data!;
    assert.equal(d.toString('hex'), '00000008' + '01' + '0001' + '01' + '00000400');
    assertSense(await xcopy(f, params(2, 0, [target(NAA0)], [segment(0, 0, 4, 4094, 0)])), 0xa, 0x0000);
    const failed = (await f.run(rcr(0, 2))).data!;
    assert.equal(failed[4], 0x02, 'completed with error');
    const details = (await f.run(rcr(4, 2))).data!;
    assert.equal(details[56], 0x02);
    assert.equal(details.readUInt16BE(58), 18);
    assert.equal(details[60 + 2], 0x0a);
    assertSense(await f.run(rcr(4, 2)), 0x5, 0x2400);
  });
});
