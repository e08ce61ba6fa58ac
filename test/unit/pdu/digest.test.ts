import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dataDigest, dataDigestOf, digestBytes, headerDigest, padLength } from '../../../src/pdu/digest';

// RFC 3720 Appendix B.4 CRC32C examples (the value as sent on the wire, LSB first).
describe('CRC32C digests', () => {
  const vectors: Array<[string, Buffer, string]> = [
    ['32 bytes of zeroes', Buffer.alloc(32, 0), 'aa36918a'],
    ['32 bytes of ones', Buffer.alloc(32, 0xff), '43aba862'],
    ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), '4e79dd46'],
    ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), '5cdb3f11'],
    [
      'an iSCSI SCSI Read (10) command PDU',
      Buffer.from('01c00000' + '00000000'.repeat(3) + '14000000' + '00000400' + '00000014' + '00000018' + '28000000' + '00000000' + '02000000' + '00000000', 'hex'),
      '563a96d9',
    ],
  ];
  for (const [name, input, wire] of vectors) {
    it(name, () => {
      assert.equal(digestBytes(headerDigest(input)).toString('hex'), wire);
    });
  }

  it('data digest covers the zero padding', () => {
    const data = Buffer.from('abcde');
    const padded = Buffer.concat([data, Buffer.alloc(3)]);
    assert.equal(dataDigest(data), headerDigest(padded));
    assert.equal(dataDigestOf([data.subarray(0, 2), data.subarray(2)]), dataDigest(data));
  });

  it('pads to 4 bytes', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(padLength), [0, 3, 2, 1, 0, 3]);
  });
});
