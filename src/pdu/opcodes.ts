/** iSCSI opcodes (RFC 7143 §11.2.1.2). */

/** Initiator -> target. */
export const enum InitiatorOpcode {
  NopOut = 0x00,
  ScsiCommand = 0x01,
  TaskManagementRequest = 0x02,
  LoginRequest = 0x03,
  TextRequest = 0x04,
  DataOut = 0x05,
  LogoutRequest = 0x06,
  SnackRequest = 0x10,
}

/** Target -> initiator. */
export const enum TargetOpcode {
  NopIn = 0x20,
  ScsiResponse = 0x21,
  TaskManagementResponse = 0x22,
  LoginResponse = 0x23,
  TextResponse = 0x24,
  DataIn = 0x25,
  LogoutResponse = 0x26,
  ReadyToTransfer = 0x31,
  AsyncMessage = 0x32,
  Reject = 0x3f,
}

export const BHS_LENGTH = 48;
export const DIGEST_LENGTH = 4;
/** Reserved tag value meaning "no task" (ITT/TTT 0xffffffff). */
export const RESERVED_TAG = 0xffffffff;

/** Reject reasons (RFC 7143 §11.17.1). */
export const enum RejectReason {
  DataDigestError = 0x02,
  SnackReject = 0x03,
  ProtocolError = 0x04,
  CommandNotSupported = 0x05,
  ImmediateCommandRejected = 0x06,
  TaskInProgress = 0x07,
  InvalidDataAck = 0x08,
  InvalidPduField = 0x09,
  LongOperationReject = 0x0a,
  Deprecated = 0x0b,
  WaitingForLogout = 0x0c,
}

/** Login status class/detail pairs (RFC 7143 §11.13.5), as (class << 8) | detail. */
export const enum LoginStatus {
  Success = 0x0000,
  TargetMovedTemporarily = 0x0101,
  TargetMovedPermanently = 0x0102,
  InitiatorError = 0x0200,
  AuthenticationFailure = 0x0201,
  AuthorizationFailure = 0x0202,
  NotFound = 0x0203,
  TargetRemoved = 0x0204,
  UnsupportedVersion = 0x0205,
  TooManyConnections = 0x0206,
  MissingParameter = 0x0207,
  CantIncludeInSession = 0x0208,
  SessionTypeNotSupported = 0x0209,
  SessionDoesNotExist = 0x020a,
  InvalidDuringLogin = 0x020b,
  TargetError = 0x0300,
  ServiceUnavailable = 0x0301,
  OutOfResources = 0x0302,
}

/** Logout reason codes (RFC 7143 §11.14.1) and responses (§11.15.1). */
export const enum LogoutReason {
  CloseSession = 0,
  CloseConnection = 1,
  RemoveConnectionForRecovery = 2,
}

export const enum LogoutResponseCode {
  Success = 0,
  CidNotFound = 1,
  RecoveryNotSupported = 2,
  CleanupFailed = 3,
}

/** Login stages (CSG/NSG, RFC 7143 §11.12.3). */
export const enum LoginStage {
  Security = 0,
  Operational = 1,
  FullFeature = 3,
}
