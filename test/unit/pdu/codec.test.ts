import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PduReader, RawPdu } from '../../../src/pdu/pdu-reader';
import { decodeRequest, ScsiCommandPdu, LoginRequestPdu, DataOutPdu, TaskManagementRequestPdu } from '../../../src/pdu/requests';
import { PduError } from '../../../src/pdu/errors';
import {
  encodeDataIn,
  encodeLoginResponse,
  encodeReadyToTransfer,
  encodeReject,
  encodeScsiResponse,
  encodeTaskManagementResponse,
} from '../../../src/pdu/responses';
import { decodeLun, encodeLun } from '../../../src/pdu/lun';
import { encodeText, parseText, TextFormatError } from '../../../src/pdu/text';
import { serialGt, serialInWindow, serialLt } from '../../../src/pdu/serial';
import { hex, splits } from '../../helpers/chunks';

function frame(bytes: Buffer): RawPdu[] {
  const out: RawPdu[] = [];
  const r = new PduReader({ maxDataSegmentLength: 65536, headerDigest: false, dataDigest: false }, (p) => out.push(p), (e) => {
    throw e;
  });
  r.push(bytes);
  return out;
}

// A Login Request as libiscsi sends it: I=1, T=1, CSG=0, NSG=1, ISID 80:12:34:56:78:9a.
const LOGIN = hex(`
  43 81 00 00  00 00 00 2c  80 12 34 56  78 9a 00 00
  00 00 00 07  00 01 00 00  00 00 00 05  00 00 00 00
  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00
`);
const LOGIN_TEXT = Buffer.from('InitiatorName=iqn.2007-10.com.example:test\0AuthMethod=None\0'.slice(0, 44));

