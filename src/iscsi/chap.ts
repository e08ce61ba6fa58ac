/**
 * CHAP for iSCSI login (RFC 7143 §12.1.3, RFC 1994 §4.1; algorithms 6-8 as IANA's "PPP
 * Authentication Algorithms" and the Linux target number them). One exchange per login:
 *
 *   I->T  CHAP_A=<A1,A2,...>                       (the initiator's preference order)
 *   T->I  CHAP_A=<A>  CHAP_I=<I>  CHAP_C=<C>         (fresh random challenge per login)
 *   I->T  CHAP_N=<N>  CHAP_R=<R>  [CHAP_I=<I'> CHAP_C=<C'>]   (the bracket: mutual CHAP)
 *   T->I  [CHAP_N=<N'> CHAP_R=<R'>]
 *
 * R = H(I || secret || C). A wrong user and a wrong password fail identically (same status,
 * same message, same work done), and secrets never appear in an error message.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { LoginStatus } from '../pdu/opcodes';
import { TextPair } from '../pdu/text';
import { AuthContext, AuthError, AuthExchange, AuthMethodHandler, AuthStepResult } from './auth';

/** CHAP_A values and the digests behind them. */
export const CHAP_ALGORITHMS: ReadonlyMap<number, string> = new Map([
  [5, 'md5'],
  [6, 'sha1'],
  [7, 'sha256'],
  [8, 'sha3-256'],
]);

/** Challenge length we send (RFC 7143 §12.1.3 asks for at least the digest's strength; 16 B minimum). */
export const CHALLENGE_LENGTH = 32;
/** Longest binary value we accept from an initiator (challenge or response). */
export const MAX_BINARY_LENGTH = 1024;
/** Shortest initiator challenge we accept for mutual CHAP (as LIO: 16 bytes of randomness). */
export const MIN_INITIATOR_CHALLENGE = 16;

export interface ChapCredentials {
  /** The name the initiator proves (CHAP_N) and its secret. */
  readonly username: string;
  readonly password: string;
  /** Mutual CHAP: the name and secret the target proves to the initiator. */
  readonly mutualUsername?: string;
  readonly mutualPassword?: string;
}

/** Why a CHAP exchange failed, for logs (never contains a secret or the initiator's response). */
export class ChapError extends AuthError {
  constructor(message: string, status: LoginStatus = LoginStatus.AuthenticationFailure) {
    super(message, status);
    this.name = 'ChapError';
  }
}

/** RFC 7143 §6.1: binary values as 0x<hex> or 0b<base64>. Throws ChapError on anything else. */
export function decodeBinary(value: string, what: string): Buffer {
  const prefix = value.slice(0, 2).toLowerCase();
  const body = value.slice(2);
  let out: Buffer;
  if (prefix === '0x') {
    if (body.length === 0 || !/^[0-9a-fA-F]+$/.test(body)) throw new ChapError(`${what} is not a hex value`, LoginStatus.InitiatorError);
    if (body.length > 2 * MAX_BINARY_LENGTH + 1) throw new ChapError(`${what} is too long`, LoginStatus.InitiatorError);
    out = Buffer.from(body.length % 2 === 1 ? `0${body}` : body, 'hex');
  } else if (prefix === '0b') {
    if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
      throw new ChapError(`${what} is not a base64 value`, LoginStatus.InitiatorError);
    }
    if (body.length > Math.ceil(MAX_BINARY_LENGTH / 3) * 4) throw new ChapError(`${what} is too long`, LoginStatus.InitiatorError);
    out = Buffer.from(body, 'base64');
  } else {
    throw new ChapError(`${what} must be a 0x (hex) or 0b (base64) value`, LoginStatus.InitiatorError);
  }
  return out;
}

export function encodeHex(b: Buffer): string {
  return `0x${b.toString('hex')}`;
}

/** CHAP_I: a number 0..255, decimal or 0x hex (RFC 7143 §6.1 numerical values). */
export function decodeIdentifier(value: string): number {
  let n: number;
  if (/^(0|[1-9][0-9]{0,2})$/.test(value)) n = Number(value);
  else if (/^0[xX][0-9a-fA-F]{1,2}$/.test(value)) n = parseInt(value.slice(2), 16);
  else throw new ChapError('CHAP_I is not a number', LoginStatus.InitiatorError);
  if (n > 255) throw new ChapError('CHAP_I is outside 0..255', LoginStatus.InitiatorError);
  return n;
}

