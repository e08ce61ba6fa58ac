/**
 * Encoding of target -> initiator BHSs (RFC 7143 §11). Each encoder returns a fresh 48-byte
 * header; the data segment, padding and digests are appended by the connection's writer.
 * Pure functions; field names follow the RFC.
 */
import { BHS_LENGTH, RESERVED_TAG, TargetOpcode } from './opcodes';

/** Sequence numbers every target PDU carries. */
export interface SequenceNumbers {
  readonly statSN: number;
  readonly expCmdSN: number;
  readonly maxCmdSN: number;
}

function header(opcode: TargetOpcode, flags: number, dataSegmentLength: number): Buffer {
  const b = Buffer.alloc(BHS_LENGTH);
  b[0] = opcode;
  b[1] = flags;
  b.writeUIntBE(dataSegmentLength, 5, 3);
  return b;
}

function sequence(b: Buffer, seq: SequenceNumbers): void {
  b.writeUInt32BE(seq.statSN >>> 0, 24);
  b.writeUInt32BE(seq.expCmdSN >>> 0, 28);
  b.writeUInt32BE(seq.maxCmdSN >>> 0, 32);
}

export interface ScsiResponseFields extends SequenceNumbers {
  readonly itt: number;
  /** 0x00 Command Completed at Target, 0x01 Target Failure. */
  readonly response: number;
  readonly status: number;
  readonly residualOverflow: boolean;
  readonly residualUnderflow: boolean;
  readonly residualCount: number;
  readonly expDataSN: number;
}

export function encodeScsiResponse(f: ScsiResponseFields, dataSegmentLength: number): Buffer {
  const flags = 0x80 | (f.residualOverflow ? 0x04 : 0) | (f.residualUnderflow ? 0x02 : 0);
  const b = header(TargetOpcode.ScsiResponse, flags, dataSegmentLength);
  b[2] = f.response;
  b[3] = f.status;
  b.writeUInt32BE(f.itt >>> 0, 16);
  sequence(b, f);
  b.writeUInt32BE(f.expDataSN >>> 0, 36);
  b.writeUInt32BE(f.residualCount >>> 0, 44);
  return b;
}

export interface DataInFields {
  readonly final: boolean;
  readonly lun: Buffer;
  readonly itt: number;
  readonly expCmdSN: number;
  readonly maxCmdSN: number;
  readonly dataSN: number;
  readonly bufferOffset: number;
  /** Status phase collapse: present only on the last PDU of a command that ended GOOD. */
  readonly status?: {
    readonly statSN: number;
    readonly status: number;
    readonly residualOverflow: boolean;
    readonly residualUnderflow: boolean;
    readonly residualCount: number;
  };
}

export function encodeDataIn(f: DataInFields, dataSegmentLength: number): Buffer {
  const s = f.status;
  const flags =
    (f.final || s ? 0x80 : 0) | (s ? 0x01 | (s.residualOverflow ? 0x04 : 0) | (s.residualUnderflow ? 0x02 : 0) : 0);
  const b = header(TargetOpcode.DataIn, flags, dataSegmentLength);
  f.lun.copy(b, 8, 0, 8);
  b.writeUInt32BE(f.itt >>> 0, 16);
  b.writeUInt32BE(RESERVED_TAG, 20);
  if (s) {
    b[3] = s.status;
    b.writeUInt32BE(s.statSN >>> 0, 24);
    b.writeUInt32BE(s.residualCount >>> 0, 44);
  }
  b.writeUInt32BE(f.expCmdSN >>> 0, 28);
  b.writeUInt32BE(f.maxCmdSN >>> 0, 32);
  b.writeUInt32BE(f.dataSN >>> 0, 36);
  b.writeUInt32BE(f.bufferOffset >>> 0, 40);
  return b;
}

export interface ReadyToTransferFields extends SequenceNumbers {
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
  readonly r2tSN: number;
  readonly bufferOffset: number;
  readonly desiredDataTransferLength: number;
}

export function encodeReadyToTransfer(f: ReadyToTransferFields): Buffer {
  const b = header(TargetOpcode.ReadyToTransfer, 0x80, 0);
  f.lun.copy(b, 8, 0, 8);
  b.writeUInt32BE(f.itt >>> 0, 16);
  b.writeUInt32BE(f.ttt >>> 0, 20);
  sequence(b, f);
  b.writeUInt32BE(f.r2tSN >>> 0, 36);
  b.writeUInt32BE(f.bufferOffset >>> 0, 40);
  b.writeUInt32BE(f.desiredDataTransferLength >>> 0, 44);
  return b;
}

export interface NopInFields extends SequenceNumbers {
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
}