describe('request decoding', () => {
  it('decodes a Login Request, whole and split', () => {
    const data = Buffer.concat([LOGIN_TEXT, Buffer.alloc((4 - (LOGIN_TEXT.length % 4)) % 4)]);
    const bytes = Buffer.concat([LOGIN, data]);
    for (const { name, chunks } of splits(bytes)) {
      const pdus: RawPdu[] = [];
      const r = new PduReader({ maxDataSegmentLength: 8192, headerDigest: false, dataDigest: false }, (p) => pdus.push(p), () => assert.fail(name));
      for (const c of chunks) r.push(c);
      const p = decodeRequest(pdus[0]) as LoginRequestPdu;
      assert.equal(p.transit, true, name);
      assert.equal(p.continue, false, name);
      assert.equal(p.csg, 0, name);
      assert.equal(p.nsg, 1, name);
      assert.equal(p.isid.toString('hex'), '80123456789a', name);
      assert.equal(p.tsih, 0, name);
      assert.equal(p.itt, 7, name);
      assert.equal(p.cid, 1, name);
      assert.equal(p.cmdSN, 5, name);
      assert.equal(p.data.toString(), LOGIN_TEXT.toString(), name);
    }
  });

  it('decodes a SCSI Command (WRITE 10 with immediate data)', () => {
    const bhs = hex(`
      01 a1 00 00  00 00 02 00  00 00 00 00  00 00 00 00
      00 00 00 2a  00 00 10 00  ff ff ff fe  00 00 00 09
      2a 00 00 00  00 64 00 00  08 00 00 00  00 00 00 00
    `);
    const p = decodeRequest(frame(Buffer.concat([bhs, Buffer.alloc(512, 0xab)]))[0]) as ScsiCommandPdu;
    assert.equal(p.immediate, false);
    assert.equal(p.final, true);
    assert.equal(p.read, false);
    assert.equal(p.write, true);
    assert.equal(p.attr, 1);
    assert.equal(p.itt, 0x2a);
    assert.equal(p.expectedDataTransferLength, 4096);
    assert.equal(p.cmdSN, 0xfffffffe);
    assert.equal(p.expStatSN, 9);
    assert.equal(p.cdb[0], 0x2a);
    assert.equal(p.cdb.length, 16);
    assert.equal(p.data.length, 512);
  });

  it('decodes an extended CDB from the AHS', () => {
    const bhs = Buffer.alloc(48);
    bhs[0] = 0x01;
    bhs[1] = 0x80;
    bhs[4] = 5; // 20 bytes of AHS
    bhs[32] = 0x7f;
    // AHSLength = 1 reserved + 16 extra CDB bytes = 17; type 1
    const ahs = Buffer.alloc(20);
    ahs.writeUInt16BE(17, 0);
    ahs[2] = 1;
    for (let i = 0; i < 16; i++) ahs[4 + i] = i + 1;
    const p = decodeRequest(frame(Buffer.concat([bhs, ahs]))[0]) as ScsiCommandPdu;
    assert.equal(p.cdb.length, 32);
    assert.equal(p.cdb[0], 0x7f);
    assert.equal(p.cdb[16], 1);
    assert.equal(p.cdb[31], 16);
  });

  it('decodes Data-Out and Task Management requests', () => {
    const d = Buffer.alloc(48);
    d[0] = 0x05;
    d[1] = 0x80;
    d.writeUInt32BE(3, 16);
    d.writeUInt32BE(0x99, 20);
    d.writeUInt32BE(2, 36);
    d.writeUInt32BE(8192, 40);
    const dataOut = decodeRequest(frame(d)[0]) as DataOutPdu;
    assert.deepEqual([dataOut.final, dataOut.itt, dataOut.ttt, dataOut.dataSN, dataOut.bufferOffset], [true, 3, 0x99, 2, 8192]);

    const t = Buffer.alloc(48);
    t[0] = 0x42;
    t[1] = 0x81;
    t.writeUInt32BE(10, 16);
    t.writeUInt32BE(4, 20);
    t.writeUInt32BE(100, 24);
    t.writeUInt32BE(99, 32);
    const tmf = decodeRequest(frame(t)[0]) as TaskManagementRequestPdu;
    assert.deepEqual([tmf.immediate, tmf.function, tmf.itt, tmf.referencedTaskTag, tmf.cmdSN, tmf.refCmdSN], [true, 1, 10, 4, 100, 99]);
  });

  it('rejects unknown opcodes and bad AHS with a non-fatal PduError', () => {
    const u = Buffer.alloc(48);
    u[0] = 0x1c;
    assert.throws(() => decodeRequest(frame(u)[0]), (e: unknown) => e instanceof PduError && !e.fatal && /opcode 0x1c/.test(e.message));
    const bad = Buffer.alloc(52);
    bad[0] = 0x01;
    bad[4] = 1;
    bad.writeUInt16BE(40, 48); // AHSLength beyond the AHS
    bad[50] = 1;
    assert.throws(() => decodeRequest(frame(bad)[0]), PduError);
  });
});

