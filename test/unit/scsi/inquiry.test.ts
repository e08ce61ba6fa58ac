import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/sam';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertInvalidField, assertSense, fixture, nexus, TARGET, WWN } from './helpers';

function inquiry(evpd: number, page: number, alloc: number): Buffer {
  return Buffer.from([0x12, evpd, page, alloc >> 8, alloc & 0xff, 0]);
}

/** Parse VPD 83h designation descriptors. */
function designators(p: Buffer): { proto: number; codeSet: number; piv: boolean; assoc: number; type: number; value: Buffer }[] {
  const out = [];
  const end = 4 + p.readUInt16BE(2);
  for (let at = 4; at < end; at += 4 + p[at + 3]) {
    out.push({
      proto: p[at] >> 4, codeSet: p[at] & 0x0f, piv: (p[at + 1] & 0x80) !== 0, assoc: (p[at + 1] >> 4) & 3,
      type: p[at + 1] & 0x0f, value: p.subarray(at + 4, at + 4 + p[at + 3]),
    });
  }
  return out;
}

describe('INQUIRY standard data', () => {
  it('describes an SPC-4 / SBC-3 direct-access device with command queuing', async () => {
    const f = await fixture();
    const r = await f.run(inquiry(0, 0, 260));
    assertGood(r);
    const d = r.data!;
    assert.equal(d.length, 96);
    assert.equal(d[0], 0x00, 'qualifier 0, type 0');
    assert.equal(d[1], 0x00, 'not removable');
    assert.equal(d[2], 0x06, 'SPC-4');
    assert.equal(d[3], 0x12, 'HISUP, response data format 2');
    assert.equal(d[4], 91);
    assert.equal(d[7], 0x02, 'CMDQUE');
    assert.equal(d.subarray(8, 16).toString('ascii'), 'ISCSI-GW');
    assert.equal(d.subarray(16, 32).toString('ascii'), 'Virtual Disk    ');
    assert.equal(d.subarray(32, 36).toString('ascii'), '0001');
    const versions = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => d.readUInt16BE(58 + 2 * i));
    assert.deepEqual(versions, [0x00a0, 0x0960, 0x0460, 0x04c0, 0, 0, 0, 0]);
    assert.ok(d.subarray(74).every((b) => b === 0));
  });

  it('honours the allocation length (16 bits) and is the same for 511 and 512', async () => {
    const f = await fixture();
    for (let n = 0; n < 120; n++) {
      const r = await f.run(inquiry(0, 0, n));
      assertGood(r);
      assert.equal(r.data?.length, Math.min(n, 96));
    }
    const a = await f.run(inquiry(0, 0, 511));
    const b = await f.run(inquiry(0, 0, 512));
    assert.deepEqual(a.data, b.data);
  });

  it('removable LUs set RMB; emulate_model_alias reports the backstore name as the product', async () => {
    const f = await fixture({ removable: true, settings: { emulate_model_alias: 1 } });
    const d = (await f.run(inquiry(0, 0, 96))).data!;
    assert.equal(d[1], 0x80);
    assert.equal(d.subarray(16, 32).toString('ascii'), 'rbd/disk_1      ');
  });

  it('EVPD=0 with a page code, an unknown VPD page and CMDDT are INVALID FIELD IN CDB', async () => {
    const f = await fixture();
    assertInvalidField(await f.run(inquiry(0, 1, 256)), 2, 7);
    assertInvalidField(await f.run(inquiry(1, 0x81, 256)), 2, 7);
    assertInvalidField(await f.run(inquiry(2, 0, 256)), 1, 1);
  });

  it('is not blocked by, and does not clear, a unit attention', async () => {
    const f = await fixture({ keepUnitAttention: true });
    assertGood(await f.run(inquiry(0, 0, 96)));
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x6, 0x2900);
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
  });
});

