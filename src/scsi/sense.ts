/**
 * Sense data (SPC-4 §4.5): sense keys, additional sense codes, the typed SenseError that
 * command handlers throw, and the encoders for fixed (70h) and descriptor (72h) format.
 */

export const enum SenseKey {
  NoSense = 0x0,
  RecoveredError = 0x1,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  BlankCheck = 0x8,
  CopyAborted = 0xa,
  AbortedCommand = 0xb,
  Miscompare = 0xe,
}

/** Additional sense code and qualifier, packed as (ASC << 8) | ASCQ (SPC-4 Annex D). */
export const enum Asc {
  NoAdditionalSense = 0x0000,
  LogicalUnitNotReadyCauseNotReportable = 0x0400,
  LogicalUnitNotReadyInitializingCommandRequired = 0x0402,
  /** SPC-4 ALUA: the port group of this path is in standby (another gateway owns the image). */
  LogicalUnitNotAccessibleTargetPortInStandbyState = 0x040b,
  LogicalUnitNotAccessibleAsymmetricAccessStateTransition = 0x040a,
  LogicalUnitNotAccessibleTargetPortInUnavailableState = 0x040c,
  LogicalUnitCommunicationFailure = 0x0800,
  WriteError = 0x0c00,
  UnrecoveredReadError = 0x1100,
  NotReadyToReadyChange = 0x2800,
  ParameterListLengthError = 0x1a00,
  MiscompareDuringVerify = 0x1d00,
  InvalidCommandOperationCode = 0x2000,
  LbaOutOfRange = 0x2100,
  InvalidFieldInCdb = 0x2400,
  LogicalUnitNotSupported = 0x2500,
  InvalidFieldInParameterList = 0x2600,
  ParameterNotSupported = 0x2601,
  ParameterValueInvalid = 0x2602,
  InvalidReleaseOfPersistentReservation = 0x2604,
  TooManyTargetDescriptors = 0x2606,
  UnsupportedTargetDescriptorTypeCode = 0x2607,
  TooManySegmentDescriptors = 0x2608,
  UnsupportedSegmentDescriptorTypeCode = 0x2609,
  UnreachableCopyTarget = 0x0804,
  CopyTargetDeviceNotReachable = 0x0d02,
  InsufficientResources = 0x5503,
  InsufficientRegistrationResources = 0x5504,
  OperationInProgress = 0x0016,
  WriteProtected = 0x2700,
  SpaceAllocationFailedWriteProtect = 0x2707,
  PowerOnResetOrBusDeviceReset = 0x2900,
  PowerOnOccurred = 0x2901,
  BusDeviceResetFunctionOccurred = 0x2903,
  ITNexusLossOccurred = 0x2907,
  ModeParametersChanged = 0x2a01,
  ReservationsPreempted = 0x2a03,
  ReservationsReleased = 0x2a04,
  RegistrationsPreempted = 0x2a05,
  CapacityDataHasChanged = 0x2a09,
  /** SPC-4 ALUA: a target port group's asymmetric access state changed (another path took over). */
  AsymmetricAccessStateChanged = 0x2a06,
  PreviousBusyStatus = 0x2c07,
  PreviousTaskSetFullStatus = 0x2c08,
  PreviousReservationConflictStatus = 0x2c09,
  CommandsClearedByAnotherInitiator = 0x2f00,
  MediumNotPresent = 0x3a00,
  SavingParametersNotSupported = 0x3900,
  ReportedLunsDataHasChanged = 0x3f0e,
  InternalTargetFailure = 0x4400,
  SetTargetPortGroupsCommandFailed = 0x670a,
  InvalidMessageError = 0x4900,
  DataPhaseError = 0x4b00,
  MediumRemovalPrevented = 0x5302,
  InvalidFieldInInformationUnit = 0x0e03,
  SanitizeInProgress = 0x041b,
  SanitizeCommandFailed = 0x3103,
}

