/**
 * Login/text keys (RFC 7143 §13, RFC 7144 §4) as a declarative table, and the parameter sets
 * they produce. The negotiation engine (negotiation.ts) interprets the table; nothing else
 * special-cases key names.
 */

export type KeyKind =
  /** Responder picks the first offered value it supports. */
  | 'list'
  | 'boolean-and'
  | 'boolean-or'
  | 'numeric-min'
  | 'numeric-max'
  /** Each side states its own value; no response is owed. */
  | 'declarative';

export interface KeyDefinition {
  readonly name: string;
  readonly kind: KeyKind;
  /** Session-wide (SW) or connection-only (CO). */
  readonly scope: 'session' | 'connection';
  /** May only appear during login (IO) — a Text request carrying it is rejected. */
  readonly loginOnly: boolean;
  /** Allowed only in the security negotiation stage. */
  readonly securityOnly?: boolean;
  /** Irrelevant in discovery sessions: answered "Irrelevant", not negotiated. */
  readonly irrelevantInDiscovery?: boolean;
  /** Numeric range (inclusive). */
  readonly min?: number;
  readonly max?: number;
  /** Values a list key may take (list keys only). */
  readonly values?: readonly string[];
  /** RFC default (the result when nobody offers the key). */
  readonly defaultValue: string;
}

const MAX_24 = 16777215;

/** The negotiable and declarative keys we understand. Order is irrelevant. */
export const KEY_TABLE: readonly KeyDefinition[] = [
  { name: 'HeaderDigest', kind: 'list', scope: 'connection', loginOnly: true, values: ['None', 'CRC32C'], defaultValue: 'None' },
  { name: 'DataDigest', kind: 'list', scope: 'connection', loginOnly: true, values: ['None', 'CRC32C'], defaultValue: 'None' },
  { name: 'MaxConnections', kind: 'numeric-min', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, min: 1, max: 65535, defaultValue: '1' },
  { name: 'SendTargets', kind: 'declarative', scope: 'session', loginOnly: false, defaultValue: '' },
  { name: 'TargetName', kind: 'declarative', scope: 'session', loginOnly: true, defaultValue: '' },
  { name: 'InitiatorName', kind: 'declarative', scope: 'session', loginOnly: true, defaultValue: '' },
  { name: 'TargetAlias', kind: 'declarative', scope: 'session', loginOnly: false, defaultValue: '' },
  { name: 'InitiatorAlias', kind: 'declarative', scope: 'session', loginOnly: false, defaultValue: '' },
  { name: 'TargetAddress', kind: 'declarative', scope: 'session', loginOnly: false, defaultValue: '' },
  { name: 'TargetPortalGroupTag', kind: 'declarative', scope: 'session', loginOnly: true, defaultValue: '' },
  { name: 'InitialR2T', kind: 'boolean-or', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, defaultValue: 'Yes' },
  { name: 'ImmediateData', kind: 'boolean-and', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, defaultValue: 'Yes' },
  { name: 'MaxRecvDataSegmentLength', kind: 'declarative', scope: 'connection', loginOnly: false, min: 512, max: MAX_24, defaultValue: '8192' },
  { name: 'MaxBurstLength', kind: 'numeric-min', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, min: 512, max: MAX_24, defaultValue: '262144' },
  { name: 'FirstBurstLength', kind: 'numeric-min', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, min: 512, max: MAX_24, defaultValue: '65536' },
  { name: 'DefaultTime2Wait', kind: 'numeric-max', scope: 'session', loginOnly: true, min: 0, max: 3600, defaultValue: '2' },
  { name: 'DefaultTime2Retain', kind: 'numeric-min', scope: 'session', loginOnly: true, min: 0, max: 3600, defaultValue: '20' },
  { name: 'MaxOutstandingR2T', kind: 'numeric-min', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, min: 1, max: 65535, defaultValue: '1' },
  { name: 'DataPDUInOrder', kind: 'boolean-or', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, defaultValue: 'Yes' },
  { name: 'DataSequenceInOrder', kind: 'boolean-or', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, defaultValue: 'Yes' },
  { name: 'ErrorRecoveryLevel', kind: 'numeric-min', scope: 'session', loginOnly: true, min: 0, max: 2, defaultValue: '0' },
  { name: 'SessionType', kind: 'declarative', scope: 'session', loginOnly: true, defaultValue: 'Normal' },
  { name: 'AuthMethod', kind: 'list', scope: 'connection', loginOnly: true, securityOnly: true, values: ['None', 'CHAP', 'KRB5', 'SRP', 'SPKM1', 'SPKM2'], defaultValue: 'None' },
  // RFC 7144: protocol level 2 announces QUERY TASK & co. and FunctionSucceeded.
  { name: 'iSCSIProtocolLevel', kind: 'numeric-min', scope: 'session', loginOnly: true, min: 0, max: 31, defaultValue: '1' },
  { name: 'TaskReporting', kind: 'list', scope: 'session', loginOnly: true, irrelevantInDiscovery: true, values: ['RFC3720', 'ResponseFence', 'FastAbort'], defaultValue: 'RFC3720' },
  // Markers are obsolete (RFC 7143 §13.25); we answer No and never use them.
  { name: 'OFMarker', kind: 'boolean-and', scope: 'connection', loginOnly: true, defaultValue: 'No' },
  { name: 'IFMarker', kind: 'boolean-and', scope: 'connection', loginOnly: true, defaultValue: 'No' },
  { name: 'OFMarkInt', kind: 'declarative', scope: 'connection', loginOnly: true, defaultValue: '' },
  { name: 'IFMarkInt', kind: 'declarative', scope: 'connection', loginOnly: true, defaultValue: '' },
];

