/**
 * Failed-login accounting and per-address throttling. Guessing a CHAP secret, an ACL entry or a
 * target name takes many logins; after a few failures an address waits before each further
 * login is looked at, doubling up to a cap. Only new logins from that address wait: its
 * established sessions and other addresses are not affected. Memory is bounded (addresses are
 * forgotten after a quiet period, the oldest first when the table is full).
 */
import { LoginStatus } from '../pdu/opcodes';

export interface LoginThrottleOptions {
  /** Failures an address may have before its logins are delayed. */
  readonly freeFailures: number;
  /** Delay after the first throttled failure, doubled per further failure. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** An address without failures for this long starts afresh. */
  readonly forgetAfterMs: number;
  /** Addresses remembered at most. */
  readonly maxAddresses: number;
  /** Logins of one address that may wait at the same time; more are refused at once. */
  readonly maxWaiting: number;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleOptions = {
  freeFailures: 5,
  baseDelayMs: 250,
  maxDelayMs: 8000,
  forgetAfterMs: 10 * 60_000,
  maxAddresses: 10_000,
  maxWaiting: 4,
};

const THROTTLE_KEYS: Record<string, keyof LoginThrottleOptions> = {
  free: 'freeFailures', base: 'baseDelayMs', max: 'maxDelayMs', forget: 'forgetAfterMs', addresses: 'maxAddresses', waiting: 'maxWaiting',
};

/**
 * Tuning from text, e.g. "free=5,base=250,max=8000" (env ISCSI_GATEWAY_LOGIN_THROTTLE); unset
 * keys keep their defaults. Throws a RangeError naming the bad item.
 */
export function parseLoginThrottle(text: string | undefined): LoginThrottleOptions {
  const out: Record<keyof LoginThrottleOptions, number> = { ...DEFAULT_LOGIN_THROTTLE };
  if (!text) return out;
  for (const item of text.split(',')) {
    const m = /^\s*([a-z]+)=([0-9]{1,9})\s*$/.exec(item);
    const key = m ? THROTTLE_KEYS[m[1]] : undefined;
    if (!m || !key) throw new RangeError(`invalid login throttle setting "${item}" (use ${Object.keys(THROTTLE_KEYS).map((k) => `${k}=N`).join(',')})`);
    out[key] = Number(m[2]);
  }
  return out;
}

/** Counters of failed logins by class (for metrics). Contains no names and no secrets. */
export interface LoginFailureCounters {
  /** 0x0201: CHAP failed, or authentication required but not offered. */
  authentication: number;
  /** 0x0202: initiator not allowed on the target (ACL). */
  authorization: number;
  /** 0x0203: no such target. */
  notFound: number;
  /** Every other failure status (initiator errors, target errors). */
  other: number;
  /** Logins that had to wait because their address failed too often. */
  delayed: number;
  /** Logins refused outright because too many from their address were already waiting. */
  refused: number;
}

interface AddressRecord {
  failures: number;
  lastFailure: number;
  /** Earliest time the next login of this address is looked at. */
  notBefore: number;
  waiting: number;
}

/** Statuses that count towards throttling: the ones a guesser provokes. */
const GUESSING: ReadonlySet<LoginStatus> = new Set([
  LoginStatus.AuthenticationFailure,
  LoginStatus.AuthorizationFailure,
  LoginStatus.NotFound,
]);

export class LoginThrottle {
  private readonly addresses = new Map<string, AddressRecord>();
  readonly counters: LoginFailureCounters = { authentication: 0, authorization: 0, notFound: 0, other: 0, delayed: 0, refused: 0 };

  constructor(
    private readonly options: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A login from `address` starts: how long it must wait (ms, 0 = go ahead), or 'refuse'.
   * A positive wait must be followed by `waited(address)` when it is over.
   */
  admit(address: string): number | 'refuse' {
    const rec = this.record(address, false);
    if (!rec) return 0;
    const wait = rec.notBefore - this.now();
    if (wait <= 0) return 0;
    if (rec.waiting >= this.options.maxWaiting) {
      this.counters.refused++;
      return 'refuse';
    }
    rec.waiting++;
    this.counters.delayed++;
    // Logins waiting together are spaced out, not released at once.
    rec.notBefore += this.delayFor(rec.failures);
    return wait;
  }

  waited(address: string): void {
    const rec = this.addresses.get(address);
    if (rec && rec.waiting > 0) rec.waiting--;
  }

  /** A login from `address` failed with `status`. */
  failed(address: string, status: LoginStatus): void {
    switch (status) {
      case LoginStatus.AuthenticationFailure: this.counters.authentication++; break;
      case LoginStatus.AuthorizationFailure: this.counters.authorization++; break;
      case LoginStatus.NotFound: this.counters.notFound++; break;
      default: this.counters.other++;
    }
    if (!GUESSING.has(status)) return;
    const rec = this.record(address, true)!;
    const now = this.now();
    rec.failures++;
    rec.lastFailure = now;
    this.addresses.delete(address); // keep the table ordered by last failure
    this.addresses.set(address, rec);
    if (rec.failures > this.options.freeFailures) rec.notBefore = Math.max(rec.notBefore, now + this.delayFor(rec.failures));
  }

  /** Current delay (ms) a new login from `address` would wait; for tests and status output. */
  pendingDelay(address: string): number {
    const rec = this.record(address, false);
    return rec ? Math.max(0, rec.notBefore - this.now()) : 0;
  }

  get trackedAddresses(): number {
    return this.addresses.size;
  }

  private delayFor(failures: number): number {
    const over = failures - this.options.freeFailures;
    if (over <= 0) return 0;
    return Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** Math.min(over - 1, 30));
  }

  private record(address: string, create: boolean): AddressRecord | undefined {
    const now = this.now();
    let rec = this.addresses.get(address);
    if (rec && rec.waiting === 0 && now - rec.lastFailure > this.options.forgetAfterMs) {
      this.addresses.delete(address);
      rec = undefined;
    }
    if (rec || !create) return rec;
    if (this.addresses.size >= this.options.maxAddresses) {
      // Forget the oldest address (Map order: the least recently failed first).
      this.addresses.delete(this.addresses.keys().next().value as string);
    }
    rec = { failures: 0, lastFailure: now, notBefore: 0, waiting: 0 };
    this.addresses.set(address, rec);
    return rec;
  }
}