/** Where an invalid field is (SPC-4 §4.5.2.4.2, sense-key specific field pointer). */
export interface FieldPointer {
  /** true: the field is in the CDB (C/D=1); false: in the parameter list. */
  readonly cdb: boolean;
  readonly byte: number;
  /** Bit of the field's most significant bit that is wrong; omitted when not meaningful. */
  readonly bit?: number;
}

export interface SenseInfo {
  readonly key: SenseKey;
  readonly asc: Asc;
  /** INFORMATION field (VALID=1), e.g. the miscompare offset. */
  readonly information?: number;
  readonly field?: FieldPointer;
  /** COMMAND-SPECIFIC INFORMATION field, e.g. the failed segment of an EXTENDED COPY. */
  readonly commandSpecific?: number;
  /** PROGRESS INDICATION (0..65535) in the sense-key specific field, when no field pointer. */
  readonly progress?: number;
}

/** Thrown by command handlers; turned into CHECK CONDITION in one place (logical-unit.ts). */
export class SenseError extends Error implements SenseInfo {
  readonly kind = 'sense';
  constructor(
    readonly key: SenseKey,
    readonly asc: Asc,
    readonly information?: number,
    readonly field?: FieldPointer,
    readonly commandSpecific?: number,
  ) {
    super(`sense ${key.toString(16)}/${(asc >> 8).toString(16).padStart(2, '0')}/${(asc & 0xff).toString(16).padStart(2, '0')}`);
    this.name = 'SenseError';
  }
}

/** RESERVATION CONFLICT status (no sense data), SPC-4 §5.13. */
export class ReservationConflictError extends Error {
  readonly kind = 'reservation-conflict';
  constructor() {
    super('reservation conflict');
    this.name = 'ReservationConflictError';
  }
}

export function invalidFieldInCdb(byte: number, bit?: number): SenseError {
  return new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, undefined, { cdb: true, byte, bit });
}

export function invalidFieldInParameterList(byte: number, bit?: number): SenseError {
  return new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList, undefined, { cdb: false, byte, bit });
}

export function illegalRequest(asc: Asc): SenseError {
  return new SenseError(SenseKey.IllegalRequest, asc);
}

export function lbaOutOfRange(): SenseError {
  return new SenseError(SenseKey.IllegalRequest, Asc.LbaOutOfRange);
}

export function writeProtected(): SenseError {
  return new SenseError(SenseKey.DataProtect, Asc.WriteProtected);
}

export function mediumNotPresent(): SenseError {
  return new SenseError(SenseKey.NotReady, Asc.MediumNotPresent);
}

export function parameterListLengthError(): SenseError {
  return new SenseError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
}

const FIXED_LENGTH = 18;

/** Sense-key specific bytes (SKSV=1): a field pointer, or else a progress indication. */
function senseKeySpecific(info: SenseInfo, out: Buffer, at: number): void {
  const field = info.field;
  if (!field) {
    out[at] = 0x80;
    out.writeUInt16BE((info.progress ?? 0) & 0xffff, at + 1);
    return;
  }
  let b = 0x80;
  if (field.cdb) b |= 0x40;
  if (field.bit !== undefined) b |= 0x08 | (field.bit & 0x07);
  out[at] = b;
  out.writeUInt16BE(field.byte & 0xffff, at + 1);
}

function hasSenseKeySpecific(info: SenseInfo): boolean {
  return info.field !== undefined || info.progress !== undefined;
}