/** RFC 1994 §4.1: Response = H(Identifier || secret || Challenge). */
export function chapResponse(algorithm: number, identifier: number, secret: string, challenge: Buffer): Buffer {
  const digest = CHAP_ALGORITHMS.get(algorithm);
  if (!digest) throw new RangeError(`unsupported CHAP algorithm ${algorithm}`);
  return createHash(digest).update(Buffer.from([identifier])).update(secret, 'utf8').update(challenge).digest();
}

/** Pick the first algorithm of the initiator's list that we support (its preference wins). */
export function selectAlgorithm(offer: string, allowed: readonly number[]): number | undefined {
  const values = offer.split(',');
  if (values.length > 32) throw new ChapError('CHAP_A list too long', LoginStatus.InitiatorError);
  for (const v of values) {
    if (!/^[0-9]{1,5}$/.test(v)) continue; // unknown values are skipped, as RFC 7143 §6.2 lists
    const a = Number(v);
    if (allowed.includes(a)) return a;
  }
  return undefined;
}

/** Constant-time equality of two strings (via digests, so the lengths leak nothing either). */
function sameString(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}

/**
 * Challenges recently sent by this gateway (bounded). An initiator that offers one of them as
 * its own mutual challenge is trying to make us compute the answer for it (reflection).
 */
export class ChallengeMemory {
  private readonly sent = new Set<string>();
  constructor(private readonly capacity = 4096) {}

  remember(challenge: Buffer): void {
    this.sent.add(challenge.toString('hex'));
    if (this.sent.size > this.capacity) this.sent.delete(this.sent.values().next().value as string);
  }

  wasSent(challenge: Buffer): boolean {
    return this.sent.has(challenge.toString('hex'));
  }
}

export interface ChapOptions {
  /** CHAP_A values we accept. Default: 5, 6, 7, 8. */
  readonly algorithms?: readonly number[];
  readonly challengeLength?: number;
  /** Shared between all logins of a gateway (reflection check across connections). */
  readonly memory?: ChallengeMemory;
  /** Randomness source (tests give a fixed one for vectors). */
  readonly random?: (n: number) => Buffer;
}

const DEFAULT_MEMORY = new ChallengeMemory();

/** A CHAP method for one login, bound to the credentials that login must prove. */
export function chapMethod(credentials: ChapCredentials, options: ChapOptions = {}): AuthMethodHandler {
  return { name: 'CHAP', start: (context) => new ChapExchange(credentials, options, context) };
}

const enum Phase {
  AwaitAlgorithm,
  AwaitResponse,
  Done,
}

export class ChapExchange implements AuthExchange {
  private phase = Phase.AwaitAlgorithm;
  private algorithm = 0;
  private identifier = 0;
  private challenge: Buffer = Buffer.alloc(0);
  private readonly memory: ChallengeMemory;

  constructor(
    private readonly credentials: ChapCredentials,
    private readonly options: ChapOptions,
    // The context is kept for symmetry with other methods; CHAP needs only the credentials.
    _context: AuthContext,
  ) {
    this.memory = options.memory ?? DEFAULT_MEMORY;
  }

  step(keys: ReadonlyMap<string, string>): AuthStepResult {
    for (const k of keys.keys()) {
      if (!/^CHAP_[AICNR]$/.test(k)) throw new ChapError(`unexpected key ${k.slice(0, 64)} during CHAP`, LoginStatus.InitiatorError);
    }
    switch (this.phase) {
      case Phase.AwaitAlgorithm:
        return this.onAlgorithm(keys);
      case Phase.AwaitResponse:
        return this.onResponse(keys);
      default:
        if (keys.size === 0) return { response: [], done: true }; // the initiator moves on
        throw new ChapError('CHAP keys after the exchange completed', LoginStatus.InitiatorError);
    }
  }