describe('response encoding', () => {
  const seq = { statSN: 0x10, expCmdSN: 0x20, maxCmdSN: 0x9f };
  it('SCSI Response with underflow', () => {
    const b = encodeScsiResponse(
      { ...seq, itt: 5, response: 0, status: 0, residualOverflow: false, residualUnderflow: true, residualCount: 512, expDataSN: 1 },
      0,
    );
    assert.equal(
      b.toString('hex'),
      '21820000000000000000000000000000' + '00000005000000000000001000000020' + '0000009f000000010000000000000200',
    );
  });

  it('Data-In with status (phase collapse) and without', () => {
    const lun = encodeLun(3);
    const withStatus = encodeDataIn(
      {
        final: true,
        lun,
        itt: 7,
        expCmdSN: 0x20,
        maxCmdSN: 0x9f,
        dataSN: 2,
        bufferOffset: 16384,
        status: { statSN: 0x10, status: 0, residualOverflow: true, residualUnderflow: false, residualCount: 100 },
      },
      4096,
    );
    assert.equal(
      withStatus.toString('hex'),
      '25850000000010000003000000000000' + '00000007ffffffff0000001000000020' + '0000009f000000020000400000000064',
    );
    const plain = encodeDataIn({ final: false, lun, itt: 7, expCmdSN: 1, maxCmdSN: 2, dataSN: 0, bufferOffset: 0 }, 8192);
    assert.equal(plain[1], 0x00);
    assert.equal(plain.readUInt32BE(24), 0); // StatSN reserved without the S bit
  });

  it('R2T, TMF response, Login Response, Reject', () => {
    const r2t = encodeReadyToTransfer({ ...seq, lun: encodeLun(0), itt: 1, ttt: 2, r2tSN: 3, bufferOffset: 4096, desiredDataTransferLength: 65536 });
    assert.equal(r2t.toString('hex'), '31800000000000000000000000000000' + '00000001000000020000001000000020' + '0000009f000000030000100000010000');
    const tmf = encodeTaskManagementResponse({ ...seq, itt: 9, response: 1 });
    assert.equal(tmf.subarray(0, 4).toString('hex'), '22800100');
    const login = encodeLoginResponse(
      { ...seq, transit: true, continue: false, csg: 1, nsg: 3, versionMax: 0, versionActive: 0, isid: hex('80123456789a'), tsih: 0x0102, itt: 7, status: 0x0201 },
      20,
    );
    assert.equal(login.toString('hex'), '23870000000000148012345678 9a0102'.replace(/ /g, '') + '00000007000000000000001000000020' + '0000009f020100000000000000000000');
    const rej = encodeReject({ ...seq, reason: 0x09, dataSN: 0 }, 48);
    assert.equal(rej.subarray(0, 8).toString('hex'), '3f80090000000030');
    assert.equal(rej.readUInt32BE(16), 0xffffffff);
  });
});

describe('LUN field', () => {
  it('round-trips peripheral and flat addressing', () => {
    for (const lun of [0, 1, 255, 256, 16383]) assert.equal(decodeLun(encodeLun(lun)), lun);
    assert.equal(encodeLun(5).toString('hex'), '0005000000000000');
    assert.equal(encodeLun(300).toString('hex'), '412c000000000000');
  });
  it('refuses other addressing methods and multi-level LUNs', () => {
    assert.equal(decodeLun(hex('c000000000000000')), undefined);
    assert.equal(decodeLun(hex('0001000100000000')), undefined);
  });
});

describe('text codec', () => {
  it('parses pairs, keeps order and duplicates', () => {
    const pairs = parseText(Buffer.from('TargetName=iqn.x\0TargetAddress=1.2.3.4:3260,1\0TargetAddress=[::1]:3260,1\0\0\0'));
    assert.deepEqual(pairs, [
      ['TargetName', 'iqn.x'],
      ['TargetAddress', '1.2.3.4:3260,1'],
      ['TargetAddress', '[::1]:3260,1'],
    ]);
    assert.equal(encodeText(pairs).toString(), 'TargetName=iqn.x\0TargetAddress=1.2.3.4:3260,1\0TargetAddress=[::1]:3260,1\0');
  });
  it('accepts a missing final NUL and empty values', () => {
    assert.deepEqual(parseText(Buffer.from('SendTargets=')), [['SendTargets', '']]);
  });
  it('rejects malformed items', () => {
    assert.throws(() => parseText(Buffer.from('NoEquals\0')), TextFormatError);
    assert.throws(() => parseText(Buffer.from('Bad Key=x\0')), TextFormatError);
    assert.throws(() => parseText(Buffer.from(`${'K'.repeat(64)}=x\0`)), TextFormatError);
    assert.throws(() => parseText(Buffer.from(`Key=${'v'.repeat(9000)}\0`)), TextFormatError);
  });
});

describe('serial number arithmetic (RFC 1982)', () => {
  it('compares across the wrap', () => {
    assert.ok(serialLt(0xfffffff0, 5));
    assert.ok(serialGt(5, 0xfffffff0));
    assert.ok(!serialLt(5, 5));
    assert.ok(serialInWindow(2, 0xfffffffe, 10));
    assert.ok(!serialInWindow(11, 0xfffffffe, 10));
  });
});