export function encodeNopIn(f: NopInFields, dataSegmentLength: number): Buffer {
  const b = header(TargetOpcode.NopIn, 0x80, dataSegmentLength);
  f.lun.copy(b, 8, 0, 8);
  b.writeUInt32BE(f.itt >>> 0, 16);
  b.writeUInt32BE(f.ttt >>> 0, 20);
  sequence(b, f);
  return b;
}

export interface TaskManagementResponseFields extends SequenceNumbers {
  readonly itt: number;
  readonly response: number;
}

export function encodeTaskManagementResponse(f: TaskManagementResponseFields): Buffer {
  const b = header(TargetOpcode.TaskManagementResponse, 0x80, 0);
  b[2] = f.response;
  b.writeUInt32BE(f.itt >>> 0, 16);
  sequence(b, f);
  return b;
}

export interface LoginResponseFields extends SequenceNumbers {
  readonly transit: boolean;
  readonly continue: boolean;
  readonly csg: number;
  readonly nsg: number;
  readonly versionMax: number;
  readonly versionActive: number;
  readonly isid: Buffer;
  readonly tsih: number;
  readonly itt: number;
  /** (class << 8) | detail */
  readonly status: number;
}

export function encodeLoginResponse(f: LoginResponseFields, dataSegmentLength: number): Buffer {
  const flags = (f.transit ? 0x80 : 0) | (f.continue ? 0x40 : 0) | ((f.csg & 3) << 2) | (f.transit ? f.nsg & 3 : 0);
  const b = header(TargetOpcode.LoginResponse, flags, dataSegmentLength);
  b[2] = f.versionMax;
  b[3] = f.versionActive;
  f.isid.copy(b, 8, 0, 6);
  b.writeUInt16BE(f.tsih, 14);
  b.writeUInt32BE(f.itt >>> 0, 16);
  sequence(b, f);
  b[36] = (f.status >> 8) & 0xff;
  b[37] = f.status & 0xff;
  return b;
}

export interface TextResponseFields extends SequenceNumbers {
  readonly final: boolean;
  readonly continue: boolean;
  readonly lun: Buffer;
  readonly itt: number;
  readonly ttt: number;
}

export function encodeTextResponse(f: TextResponseFields, dataSegmentLength: number): Buffer {
  const b = header(TargetOpcode.TextResponse, (f.final ? 0x80 : 0) | (f.continue ? 0x40 : 0), dataSegmentLength);
  f.lun.copy(b, 8, 0, 8);
  b.writeUInt32BE(f.itt >>> 0, 16);
  b.writeUInt32BE(f.ttt >>> 0, 20);
  sequence(b, f);
  return b;
}

export interface LogoutResponseFields extends SequenceNumbers {
  readonly itt: number;
  readonly response: number;
  readonly time2Wait: number;
  readonly time2Retain: number;
}

export function encodeLogoutResponse(f: LogoutResponseFields): Buffer {
  const b = header(TargetOpcode.LogoutResponse, 0x80, 0);
  b[2] = f.response;
  b.writeUInt32BE(f.itt >>> 0, 16);
  sequence(b, f);
  b.writeUInt16BE(f.time2Wait, 40);
  b.writeUInt16BE(f.time2Retain, 42);
  return b;
}

export interface RejectFields extends SequenceNumbers {
  readonly reason: number;
  readonly dataSN: number;
}

/** The data segment of a Reject is the complete header of the rejected PDU. */
export function encodeReject(f: RejectFields, dataSegmentLength: number): Buffer {
  const b = header(TargetOpcode.Reject, 0x80, dataSegmentLength);
  b[2] = f.reason;
  b.writeUInt32BE(RESERVED_TAG, 16);
  sequence(b, f);
  b.writeUInt32BE(f.dataSN >>> 0, 36);
  return b;
}

/** AsyncEvent codes (RFC 7143 §11.9.1). */
export const enum AsyncEvent {
  ScsiAsyncEvent = 0,
  LogoutRequest = 1,
  DropConnection = 2,
  DropAllConnections = 3,
  RenegotiateParameters = 4,
  VendorSpecific = 255,
}

export interface AsyncMessageFields extends SequenceNumbers {
  readonly lun: Buffer;
  readonly asyncEvent: number;
  readonly asyncVCode: number;
  readonly parameter1: number;
  readonly parameter2: number;
  readonly parameter3: number;
}

export function encodeAsyncMessage(f: AsyncMessageFields, dataSegmentLength: number): Buffer {
  const b = header(TargetOpcode.AsyncMessage, 0x80, dataSegmentLength);
  f.lun.copy(b, 8, 0, 8);
  b.writeUInt32BE(RESERVED_TAG, 16);
  sequence(b, f);
  b[36] = f.asyncEvent;
  b[37] = f.asyncVCode;
  b.writeUInt16BE(f.parameter1, 38);
  b.writeUInt16BE(f.parameter2, 40);
  b.writeUInt16BE(f.parameter3, 42);
  return b;
}