/** Encode sense data: descriptor format (72h) when `descriptor`, else fixed format (70h). */
export function encodeSense(info: SenseInfo, descriptor: boolean): Buffer {
  if (!descriptor) {
    const s = Buffer.alloc(FIXED_LENGTH);
    s[0] = 0x70;
    s[2] = info.key & 0x0f;
    if (info.information !== undefined) {
      s[0] |= 0x80;
      s.writeUInt32BE(info.information >>> 0, 3);
    }
    s[7] = FIXED_LENGTH - 8;
    if (info.commandSpecific !== undefined) s.writeUInt32BE(info.commandSpecific >>> 0, 8);
    s[12] = info.asc >> 8;
    s[13] = info.asc & 0xff;
    if (hasSenseKeySpecific(info)) senseKeySpecific(info, s, 15);
    return s;
  }
  const len = 8 + (info.information !== undefined ? 12 : 0) + (info.commandSpecific !== undefined ? 12 : 0) + (hasSenseKeySpecific(info) ? 8 : 0);
  const s = Buffer.alloc(len);
  s[0] = 0x72;
  s[1] = info.key & 0x0f;
  s[2] = info.asc >> 8;
  s[3] = info.asc & 0xff;
  s[7] = len - 8;
  let at = 8;
  if (info.information !== undefined) {
    s[at] = 0x00; // information descriptor
    s[at + 1] = 0x0a;
    s[at + 2] = 0x80; // VALID
    s.writeUInt32BE(Math.floor(info.information / 0x100000000), at + 4);
    s.writeUInt32BE(info.information >>> 0, at + 8);
    at += 12;
  }
  if (info.commandSpecific !== undefined) {
    s[at] = 0x01; // command-specific information descriptor
    s[at + 1] = 0x0a;
    s.writeUInt32BE(Math.floor(info.commandSpecific / 0x100000000), at + 4);
    s.writeUInt32BE(info.commandSpecific >>> 0, at + 8);
    at += 12;
  }
  if (hasSenseKeySpecific(info)) {
    s[at] = 0x02; // sense key specific descriptor
    s[at + 1] = 0x06;
    senseKeySpecific(info, s, at + 4);
  }
  return s;
}

export interface DecodedSense {
  readonly descriptor: boolean;
  readonly key: SenseKey;
  readonly asc: number;
  readonly information?: number;
  readonly field?: FieldPointer;
  readonly progress?: number;
}

/** Decode fixed or descriptor sense data (for logging and tests). */
export function decodeSense(s: Buffer): DecodedSense {
  const code = s[0] & 0x7f;
  if (code === 0x72 || code === 0x73) {
    let information: number | undefined;
    let specific: { field?: FieldPointer; progress?: number } = {};
    const key = s[1] & 0x0f;
    const end = Math.min(s.length, 8 + s[7]);
    for (let at = 8; at + 2 <= end; at += 2 + s[at + 1]) {
      if (s[at] === 0x00 && s[at + 2] & 0x80) {
        information = s.readUInt32BE(at + 4) * 0x100000000 + s.readUInt32BE(at + 8);
      } else if (s[at] === 0x02 && s[at + 4] & 0x80) {
        specific = decodeSpecific(key, s, at + 4);
      }
    }
    return { descriptor: true, key, asc: (s[2] << 8) | s[3], information, ...specific };
  }
  const key = s[2] & 0x0f;
  return {
    descriptor: false,
    key,
    asc: (s[12] << 8) | s[13],
    information: s[0] & 0x80 ? s.readUInt32BE(3) : undefined,
    ...(s.length >= 18 && s[15] & 0x80 ? decodeSpecific(key, s, 15) : {}),
  };
}

/** Sense-key specific field: a progress indication for NO SENSE / NOT READY, else a field pointer. */
function decodeSpecific(key: SenseKey, s: Buffer, at: number): { field?: FieldPointer; progress?: number } {
  if (key === SenseKey.NoSense || key === SenseKey.NotReady) return { progress: s.readUInt16BE(at + 1) };
  return { field: decodeField(s, at) };
}

function decodeField(s: Buffer, at: number): FieldPointer {
  const b = s[at];
  return { cdb: (b & 0x40) !== 0, byte: s.readUInt16BE(at + 1), bit: b & 0x08 ? b & 0x07 : undefined };
}
