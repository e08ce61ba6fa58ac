import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Asc, SenseKey, decodeSense, encodeSense } from '../../../src/scsi/sense';

describe('sense data', () => {
  it('fixed format: key, ASC/ASCQ, SKSV field pointer with C/D and bit pointer', () => {
    const s = encodeSense({ key: SenseKey.IllegalRequest, asc: Asc.InvalidFieldInCdb, field: { cdb: true, byte: 2, bit: 5 } }, false);
    assert.equal(s.toString('hex'), '700005000000000a' + '00000000' + '2400' + '00' + 'cd0002');
  });

  it('fixed format: INFORMATION sets VALID', () => {
    const s = encodeSense({ key: SenseKey.Miscompare, asc: Asc.MiscompareDuringVerify, information: 0x1234 }, false);
    assert.equal(s.toString('hex'), 'f0000e000012340a' + '00000000' + '1d00' + '00' + '000000');
  });

  it('fixed format: parameter list pointer without a bit pointer', () => {
    const s = encodeSense({ key: SenseKey.IllegalRequest, asc: Asc.InvalidFieldInParameterList, field: { cdb: false, byte: 300 } }, false);
    assert.equal(s.subarray(15).toString('hex'), '80012c');
  });

  it('descriptor format: information and sense key specific descriptors', () => {
    const s = encodeSense({ key: SenseKey.Miscompare, asc: Asc.MiscompareDuringVerify, information: 2 ** 33 + 5, field: { cdb: true, byte: 1, bit: 7 } }, true);
    assert.equal(s.toString('hex'), '720e1d0000000014' + '000a800000000002' + '00000005' + '02060000' + 'cf000100');
    const d = decodeSense(s);
    assert.equal(d.information, 2 ** 33 + 5);
    assert.deepEqual(d.field, { cdb: true, byte: 1, bit: 7 });
  });

  it('decodes what it encodes', () => {
    for (const descriptor of [false, true]) {
      const s = encodeSense({ key: SenseKey.UnitAttention, asc: Asc.CapacityDataHasChanged }, descriptor);
      assert.deepEqual(decodeSense(s), { descriptor, key: 6, asc: 0x2a09, information: undefined });
      const p = encodeSense({ key: SenseKey.NotReady, asc: Asc.SanitizeInProgress, progress: 0x1234 }, descriptor);
      assert.deepEqual(decodeSense(p), { descriptor, key: 2, asc: 0x041b, information: undefined, progress: 0x1234 });
    }
  });
});
