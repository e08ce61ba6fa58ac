/**
 * Decoding of initiator -> target PDUs (RFC 7143 §11) from a framed RawPdu into typed objects.
 * Pure: no state, no I/O. Field names follow the RFC.
 */
import { InitiatorOpcode, RejectReason } from './opcodes';
import { PduError } from './errors';
import { RawPdu } from './pdu-reader';

export interface ScsiCommandPdu {
  readonly opcode: InitiatorOpcode.ScsiCommand;
  readonly immediate: boolean;
  /** F: no unsolicited Data-Out PDUs follow. */
  readonly final: boolean;
  readonly read: boolean;
  readonly write: boolean;
  /** ATTR (task attribute), 3 bits. */
  readonly attr: number;
  readonly lun: Buffer;
  readonly itt: number;
  readonly expectedDataTransferLength: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
  /** CDB including an Extended CDB AHS when present. */
  readonly cdb: Buffer;
  /** Bidirectional Read Expected Data Transfer Length AHS, when present. */
  readonly bidiReadLength: number | undefined;
  /** Immediate data. */
  readonly data: Buffer;
}

export interface DataOutPdu {
  readonly opcode: InitiatorOpcode.DataOut;
  readonly final: boolean;
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
  readonly expStatSN: number;
  readonly dataSN: number;
  readonly bufferOffset: number;
  readonly data: Buffer;
}

export interface NopOutPdu {
  readonly opcode: InitiatorOpcode.NopOut;
  readonly immediate: boolean;
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
  readonly data: Buffer;
}

export interface TaskManagementRequestPdu {
  readonly opcode: InitiatorOpcode.TaskManagementRequest;
  readonly immediate: boolean;
  readonly function: number;
  readonly lun: Buffer;
  readonly itt: number;
  readonly referencedTaskTag: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
  readonly refCmdSN: number;
  readonly expDataSN: number;
}

export interface LoginRequestPdu {
  readonly opcode: InitiatorOpcode.LoginRequest;
  /** T: the initiator is ready to transit to NSG. */
  readonly transit: boolean;
  /** C: the text is continued in the next PDU. */
  readonly continue: boolean;
  readonly csg: number;
  readonly nsg: number;
  readonly versionMax: number;
  readonly versionMin: number;
  /** ISID, 6 bytes. */
  readonly isid: Buffer;
  readonly tsih: number;
  readonly itt: number;
  readonly cid: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
  readonly data: Buffer;
}

export interface TextRequestPdu {
  readonly opcode: InitiatorOpcode.TextRequest;
  readonly immediate: boolean;
  readonly final: boolean;
  readonly continue: boolean;
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
  readonly data: Buffer;
}

export interface LogoutRequestPdu {
  readonly opcode: InitiatorOpcode.LogoutRequest;
  readonly immediate: boolean;
  readonly reasonCode: number;
  readonly itt: number;
  readonly cid: number;
  readonly cmdSN: number;
  readonly expStatSN: number;
}

export interface SnackRequestPdu {
  readonly opcode: InitiatorOpcode.SnackRequest;
  readonly type: number;
  readonly itt: number;
  readonly ttt: number;
  readonly expStatSN: number;
  readonly begRun: number;
  readonly runLength: number;
}

export type RequestPdu =
  | ScsiCommandPdu
  | DataOutPdu
  | NopOutPdu
  | TaskManagementRequestPdu
  | LoginRequestPdu
  | TextRequestPdu
  | LogoutRequestPdu
  | SnackRequestPdu;

/** AHS types (RFC 7143 §11.2.2.1). */
const AHS_EXTENDED_CDB = 1;
const AHS_BIDI_READ_LENGTH = 2;

export function opcodeOf(bhs: Buffer): number {
  return bhs[0] & 0x3f;
}

export function isImmediate(bhs: Buffer): boolean {
  return (bhs[0] & 0x40) !== 0;
}

export function ittOf(bhs: Buffer): number {
  return bhs.readUInt32BE(16);
}

function invalid(message: string, raw: RawPdu): PduError {
  return new PduError(message, RejectReason.InvalidPduField, false, Buffer.from(raw.bhs));
}

