import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertGood, assertInvalidField, assertSense, fixture } from './helpers';
import { fieldTop } from '../../../src/scsi/command-table';

function rsoc(rctd: boolean, options: number, opcode: number, sa: number, alloc: number): Buffer {
  const c = Buffer.alloc(12);
  c[0] = 0xa3;
  c[1] = 0x0c;
  c[2] = (rctd ? 0x80 : 0) | options;
  c[3] = opcode;
  c.writeUInt16BE(sa, 4);
  c.writeUInt32BE(alloc, 6);
  return c;
}

interface Desc { opcode: number; sa: number; servactv: boolean; ctdp: boolean; cdbLength: number; timeoutLength?: number }

function parseAll(d: Buffer): Desc[] {
  const out: Desc[] = [];
  const end = 4 + d.readUInt32BE(0);
  for (let at = 4; at < end;) {
    const ctdp = (d[at + 5] & 0x02) !== 0;
    out.push({ opcode: d[at], sa: d.readUInt16BE(at + 2), servactv: (d[at + 5] & 0x01) !== 0, ctdp, cdbLength: d.readUInt16BE(at + 6),
      timeoutLength: ctdp ? d.readUInt16BE(at + 8) : undefined });
    at += ctdp ? 20 : 8;
  }
  return out;
}

describe('REPORT SUPPORTED OPERATION CODES', () => {
  it('lists every command once, sorted, SERVACTV only with a service action', async () => {
    const f = await fixture();
    const r = await f.run(rsoc(false, 0, 0, 0, 65535));
    assertGood(r);
    const all = parseAll(r.data!);
    const names = all.map((d) => d.opcode.toString(16) + (d.servactv ? '/' + d.sa.toString(16) : ''));
    assert.deepEqual(names, ['0', '3', '8', 'a', '12', '15', '16', '17', '1a', '1b', '1e', '25', '28', '2a', '2e', '2f', '34', '35', '37',
      '41', '55', '56', '57', '5a', '5e/0', '5e/1', '5e/2', '5e/3', '5f/0', '5f/1', '5f/2', '5f/3', '5f/4', '5f/5', '5f/6', '5f/7',
      '83/0', '84/0', '84/1', '84/3', '84/4', '88', '89', '8a', '8b', '8e', '8f', '90', '91', '93', '9c', '9e/10', '9e/12', 'a0', 'a3/c', 'a3/d', 'a8', 'aa', 'ae', 'af', 'b7']);
    // SANITIZE only where the administrator allowed it (emulate_sanitize).
    const withSanitize = parseAll((await (await fixture({ settings: { emulate_sanitize: 1 } })).run(rsoc(false, 0, 0, 0, 65535))).data!);
    assert.deepEqual(withSanitize.filter((d) => d.opcode === 0x48).map((d) => d.sa), [0x01, 0x1f]);
    for (const d of all) {
      assert.equal(d.ctdp, false);
      if (!d.servactv) assert.equal(d.sa, 0);
      assert.equal(d.cdbLength, [6, 10, 10, 0, 16, 12][d.opcode >> 5]);
    }
  });

  it('RCTD adds a 12-byte timeouts descriptor to every command', async () => {
    const f = await fixture();
    const all = parseAll((await f.run(rsoc(true, 0, 0, 0, 65535))).data!);
    assert.ok(all.length > 30);
    for (const d of all) {
      assert.equal(d.ctdp, true);
      assert.equal(d.timeoutLength, 0x0a);
    }
    const one = (await f.run(rsoc(true, 1, 0x28, 0, 100))).data!;
    assert.equal(one[1], 0x83);
    assert.equal(one.length, 4 + 10 + 12);
    assert.equal(one.readUInt16BE(14), 0x0a);
    assert.equal(one.readUInt32BE(22), 30);
  });

  it('one-command reports follow libiscsi OneCommand: options 1 vs 2 by SERVACTV, usage[0] = opcode', async () => {
    const f = await fixture();
    const all = parseAll((await f.run(rsoc(false, 0, 0, 0, 65535))).data!);
    for (const d of all) {
      const by1 = await f.run(rsoc(false, 1, d.opcode, d.sa, 65535));
      const by2 = await f.run(rsoc(false, 2, d.opcode, d.sa, 65535));
      if (d.servactv) {
        assertInvalidField(by1, 2, 2);
        assertGood(by2);
      } else {
        assertGood(by1);
        assertInvalidField(by2, 2, 2);
      }
      const one = (d.servactv ? by2 : by1).data!;
      assert.equal(one[1], 0x03, 'supported, conforming');
      assert.equal(one.readUInt16BE(2), d.cdbLength);
      assert.equal(one[4], d.opcode);
      if (d.servactv) assert.equal(one[5] & 0x1f, d.sa);
      const by3 = await f.run(rsoc(false, 3, d.opcode, d.sa, 65535));
      assert.deepEqual(by3.data, one);
    }
  });

  it('unsupported commands are SUPPORT 001b; bad reporting options are INVALID FIELD', async () => {
    const f = await fixture();
    assert.equal((await f.run(rsoc(false, 1, 0xc0, 0, 64))).data!.toString('hex'), '00010000');
    assert.equal((await f.run(rsoc(false, 2, 0x9e, 0x11, 64))).data!.toString('hex'), '00010000');
    assert.equal((await f.run(rsoc(false, 2, 0xc0, 0x01, 64))).data!.toString('hex'), '00010000');
    assertInvalidField(await f.run(rsoc(false, 4, 0, 0, 64)), 2, 2);
    assertInvalidField(await f.run(rsoc(false, 7, 0, 0, 64)), 2, 2);
  });

  it('usage data reflects DPOFUA: READ(10) 18h with it, 00h without', async () => {
    const on = await fixture();
    assert.equal((await on.run(rsoc(false, 1, 0x28, 0, 64))).data!.subarray(4).toString('hex'), '2818ffffffff00ffff00');
    assert.equal((await on.run(rsoc(false, 1, 0x2f, 0, 64))).data!.subarray(4).toString('hex'), '2f16ffffffff00ffff00');
    const off = await fixture({ settings: { emulate_dpo: 0 } });
    assert.equal((await off.run(rsoc(false, 1, 0x28, 0, 64))).data!.subarray(4).toString('hex'), '2800ffffffff00ffff00');
    assert.equal((await off.run(rsoc(false, 1, 0x2e, 0, 64))).data!.subarray(4).toString('hex'), '2e02ffffffff00ffff00');
  });

  it('usage data is exact: every bit it reports as unused is rejected at its byte', async () => {
    const f = await fixture({ removable: true });
    const all = parseAll((await f.run(rsoc(false, 0, 0, 0, 65535))).data!);
    for (const d of all) {
      const one = (await f.run(rsoc(false, d.servactv ? 2 : 1, d.opcode, d.sa, 64))).data!;
      const usage = one.subarray(4, 4 + d.cdbLength);
      const ignored = f.target.logicalUnit(0)!.commands.find(d.opcode, d.servactv ? d.sa : undefined)!.ignored;
      for (let byte = 1; byte < d.cdbLength; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const mask = 1 << bit;
          if (usage[byte] & mask) continue;
          if (d.servactv && byte === 1 && bit < 5) continue; // the service action itself
          if (byte === d.cdbLength - 1 && bit >= 6) continue; // vendor specific control bits
          if ((ignored?.[byte] ?? 0) & mask) continue; // obsolete / GROUP NUMBER: accepted, not evaluated
          const cdb = Buffer.alloc(d.cdbLength);
          cdb[0] = d.opcode;
          if (d.servactv) cdb[1] = d.sa;
          cdb[byte] |= mask;
          const r = await f.run(cdb, { dataOutLength: 0 });
          const s = assertSense(r, 0x5, 0x2400);
          assert.equal(s.field?.byte, byte, `${d.opcode.toString(16)} byte ${byte} bit ${bit}`);
        }
      }
    }
  });
});