  private onAlgorithm(keys: ReadonlyMap<string, string>): AuthStepResult {
    if (keys.size === 0) return { response: [], done: false }; // CHAP_A comes in the next request
    const offer = keys.get('CHAP_A');
    if (offer === undefined || keys.size !== 1) {
      throw new ChapError('CHAP keys out of order: CHAP_A must come first and alone', LoginStatus.InitiatorError);
    }
    const allowed = this.options.algorithms ?? [...CHAP_ALGORITHMS.keys()];
    const algorithm = selectAlgorithm(offer, allowed);
    if (algorithm === undefined) {
      throw new ChapError(`no supported CHAP algorithm in CHAP_A=${offer.slice(0, 64)}`, LoginStatus.AuthenticationFailure);
    }
    this.algorithm = algorithm;
    this.identifier = randomInt(256);
    this.challenge = (this.options.random ?? randomBytes)(this.options.challengeLength ?? CHALLENGE_LENGTH);
    this.memory.remember(this.challenge);
    this.phase = Phase.AwaitResponse;
    return {
      response: [['CHAP_A', String(algorithm)], ['CHAP_I', String(this.identifier)], ['CHAP_C', encodeHex(this.challenge)]],
      done: false,
    };
  }

  private onResponse(keys: ReadonlyMap<string, string>): AuthStepResult {
    if (keys.has('CHAP_A')) throw new ChapError('CHAP keys out of order: CHAP_A repeated', LoginStatus.InitiatorError);
    const name = keys.get('CHAP_N');
    const responseValue = keys.get('CHAP_R');
    if (name === undefined) throw new ChapError('CHAP_N missing', LoginStatus.MissingParameter);
    if (responseValue === undefined) throw new ChapError('CHAP_R missing', LoginStatus.MissingParameter);
    if (Buffer.byteLength(name) > 255) throw new ChapError('CHAP_N too long', LoginStatus.InitiatorError);
    const response = decodeBinary(responseValue, 'CHAP_R');
    const mutualId = keys.get('CHAP_I');
    const mutualChallengeValue = keys.get('CHAP_C');
    if ((mutualId === undefined) !== (mutualChallengeValue === undefined)) {
      throw new ChapError('mutual CHAP needs both CHAP_I and CHAP_C', LoginStatus.InitiatorError);
    }
    // Decode the mutual part before judging the response: malformed input is an initiator error.
    const mutual = mutualId !== undefined
      ? { id: decodeIdentifier(mutualId), challenge: decodeBinary(mutualChallengeValue!, 'CHAP_C') }
      : undefined;
    this.phase = Phase.Done;

    const { username, password } = this.credentials;
    const expected = chapResponse(this.algorithm, this.identifier, password, this.challenge);
    // Both comparisons always run, so a wrong user costs what a wrong password costs.
    const sameLength = response.length === expected.length;
    const responseOk = timingSafeEqual(sameLength ? response : expected, expected) && sameLength;
    const nameOk = sameString(name, username);
    if (!(responseOk && nameOk)) throw new ChapError('CHAP authentication failed');
    if (!mutual) return { response: [], done: true };

    const { mutualUsername, mutualPassword } = this.credentials;
    if (!mutualUsername || !mutualPassword) {
      throw new ChapError('the initiator asked for mutual CHAP but the target has no mutual credentials');
    }
    if (mutualPassword === password) {
      throw new ChapError('refusing mutual CHAP: the target secret equals the initiator secret');
    }
    if (mutual.challenge.length < MIN_INITIATOR_CHALLENGE) {
      throw new ChapError(`mutual CHAP challenge shorter than ${MIN_INITIATOR_CHALLENGE} bytes`, LoginStatus.InitiatorError);
    }
    if (mutual.challenge.equals(this.challenge) || this.memory.wasSent(mutual.challenge)) {
      throw new ChapError('mutual CHAP challenge reflects a challenge of the target');
    }
    const answer = chapResponse(this.algorithm, mutual.id, mutualPassword, mutual.challenge);
    const pairs: TextPair[] = [['CHAP_N', mutualUsername], ['CHAP_R', encodeHex(answer)]];
    return { response: pairs, done: true };
  }
}