describe('VPD pages', () => {
  it('00h lists every page, and every listed page can be read', async () => {
    const f = await fixture();
    const r = await f.run(inquiry(1, 0, 255));
    assertGood(r);
    const pages = [...r.data!.subarray(4, 4 + r.data!.readUInt16BE(2))];
    assert.deepEqual(pages, [0x00, 0x80, 0x83, 0x86, 0x8f, 0xb0, 0xb1, 0xb2]);
    for (const p of pages) {
      const pr = await f.run(inquiry(1, p, 255));
      assertGood(pr);
      assert.equal(pr.data![1], p);
      assert.equal(pr.data![0], 0x00);
      assert.equal(pr.data!.length, 4 + pr.data!.readUInt16BE(2));
    }
  });

  it('8Fh describes the copy manager, and exists only with emulate_3pc', async () => {
    const f = await fixture();
    const d = (await f.run(inquiry(1, 0x8f, 255))).data!;
    const descriptors = new Map<number, Buffer>();
    for (let at = 4; at < d.length; at += 4 + d.readUInt16BE(at + 2)) {
      assert.equal(d.readUInt16BE(at + 2) % 4, 0, 'descriptor length is a multiple of 4');
      descriptors.set(d.readUInt16BE(at), d.subarray(at, at + 4 + d.readUInt16BE(at + 2)));
    }
    assert.deepEqual([...descriptors.keys()], [0x0001, 0x0004, 0x0008, 0x000c, 0x8001]);
    const cmds = descriptors.get(0x0001)!;
    assert.deepEqual([...cmds.subarray(4, 5 + cmds[4])], [9, 0x83, 1, 0x00, 0x84, 4, 0x00, 0x01, 0x03, 0x04]);
    const params = descriptors.get(0x0004)!;
    assert.equal(params.readUInt16BE(2), 0x1c);
    assert.deepEqual([params.readUInt16BE(8), params.readUInt16BE(10), params.readUInt32BE(12), params.readUInt32BE(16)], [8, 64, 4096, 0]);
    assert.deepEqual([...descriptors.get(0x0008)!.subarray(4, 7)], [2, 0x02, 0xe4]);
    assert.equal(descriptors.get(0x000c)!.readUInt16BE(4), 0);
    const general = descriptors.get(0x8001)!;
    assert.equal(general.readUInt16BE(2), 0x20);
    assert.deepEqual([general.readUInt32BE(4), general.readUInt32BE(8), general.readUInt32BE(12), general[16]], [16, 16, 0xffff * 512, 9]);

    const off = await fixture({ settings: { emulate_3pc: 0 } });
    const pages = (await off.run(inquiry(1, 0, 255))).data!;
    assert.ok(!pages.subarray(4).includes(0x8f));
    assertInvalidField(await off.run(inquiry(1, 0x8f, 255)), 2, 7);
  });

  it('80h is the wwn', async () => {
    const f = await fixture();
    const d = (await f.run(inquiry(1, 0x80, 255))).data!;
    assert.equal(d.readUInt16BE(2), WWN.length);
    assert.equal(d.subarray(4).toString('ascii'), WWN);
  });

  it('83h: NAA 3 derived from the wwn, T10 vendor id, target port and device designators', async () => {
    const f = await fixture();
    const d = (await f.run(inquiry(1, 0x83, 1024))).data!;
    const ds = designators(d);
    assert.equal(ds.length, 6);
    assert.deepEqual(ds[0], { proto: 0, codeSet: 1, piv: false, assoc: 0, type: 3, value: Buffer.from('35f1c2a3b4d5e4f6', 'hex') });
    assert.deepEqual(ds[1], { proto: 0, codeSet: 2, piv: false, assoc: 0, type: 1, value: Buffer.from('ISCSI-GW' + WWN) });
    assert.deepEqual(ds[2], { proto: 5, codeSet: 1, piv: true, assoc: 1, type: 4, value: Buffer.from([0, 0, 0, 1]) });
    assert.deepEqual(ds[3], { proto: 5, codeSet: 1, piv: true, assoc: 1, type: 5, value: Buffer.from([0, 0, 0, 1]) });
    assert.equal(ds[4].type, 8);
    assert.equal(ds[4].assoc, 1);
    assert.equal(ds[4].codeSet, 3);
    assert.equal(ds[4].value.length % 4, 0);
    assert.equal(ds[4].value.toString('utf8').replace(/\0+$/, ''), `${TARGET},t,0x0001`);
    assert.equal(ds[5].assoc, 2);
    assert.equal(ds[5].value.toString('utf8').replace(/\0+$/, ''), TARGET);
  });

  it('83h reports the target port of the nexus the command came through', async () => {
    const f = await fixture();
    const n2 = nexus(2, 3);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 });
    const ds = designators((await f.run(inquiry(1, 0x83, 1024), { nexus: n2 })).data!);
    assert.deepEqual(ds[2].value, Buffer.from([0, 0, 0, 3]));
    assert.deepEqual(ds[3].value, Buffer.from([0, 0, 0, 3]));
  });

  it('the NAA of a non-UUID serial is still deterministic', async () => {
    const a = await fixture();
    const b = await fixture();
    const na = designators((await a.run(inquiry(1, 0x83, 1024))).data!)[0].value;
    const nb = designators((await b.run(inquiry(1, 0x83, 1024))).data!)[0].value;
    assert.deepEqual(na, nb);
    assert.equal(na[0] >> 4, 3);
  });

  it('B0h block limits: page length 3Ch, transfer limits from the settings', async () => {
    const f = await fixture({ settings: { optimal_sectors: 2048 } });
    const d = (await f.run(inquiry(1, 0xb0, 255))).data!;
    assert.equal(d.length, 64);
    assert.equal(d.readUInt16BE(2), 0x3c);
    assert.equal(d.readUInt16BE(6), 1, 'optimal transfer length granularity: one physical block');
    assert.equal(d.readUInt32BE(8), 16384, 'maximum transfer length: 8 MiB of 512-byte blocks');
    assert.equal(d.readUInt32BE(12), 2048, 'optimal transfer length = optimal_sectors');
  });

  it('B0h optimal transfer length never exceeds the maximum', async () => {
    const f = await fixture({ blockSize: 4096, blocks: 100 });
    const d = (await f.run(inquiry(1, 0xb0, 255))).data!;
    assert.equal(d.readUInt32BE(8), 2048);
    assert.equal(d.readUInt32BE(12), 2048);
  });

  it('B1h: medium rotation rate 1 when is_nonrot, 0 (not reported) otherwise', async () => {
    for (const [nonrot, rate] of [[1, 1], [0, 0]]) {
      const f = await fixture({ settings: { is_nonrot: nonrot } });
      const d = (await f.run(inquiry(1, 0xb1, 255))).data!;
      assert.equal(d.readUInt16BE(2), 0x3c);
      assert.equal(d.readUInt16BE(4), rate);
    }
  });

  it('86h advertises HEAD OF QUEUE, ORDERED and SIMPLE', async () => {
    const f = await fixture();
    const d = (await f.run(inquiry(1, 0x86, 255))).data!;
    assert.equal(d[5], 0x07);
  });

  it('VPD pages honour the allocation length', async () => {
    const f = await fixture();
    const r = await f.run(inquiry(1, 0x83, 10));
    assertGood(r);
    assert.equal(r.data?.length, 10);
  });
});

