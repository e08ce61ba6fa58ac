/**
 * Operational parameter negotiation (RFC 7143 §6.2-6.6) driven by KEY_TABLE. The target is the
 * responder for keys the initiator offers and the originator for the few it must raise itself
 * (values that differ from the RFC default the initiator did not mention).
 */
import { LoginStatus } from '../pdu/opcodes';
import { TextPair } from '../pdu/text';
import {
  ConnectionParameters,
  KEYS,
  KeyDefinition,
  SessionParameters,
  TargetOffer,
} from './parameters';


/** Declarations of who is logging in where (RFC 7143 §13.4, 13.5, 13.21, 13.22). */
const IDENTITY_KEYS: ReadonlySet<string> = new Set(['InitiatorName', 'InitiatorAlias', 'TargetName', 'SessionType']);
export class NegotiationError extends Error {
  constructor(
    message: string,
    readonly status: LoginStatus,
  ) {
    super(message);
    this.name = 'NegotiationError';
  }
}

/** Our protocol level: RFC 7144 (QUERY TASK & co., FunctionSucceeded). */
export const PROTOCOL_LEVEL = 2;

const SPECIAL_ANSWERS = new Set(['NotUnderstood', 'Irrelevant', 'Reject']);

/** Keys the login/security layer handles itself; never seen by the negotiator. */
export const SECURITY_KEYS = /^(AuthMethod|CHAP_[A-Z]+|SRP_[A-Za-z]+|KRB_[A-Z_]+|SPKM_[A-Z_]+|TargetAuth)$/;

export function parseNumber(value: string): number | undefined {
  // RFC 7143 §6.1: decimal, or hex with 0x. (Base64 "0b" only serves huge binary values.)
  if (/^[0-9]{1,10}$/.test(value)) return Number(value);
  if (/^0[xX][0-9a-fA-F]{1,8}$/.test(value)) return parseInt(value.slice(2), 16);
  return undefined;
}

function parseBoolean(value: string): boolean | undefined {
  if (value === 'Yes') return true;
  if (value === 'No') return false;
  return undefined;
}

function yesNo(b: boolean): string {
  return b ? 'Yes' : 'No';
}

export class Negotiator {
  /** Negotiated (or declared) values, as strings, by key. */
  private readonly results = new Map<string, string>();
  /** Keys the initiator has offered or declared during the login (RFC 7143 §6.2: once each). */
  /** Keys the initiator offered or declared in this login, with their values. */
  private readonly offeredByInitiator = new Map<string, string>();
  /** Keys we offered and whose answer we await. */
  private readonly pending = new Map<string, string>();
  private ownMrdslDeclared = false;
  private initiatorMrdsl = 8192;
  sessionType: 'Normal' | 'Discovery' = 'Normal';

  constructor(private readonly offer: TargetOffer) {}

  /** The target's own value for a negotiable key (what we would accept as the best case). */
  private ourValue(def: KeyDefinition): string {
    const o = this.offer;
    switch (def.name) {
      case 'HeaderDigest':
        return o.headerDigest.join(',');
      case 'DataDigest':
        return o.dataDigest.join(',');
      case 'MaxConnections':
        return String(o.maxConnections);
      case 'InitialR2T':
        return yesNo(o.initialR2T);
      case 'ImmediateData':
        return yesNo(o.immediateData);
      case 'MaxBurstLength':
        return String(o.maxBurstLength);
      case 'FirstBurstLength':
        return String(o.firstBurstLength);
      case 'DefaultTime2Wait':
        return String(o.defaultTime2Wait);
      case 'DefaultTime2Retain':
        return String(o.defaultTime2Retain);
      case 'MaxOutstandingR2T':
        return String(o.maxOutstandingR2T);
      case 'DataPDUInOrder':
      case 'DataSequenceInOrder':
        return 'Yes';
      case 'ErrorRecoveryLevel':
        return String(o.errorRecoveryLevel);
      case 'iSCSIProtocolLevel':
        return String(PROTOCOL_LEVEL);
      case 'TaskReporting':
        return 'RFC3720';
      case 'OFMarker':
      case 'IFMarker':
        return 'No';
      default:
        return def.defaultValue;
    }
  }

  private irrelevant(def: KeyDefinition): boolean {
    return this.sessionType === 'Discovery' && def.irrelevantInDiscovery === true;
  }