describe('ignored CDB bits', () => {
  it('are only FUA_NV / SYNC_NV (obsolete), GROUP NUMBER (no grouping function), and PR OUT SCOPE/TYPE where unused (REGISTER*, CLEAR)', async () => {
    const f = await fixture();
    for (const d of f.target.logicalUnit(0)!.commands.all) {
      (d.ignored ?? []).forEach((bits, byte) => {
        if (bits === 0) return;
        const group = byte === (d.cdbLength === 10 ? 6 : d.cdbLength - 2) && bits === 0x1f;
        const obsolete = byte === 1 && (bits === 0x02 || bits === 0x04);
        const prScopeType = d.opcode === 0x5f && [0, 3, 6, 7].includes(d.serviceAction!) && byte === 2 && bits === 0xff;
        assert.ok(group || obsolete || prScopeType, `${d.name}: byte ${byte} ignores ${bits.toString(16)}`);
      });
    }
  });
});

describe('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', () => {
  it('reports the supported TMFs, with the extended format when REPD=1', async () => {
    const f = await fixture();
    const c = Buffer.from([0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]);
    const r = await f.run(c);
    assertGood(r);
    assert.equal(r.data!.toString('hex'), 'de070000');
    c[2] = 0x80;
    const e = await f.run(c);
    assert.equal(e.data!.toString('hex'), 'de07000c' + '00'.repeat(12));
    c[9] = 2;
    assert.equal((await f.run(c)).data!.length, 2);
  });

  it('an unknown MAINTENANCE IN service action points at byte 1 (libiscsi: not implemented)', async () => {
    const f = await fixture();
    assertInvalidField(await f.run([0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]), 1, 4);
    assertInvalidField(await f.run([0x9e, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0]), 1, 4);
    assertSense(await f.run([0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x5, 0x2000);
    assertSense(await f.run([0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x5, 0x2000);
  });
});

describe('field pointers', () => {
  it('point at the most significant bit of a multi-bit field', () => {
    assert.equal(fieldTop(0x20, 0x60), 7);
    assert.equal(fieldTop(0x40, 0x60), 7);
    assert.equal(fieldTop(0x04, 0x60), 2);
    assert.equal(fieldTop(0x21, 0), 5);
  });
});