describe('LUNs without a logical unit', () => {
  it('INQUIRY returns peripheral qualifier 011b / type 1Fh', async () => {
    const f = await fixture();
    const r = await f.run(inquiry(0, 0, 96), { lun: 5 });
    assertGood(r);
    assert.equal(r.data![0], 0x7f);
    assert.equal(r.data!.length, 96);
  });

  it('other commands fail with LOGICAL UNIT NOT SUPPORTED; REQUEST SENSE returns it as data', async () => {
    const f = await fixture();
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { lun: 5 }), 0x5, 0x2500);
    assertSense(await f.run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { lun: 5 }), 0x5, 0x2500);
    const rs = await f.run([0x03, 0, 0, 0, 252, 0], { lun: 5 });
    assertGood(rs);
    assert.equal(rs.data![0], 0x70);
    assert.equal(rs.data![2], 0x05);
    assert.equal(rs.data![12], 0x25);
    const rsd = await f.run([0x03, 1, 0, 0, 252, 0], { lun: 5 });
    assert.equal(rsd.data![0], 0x72);
  });

  it('REPORT LUNS works from a LUN without a logical unit', async () => {
    const f = await fixture();
    const r = await f.run([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: 7 });
    assertGood(r);
    assert.deepEqual(r.data, Buffer.from('00000008000000000000000000000000', 'hex'));
  });
});