  /**
   * Answer the keys of one complete login (or text) request. Throws NegotiationError for
   * errors that must end the login (a key offered twice, a malformed answer to our offer).
   */
  respond(pairs: readonly TextPair[], inLogin = true): TextPair[] {
    const response: TextPair[] = [];
    const inThisRequest = new Set<string>();
    const st = pairs.find(([k]) => k === 'SessionType');
    if (st && (st[1] === 'Normal' || st[1] === 'Discovery')) this.sessionType = st[1];

    for (const [key, value] of pairs) {
      if (inThisRequest.has(key)) {
        throw new NegotiationError(`key ${key} appears twice in one request`, LoginStatus.InitiatorError);
      }
      inThisRequest.add(key);
      const answersOurOffer = this.pending.has(key);
      // A key offered or declared in an earlier request of this login, again: renegotiation,
      // which RFC 7143 §6.2 forbids (Login reject, initiator error). Answers to our own offers
      // and full-feature Text negotiation (a new exchange each time) are not repeats.
      // Interoperability: libiscsi repeats InitiatorName (same value) in the request after the
      // CHAP exchange. An identical repeat of an identity declaration changes nothing and is
      // accepted; any other repeat, and a changed value, is refused.
      const earlier = this.offeredByInitiator.get(key);
      if (inLogin && !answersOurOffer && earlier !== undefined && !(IDENTITY_KEYS.has(key) && earlier === value)) {
        throw new NegotiationError(`key ${key} declared again in a later login request`, LoginStatus.InitiatorError);
      }
      const def = KEYS.get(key);
      if (!def) {
        if (inLogin) this.offeredByInitiator.set(key, value);
        response.push([key, 'NotUnderstood']);
        continue;
      }
      if (!inLogin && def.loginOnly) {
        // Text requests may not renegotiate login-only keys (RFC 7143 §6.5).
        response.push([key, 'Reject']);
        continue;
      }
      const ours = this.pending.get(key);
      if (ours !== undefined) {
        this.pending.delete(key);
        this.acceptAnswer(def, value, ours);
        continue;
      }
      if (SPECIAL_ANSWERS.has(value)) continue; // an answer to nothing we asked: ignore
      this.offeredByInitiator.set(key, value);
      const answer = this.answerOffer(def, value);
      if (answer !== undefined) response.push([key, answer]);
    }

    // FirstBurstLength MUST NOT exceed MaxBurstLength (RFC 7143 §13.14).
    const fbl = Number(this.results.get('FirstBurstLength') ?? KEYS.get('FirstBurstLength')!.defaultValue);
    const mbl = Number(this.results.get('MaxBurstLength') ?? KEYS.get('MaxBurstLength')!.defaultValue);
    if (fbl > mbl) {
      this.results.set('FirstBurstLength', String(mbl));
      const i = response.findIndex(([k]) => k === 'FirstBurstLength');
      if (i >= 0) response[i] = ['FirstBurstLength', String(mbl)];
    }

    return response;
  }

  /**
   * The target's own declarations (MaxRecvDataSegmentLength), once per login. Made in the
   * operational stage, or with the reply that jumps straight to full feature phase.
   */
  declarations(): TextPair[] {
    if (this.ownMrdslDeclared) return [];
    this.ownMrdslDeclared = true;
    return [['MaxRecvDataSegmentLength', String(this.offer.maxRecvDataSegmentLength)]];
  }

  /** Our answer to a key the initiator offered, or undefined when none is owed. */
  private answerOffer(def: KeyDefinition, value: string): string | undefined {
    if (def.kind === 'declarative') return this.acceptDeclaration(def, value);
    if (this.irrelevant(def)) return 'Irrelevant';
    switch (def.kind) {
      case 'list': {
        const offered = value.split(',');
        if (offered.some((v) => !/^[A-Za-z0-9.\-+@_]+$/.test(v))) return 'Reject';
        const acceptable = this.ourValue(def).split(',');
        const pick = offered.find((v) => acceptable.includes(v));
        if (pick === undefined) return 'Reject';
        this.results.set(def.name, pick);
        return pick;
      }
      case 'boolean-and':
      case 'boolean-or': {
        const theirs = parseBoolean(value);
        if (theirs === undefined) return 'Reject';
        const ours = parseBoolean(this.ourValue(def))!;
        const result = def.kind === 'boolean-and' ? theirs && ours : theirs || ours;
        this.results.set(def.name, yesNo(result));
        return yesNo(result);
      }
      case 'numeric-min':
      case 'numeric-max': {
        const theirs = parseNumber(value);
        if (theirs === undefined || theirs < def.min! || theirs > def.max!) return 'Reject';
        const ours = Number(this.ourValue(def));
        const result = def.kind === 'numeric-min' ? Math.min(theirs, ours) : Math.max(theirs, ours);
        this.results.set(def.name, String(result));
        return String(result);
      }
    }
  }

