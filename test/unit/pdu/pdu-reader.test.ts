import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PduReader, PduReaderSettings, RawPdu } from '../../../src/pdu/pdu-reader';
import { PduError } from '../../../src/pdu/errors';
import { dataDigest, digestBytes, headerDigest } from '../../../src/pdu/digest';
import { splits } from '../../helpers/chunks';

function settings(over: Partial<PduReaderSettings> = {}): PduReaderSettings {
  return { maxDataSegmentLength: 8192, headerDigest: false, dataDigest: false, ...over };
}

/** Build a PDU on the wire: BHS with lengths filled in, AHS, digests, padding. */
function wire(opcode: number, data: Buffer, opts: { ahs?: Buffer; hd?: boolean; dd?: boolean; corruptHd?: boolean; corruptDd?: boolean } = {}): Buffer {
  const bhs = Buffer.alloc(48);
  bhs[0] = opcode;
  bhs[1] = 0x80;
  bhs[4] = (opts.ahs?.length ?? 0) / 4;
  bhs.writeUIntBE(data.length, 5, 3);
  bhs.writeUInt32BE(0x11223344, 16);
  const header = opts.ahs ? Buffer.concat([bhs, opts.ahs]) : bhs;
  const parts: Buffer[] = [header];
  if (opts.hd) {
    const d = digestBytes(headerDigest(header));
    if (opts.corruptHd) d[0] ^= 1;
    parts.push(d);
  }
  if (data.length) {
    parts.push(data, Buffer.alloc((4 - (data.length % 4)) % 4));
    if (opts.dd) {
      const d = digestBytes(dataDigest(data));
      if (opts.corruptDd) d[3] ^= 0x80;
      parts.push(d);
    }
  }
  return Buffer.concat(parts);
}

function readAll(chunks: Buffer[], s: PduReaderSettings): { pdus: RawPdu[]; errors: PduError[] } {
  const pdus: RawPdu[] = [];
  const errors: PduError[] = [];
  const reader = new PduReader(s, (p) => pdus.push(p), (e) => errors.push(e));
  for (const c of chunks) reader.push(c);
  return { pdus, errors };
}

describe('PduReader', () => {
  it('frames a header-only PDU however it is split', () => {
    const bytes = wire(0x00, Buffer.alloc(0));
    for (const { name, chunks } of splits(bytes)) {
      const { pdus, errors } = readAll(chunks, settings());
      assert.equal(errors.length, 0, name);
      assert.equal(pdus.length, 1, name);
      assert.equal(pdus[0].bhs.readUInt32BE(16), 0x11223344, name);
      assert.equal(pdus[0].data.length, 0, name);
    }
  });

  it('frames data with padding, and several PDUs in one stream', () => {
    const a = wire(0x04, Buffer.from('SendTargets=All\0'));
    const b = wire(0x01, Buffer.from('abcde'));
    const c = wire(0x00, Buffer.alloc(0));
    const stream = Buffer.concat([a, b, c]);
    for (const { name, chunks } of splits(stream)) {
      const { pdus } = readAll(chunks, settings());
      assert.deepEqual(pdus.map((p) => p.bhs[0]), [0x04, 0x01, 0x00], name);
      assert.equal(pdus[0].data.toString(), 'SendTargets=All\0', name);
      assert.equal(pdus[1].data.toString(), 'abcde', name);
    }
  });

  it('hands out a subarray (no copy) when the PDU lies in one chunk', () => {
    const bytes = wire(0x05, Buffer.alloc(4096, 7));
    const { pdus } = readAll([bytes], settings());
    assert.equal(pdus[0].data.buffer, bytes.buffer);
  });

  it('checks header and data digests', () => {
    const data = Buffer.alloc(1000, 0x5a);
    const good = wire(0x05, data, { hd: true, dd: true });
    for (const { name, chunks } of splits(good)) {
      const { pdus, errors } = readAll(chunks, settings({ headerDigest: true, dataDigest: true }));
      assert.equal(errors.length, 0, name);
      assert.equal(pdus.length, 1, name);
      assert.equal(pdus[0].dataDigestOk, true, name);
      assert.ok(pdus[0].data.equals(data), name);
    }
    const badData = wire(0x05, data, { hd: true, dd: true, corruptDd: true });
    assert.equal(readAll([badData], settings({ headerDigest: true, dataDigest: true })).pdus[0].dataDigestOk, false);
  });

  it('treats a header digest error as fatal', () => {
    const bytes = Buffer.concat([wire(0x00, Buffer.alloc(0), { hd: true, corruptHd: true }), wire(0x00, Buffer.alloc(0), { hd: true })]);
    for (const { name, chunks } of splits(bytes)) {
      const { pdus, errors } = readAll(chunks, settings({ headerDigest: true }));
      assert.equal(pdus.length, 0, name);
      assert.equal(errors.length, 1, name);
      assert.equal(errors[0].fatal, true, name);
    }
  });

  it('skips an oversized data segment, reports it, and keeps framing', () => {
    const bytes = Buffer.concat([wire(0x01, Buffer.alloc(600, 1)), wire(0x00, Buffer.alloc(0))]);
    for (const { name, chunks } of splits(bytes)) {
      const { pdus, errors } = readAll(chunks, settings({ maxDataSegmentLength: 512 }));
      assert.equal(errors.length, 1, name);
      assert.equal(errors[0].fatal, false, name);
      assert.match(errors[0].message, /exceeds MaxRecvDataSegmentLength 512/);
      assert.equal(pdus.length, 1, name);
      assert.equal(pdus[0].bhs[0], 0x00, name);
    }
  });

  it('reads AHS', () => {
    const ahs = Buffer.from([0x00, 0x05, 0x01, 0x00, 1, 2, 3, 4]); // extended CDB, 4 extra bytes
    const bytes = wire(0x01, Buffer.from('xy'), { ahs });
    for (const { name, chunks } of splits(bytes)) {
      const { pdus } = readAll(chunks, settings());
      assert.deepEqual([...pdus[0].ahs!], [...ahs], name);
      assert.equal(pdus[0].data.toString(), 'xy', name);
    }
  });

  it('assembles into a placed buffer', () => {
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const bytes = wire(0x05, data);
    for (const { name, chunks } of splits(bytes)) {
      const target = Buffer.alloc(1000);
      const slot = target.subarray(100, 400);
      const { pdus } = readAll(chunks, settings({ placeData: (_bhs, len) => (len === 300 ? slot : undefined) }));
      assert.equal(pdus[0].data, slot, name);
      assert.ok(target.subarray(100, 400).equals(data), name);
    }
  });

  it('judges a BHS before waiting for its AHS and data (checkHeader)', () => {
    const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n' + 'x'.repeat(40));
    for (const { name, chunks } of splits(garbage)) {
      const { pdus, errors } = readAll(
        chunks,
        settings({ checkHeader: (bhs) => (bhs[0] & 0x3f) !== 0x03 ? new PduError('not a login', 0x04, true) : undefined }),
      );
      assert.equal(pdus.length, 0, name);
      assert.equal(errors.length, 1, name);
      assert.equal(errors[0].fatal, true, name);
    }
  });
});