describe('REPORT LUNS', () => {
  function reportLuns(select: number, alloc: number): Buffer {
    const c = Buffer.alloc(12);
    c[0] = 0xa0;
    c[2] = select;
    c.writeUInt32BE(alloc, 6);
    return c;
  }

  it('lists LUNs ascending with peripheral or flat addressing', async () => {
    const extra = [300, 2, 16383].map((lun) => ({ lun, device: new MemoryBackstore({ size: 1 << 20 }), wwn: `wwn-${lun}`, name: `d${lun}` }));
    const f = await fixture({ extraUnits: extra });
    for (const select of [0, 2]) {
      const r = await f.run(reportLuns(select, 1024));
      assertGood(r);
      assert.equal(r.data!.toString('hex'),
        '00000020' + '00000000' + '0000000000000000' + '0002000000000000' + '412c000000000000' + '7fff000000000000');
    }
    for (const select of [1, 0x10, 0x11, 0x12]) {
      assert.equal((await f.run(reportLuns(select, 1024))).data!.toString('hex'), '0000000000000000');
    }
  });

  it('truncates to the allocation length, refuses < 16 and unknown SELECT REPORT', async () => {
    const extra = [1, 2, 3].map((lun) => ({ lun, device: new MemoryBackstore({ size: 1 << 20 }), wwn: `wwn-${lun}`, name: `d${lun}` }));
    const f = await fixture({ extraUnits: extra });
    const r = await f.run(reportLuns(0, 16));
    assertGood(r);
    assert.equal(r.data!.toString('hex'), '00000020000000000000000000000000');
    assertInvalidField(await f.run(reportLuns(0, 15)), 6, 7);
    assertInvalidField(await f.run(reportLuns(3, 64)), 2, 7);
  });

  it('a new LU raises REPORTED LUNS DATA HAS CHANGED, cleared everywhere by REPORT LUNS', async () => {
    const f = await fixture();
    f.target.addLogicalUnit({ lun: 1, device: new MemoryBackstore({ size: 1 << 20 }), wwn: 'w1', name: 'd1' });
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x6, 0x3f0e);
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    // LUN 1 is new to this nexus: power on; then REPORT LUNS data changed was not set there.
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { lun: 1 }), 0x6, 0x2900);
    f.target.addLogicalUnit({ lun: 2, device: new MemoryBackstore({ size: 1 << 20 }), wwn: 'w2', name: 'd2' });
    assertGood(await f.run(reportLuns(0, 64)));
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { lun: 1 }));
    await f.target.removeLogicalUnit(2);
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { lun: 1 }), 0x6, 0x3f0e);
    assertGood(await f.run([0, 0, 0, 0, 0, 0])); // reported on one LU, cleared on all (LUICLR)
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { lun: 2 }), 0x5, 0x2500);
  });

  it('addLogicalUnit validates its configuration', async () => {
    const f = await fixture();
    const device = new MemoryBackstore({ size: 1 << 20 });
    assert.throws(() => f.target.addLogicalUnit({ lun: 0, device, wwn: 'x', name: 'x' }), /LUN 0 already exists/);
    assert.throws(() => f.target.addLogicalUnit({ lun: 16384, device, wwn: 'x', name: 'x' }), /outside 0\.\.16383/);
    assert.throws(() => f.target.addLogicalUnit({ lun: 1, device, wwn: 'x', name: 'x', settings: { block_size: 1000 } }),
      /expected \[512, 1024, 2048, 4096\] for block_size found 1000/);
    assert.throws(() => f.target.addLogicalUnit({ lun: 1, device, wwn: '', name: 'x' }), /invalid unit serial/);
  });
});

describe('READ CAPACITY', () => {
  it('(10) returns the last LBA and block length; (16) too, with allocation length', async () => {
    const f = await fixture({ blocks: 3000, blockSize: 4096 });
    const r = await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assertGood(r);
    assert.equal(r.data!.toString('hex'), '00000bb700001000');
    const c16 = Buffer.from([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
    const r16 = await f.run(c16);
    assertGood(r16);
    assert.equal(r16.data!.toString('hex'), '0000000000000bb7' + '00001000' + '00000000' + '00'.repeat(16), '4K blocks: LBPPBE 0');
    for (let n = 0; n < 16; n++) {
      c16[13] = n;
      const rn = await f.run(c16);
      assertGood(rn);
      assert.equal(rn.data?.length ?? 0, n);
    }
  });

  it('(10) reports FFFFFFFFh beyond 32 bits', async () => {
    const mem = new MemoryBackstore({ size: 1 << 20 });
    const f = await fixture({ device: mem });
    mem.size = () => 2 ** 41;
    const r = await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(r.data!.readUInt32BE(0), 0xffffffff);
    const r16 = await f.run([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
    assert.equal(r16.data!.readBigUInt64BE(0), 2n ** 32n - 1n);
  });

  it('an LBA without PMI is INVALID FIELD IN CDB', async () => {
    const f = await fixture();
    assertInvalidField(await f.run([0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 2, 7);
    assertGood(await f.run([0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0]));
  });

  it('a resize raises CAPACITY DATA HAS CHANGED on every nexus', async () => {
    const f = await fixture();
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 });
    f.device.resize(4096 * 512);
    assertSense(await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x6, 0x2a09);
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2a09);
    const r = await f.run([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(r.data!.readUInt32BE(0), 4095);
    assert.equal(r.status, ScsiStatus.Good);
  });
});

describe('READ DEFECT DATA', () => {
  it('(10) and (12) return empty lists in the requested format', async () => {
    const f = await fixture();
    const r10 = await f.run([0x37, 0, 0x1d, 0, 0, 0, 0, 0, 32, 0]);
    assertGood(r10);
    assert.equal(r10.data!.toString('hex'), '001d0000');
    const r12 = await f.run([0xb7, 0x0b, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
    assertGood(r12);
    assert.equal(r12.data!.toString('hex'), '000b000000000000');
    assertInvalidField(await f.run([0x37, 0, 0x07, 0, 0, 0, 0, 0, 32, 0]), 2, 2);
    assertInvalidField(await f.run([0x37, 0, 0x20, 0, 0, 0, 0, 0, 32, 0]), 2, 5);
    assert.equal((await f.run([0x37, 0, 0, 0, 0, 0, 0, 0, 2, 0])).data!.length, 2);
  });
});