export const KEYS: ReadonlyMap<string, KeyDefinition> = new Map(KEY_TABLE.map((k) => [k.name, k]));

/** What this target is willing to accept, per key (from target settings). */
export interface TargetOffer {
  readonly headerDigest: readonly ('None' | 'CRC32C')[];
  readonly dataDigest: readonly ('None' | 'CRC32C')[];
  readonly maxConnections: number;
  readonly initialR2T: boolean;
  readonly immediateData: boolean;
  readonly maxRecvDataSegmentLength: number;
  /** Cap on the data segments we send, whatever the initiator declares. */
  readonly maxXmitDataSegmentLength: number;
  readonly maxBurstLength: number;
  readonly firstBurstLength: number;
  readonly defaultTime2Wait: number;
  readonly defaultTime2Retain: number;
  readonly maxOutstandingR2T: number;
  readonly errorRecoveryLevel: number;
}

export const DEFAULT_TARGET_OFFER: TargetOffer = {
  headerDigest: ['None', 'CRC32C'],
  dataDigest: ['None', 'CRC32C'],
  maxConnections: 1,
  initialR2T: true,
  immediateData: true,
  maxRecvDataSegmentLength: 262144,
  maxXmitDataSegmentLength: 262144,
  maxBurstLength: 524288,
  firstBurstLength: 262144,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  maxOutstandingR2T: 1,
  errorRecoveryLevel: 0,
};

/** Session-wide operational parameters in effect after login. */
export interface SessionParameters {
  readonly sessionType: 'Normal' | 'Discovery';
  readonly initiatorName: string;
  readonly initiatorAlias: string;
  readonly targetName: string;
  readonly maxConnections: number;
  readonly initialR2T: boolean;
  readonly immediateData: boolean;
  readonly maxBurstLength: number;
  readonly firstBurstLength: number;
  readonly defaultTime2Wait: number;
  readonly defaultTime2Retain: number;
  readonly maxOutstandingR2T: number;
  readonly dataPDUInOrder: boolean;
  readonly dataSequenceInOrder: boolean;
  readonly errorRecoveryLevel: number;
  readonly protocolLevel: number;
}

/** Connection-only parameters in effect after login. */
export interface ConnectionParameters {
  readonly headerDigest: boolean;
  readonly dataDigest: boolean;
  /** Largest data segment we accept (what we declared). */
  readonly maxRecvDataSegmentLength: number;
  /** Largest data segment we send (the initiator's declaration, capped by our setting). */
  readonly maxXmitDataSegmentLength: number;
}