function parseAhs(raw: RawPdu): { extendedCdb: Buffer | undefined; bidiReadLength: number | undefined } {
  let extendedCdb: Buffer | undefined;
  let bidiReadLength: number | undefined;
  const ahs = raw.ahs;
  if (!ahs) return { extendedCdb, bidiReadLength };
  // Each AHS: AHSLength (2 bytes, excludes the 3 header bytes and padding), AHSType (1 byte),
  // AHSLength bytes of which the first is reserved, then padding to a 4-byte boundary.
  let off = 0;
  while (off < ahs.length) {
    if (off + 4 > ahs.length) throw invalid('truncated AHS', raw);
    const length = ahs.readUInt16BE(off);
    const type = ahs[off + 2] & 0x3f;
    const end = off + 3 + length;
    if (length < 1 || end > ahs.length) throw invalid(`AHS of type ${type} with bad length ${length}`, raw);
    if (type === AHS_EXTENDED_CDB) {
      extendedCdb = ahs.subarray(off + 4, end);
    } else if (type === AHS_BIDI_READ_LENGTH) {
      if (length !== 5) throw invalid('bad bidirectional read length AHS', raw);
      bidiReadLength = ahs.readUInt32BE(off + 4);
    } else {
      throw invalid(`unsupported AHS type ${type}`, raw);
    }
    off = (end + 3) & ~3;
  }
  return { extendedCdb, bidiReadLength };
}

/**
 * Decode a framed PDU. Throws PduError (non-fatal: the caller answers with a Reject) for an
 * unknown opcode or an invalid field.
 */
export function decodeRequest(raw: RawPdu): RequestPdu {
  const b = raw.bhs;
  const opcode = opcodeOf(b);
  const immediate = isImmediate(b);
  const f = (b[1] & 0x80) !== 0;
  const itt = b.readUInt32BE(16);
  switch (opcode) {
    case InitiatorOpcode.ScsiCommand: {
      const { extendedCdb, bidiReadLength } = parseAhs(raw);
      const cdb16 = b.subarray(32, 48);
      const cdb = extendedCdb ? Buffer.concat([cdb16, extendedCdb]) : cdb16;
      return {
        opcode,
        immediate,
        final: f,
        read: (b[1] & 0x40) !== 0,
        write: (b[1] & 0x20) !== 0,
        attr: b[1] & 0x07,
        lun: b.subarray(8, 16),
        itt,
        expectedDataTransferLength: b.readUInt32BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
        cdb,
        bidiReadLength,
        data: raw.data,
      };
    }
    case InitiatorOpcode.DataOut:
      return {
        opcode,
        final: f,
        lun: b.subarray(8, 16),
        itt,
        ttt: b.readUInt32BE(20),
        expStatSN: b.readUInt32BE(28),
        dataSN: b.readUInt32BE(36),
        bufferOffset: b.readUInt32BE(40),
        data: raw.data,
      };
    case InitiatorOpcode.NopOut:
      return {
        opcode,
        immediate,
        lun: b.subarray(8, 16),
        itt,
        ttt: b.readUInt32BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
        data: raw.data,
      };
    case InitiatorOpcode.TaskManagementRequest:
      return {
        opcode,
        immediate,
        function: b[1] & 0x7f,
        lun: b.subarray(8, 16),
        itt,
        referencedTaskTag: b.readUInt32BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
        refCmdSN: b.readUInt32BE(32),
        expDataSN: b.readUInt32BE(36),
      };
    case InitiatorOpcode.LoginRequest:
      return {
        opcode,
        transit: f,
        continue: (b[1] & 0x40) !== 0,
        csg: (b[1] >> 2) & 0x03,
        nsg: b[1] & 0x03,
        versionMax: b[2],
        versionMin: b[3],
        isid: b.subarray(8, 14),
        tsih: b.readUInt16BE(14),
        itt,
        cid: b.readUInt16BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
        data: raw.data,
      };
    case InitiatorOpcode.TextRequest:
      return {
        opcode,
        immediate,
        final: f,
        continue: (b[1] & 0x40) !== 0,
        lun: b.subarray(8, 16),
        itt,
        ttt: b.readUInt32BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
        data: raw.data,
      };
    case InitiatorOpcode.LogoutRequest:
      return {
        opcode,
        immediate,
        reasonCode: b[1] & 0x7f,
        itt,
        cid: b.readUInt16BE(20),
        cmdSN: b.readUInt32BE(24),
        expStatSN: b.readUInt32BE(28),
      };
    case InitiatorOpcode.SnackRequest:
      return {
        opcode,
        type: b[1] & 0x0f,
        itt,
        ttt: b.readUInt32BE(20),
        expStatSN: b.readUInt32BE(28),
        begRun: b.readUInt32BE(40),
        runLength: b.readUInt32BE(44),
      };
    default:
      throw new PduError(`unsupported opcode 0x${opcode.toString(16)}`, RejectReason.CommandNotSupported, false, Buffer.from(b));
  }
}