  private acceptDeclaration(def: KeyDefinition, value: string): string | undefined {
    switch (def.name) {
      case 'MaxRecvDataSegmentLength': {
        const n = parseNumber(value);
        if (n === undefined || n < def.min! || n > def.max!) return 'Reject';
        this.initiatorMrdsl = n;
        return undefined;
      }
      case 'InitiatorName':
      case 'InitiatorAlias':
      case 'TargetName':
      case 'SessionType':
        this.results.set(def.name, value);
        return undefined;
      case 'OFMarkInt':
      case 'IFMarkInt':
        return 'Irrelevant'; // markers are never enabled
      default:
        // Target-declared keys (TargetAlias, TargetAddress, TargetPortalGroupTag) and
        // SendTargets outside a Text request are not for the initiator to send.
        return 'Irrelevant';
    }
  }

  /** Validate the initiator's answer to a key we offered. */
  private acceptAnswer(def: KeyDefinition, value: string, ours: string): void {
    if (SPECIAL_ANSWERS.has(value)) return; // the RFC default stays in force
    const bad = () =>
      new NegotiationError(`invalid answer ${def.name}=${value} to our offer ${ours}`, LoginStatus.InitiatorError);
    switch (def.kind) {
      case 'list': {
        if (!ours.split(',').includes(value)) throw bad();
        this.results.set(def.name, value);
        return;
      }
      case 'boolean-and':
      case 'boolean-or': {
        const theirs = parseBoolean(value);
        const mine = parseBoolean(ours)!;
        if (theirs === undefined) throw bad();
        const result = def.kind === 'boolean-and' ? theirs && mine : theirs || mine;
        if (result !== theirs) throw bad();
        this.results.set(def.name, value);
        return;
      }
      case 'numeric-min':
      case 'numeric-max': {
        const theirs = parseNumber(value);
        const mine = Number(ours);
        if (theirs === undefined || theirs < def.min! || theirs > def.max!) throw bad();
        if (def.kind === 'numeric-min' ? theirs > mine : theirs < mine) throw bad();
        this.results.set(def.name, String(theirs));
        return;
      }
      case 'declarative':
        return;
    }
  }

  /**
   * Keys the target must raise itself before the operational stage ends: those whose value
   * differs from the RFC default and that the initiator has not mentioned.
   */
  targetOffers(): TextPair[] {
    const out: TextPair[] = [];
    for (const def of KEYS.values()) {
      if (def.kind === 'declarative' || def.securityOnly) continue;
      if (this.offeredByInitiator.has(def.name) || this.results.has(def.name) || this.pending.has(def.name)) continue;
      if (this.irrelevant(def)) continue;
      const ours = this.ourValue(def);
      let offer: string | undefined;
      if (def.kind === 'list') {
        // Offer only when the default is unacceptable to us (e.g. digests required).
        if (!ours.split(',').includes(def.defaultValue)) offer = ours;
      } else if (def.name === 'iSCSIProtocolLevel' || def.name === 'TaskReporting') {
        continue; // initiator-originated only; the default serves
      } else if (ours !== def.defaultValue) {
        offer = ours;
      }
      if (offer !== undefined) {
        this.pending.set(def.name, offer);
        out.push([def.name, offer]);
      }
    }
    return out;
  }

  /** True while we await answers to our own offers. */
  awaitingAnswers(): boolean {
    return this.pending.size > 0;
  }

  value(name: string): string | undefined {
    return this.results.get(name);
  }

  private get(name: string): string {
    return this.results.get(name) ?? KEYS.get(name)!.defaultValue;
  }

  sessionParameters(): SessionParameters {
    return {
      sessionType: this.sessionType,
      initiatorName: this.results.get('InitiatorName') ?? '',
      initiatorAlias: this.results.get('InitiatorAlias') ?? '',
      targetName: this.results.get('TargetName') ?? '',
      maxConnections: Number(this.get('MaxConnections')),
      initialR2T: this.get('InitialR2T') === 'Yes',
      immediateData: this.get('ImmediateData') === 'Yes',
      maxBurstLength: Number(this.get('MaxBurstLength')),
      firstBurstLength: Number(this.get('FirstBurstLength')),
      defaultTime2Wait: Number(this.get('DefaultTime2Wait')),
      defaultTime2Retain: Number(this.get('DefaultTime2Retain')),
      maxOutstandingR2T: Number(this.get('MaxOutstandingR2T')),
      dataPDUInOrder: this.get('DataPDUInOrder') === 'Yes',
      dataSequenceInOrder: this.get('DataSequenceInOrder') === 'Yes',
      errorRecoveryLevel: Number(this.get('ErrorRecoveryLevel')),
      protocolLevel: Number(this.get('iSCSIProtocolLevel')),
    };
  }

  connectionParameters(): ConnectionParameters {
    return {
      headerDigest: this.get('HeaderDigest') === 'CRC32C',
      dataDigest: this.get('DataDigest') === 'CRC32C',
      maxRecvDataSegmentLength: this.offer.maxRecvDataSegmentLength,
      maxXmitDataSegmentLength: Math.min(this.initiatorMrdsl, this.offer.maxXmitDataSegmentLength),
    };
  }
}
