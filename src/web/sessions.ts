/**
 * Server-side sessions of the web dashboard: a random id in an HttpOnly, SameSite=Strict cookie
 * names an entry here that holds the user and the session's CSRF token. Server-side (not a
 * signed or encrypted cookie) so that logout and expiry really end a session: a copied cookie
 * is worth nothing afterwards. The table is bounded; the oldest session goes first.
 */
import * as crypto from 'node:crypto';

export const SESSION_COOKIE = 'igw_session';
/** A session unused this long ends. */
export const IDLE_TIMEOUT_MS = 30 * 60_000;
/** And every session ends this long after login, used or not. */
export const ABSOLUTE_TIMEOUT_MS = 8 * 60 * 60_000;
const MAX_SESSIONS = 256;

export interface WebSession {
  readonly id: string;
  readonly user: string;
  /** Required (X-CSRF-Token) on every state-changing request the cookie authenticates. */
  readonly csrf: string;
  readonly created: number;
  lastUsed: number;
}

export interface SessionTimeouts {
  readonly idleMs: number;
  readonly absoluteMs: number;
}

/** Constant-time comparison of two strings of any length. */
export function sameSecret(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

export class WebSessions {
  private readonly sessions = new Map<string, WebSession>();

  constructor(
    private readonly timeouts: SessionTimeouts = { idleMs: IDLE_TIMEOUT_MS, absoluteMs: ABSOLUTE_TIMEOUT_MS },
    private readonly now: () => number = Date.now,
  ) {}

  create(user: string): WebSession {
    this.sweep();
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    const t = this.now();
    const s: WebSession = {
      id: crypto.randomBytes(32).toString('base64url'),
      user,
      csrf: crypto.randomBytes(32).toString('base64url'),
      created: t,
      lastUsed: t,
    };
    this.sessions.set(s.id, s);
    return s;
  }

  /** The live session of a cookie value (touching it), or undefined. */
  get(id: string | undefined): WebSession | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const t = this.now();
    if (this.expired(s, t)) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastUsed = t;
    return s;
  }

  destroy(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private expired(s: WebSession, t: number): boolean {
    return t - s.lastUsed > this.timeouts.idleMs || t - s.created > this.timeouts.absoluteMs;
  }

  private sweep(): void {
    const t = this.now();
    for (const [id, s] of this.sessions) if (this.expired(s, t)) this.sessions.delete(id);
  }
}

/**
 * Failed dashboard logins per caller address: after FREE_FAILURES within WINDOW_MS further
 * attempts are refused until the window has passed (password guessing through the form).
 */
export class LoginLimiter {
  static readonly FREE_FAILURES = 5;
  static readonly WINDOW_MS = 60_000;
  private readonly failures = new Map<string, number[]>();
  /** Every failed dashboard login since start (the overview's alert). */
  total = 0;
  last: { at: number; address: string } | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  blocked(address: string): boolean {
    return this.recent(address).length >= LoginLimiter.FREE_FAILURES;
  }

  failed(address: string): void {
    const list = this.recent(address);
    list.push(this.now());
    this.failures.set(address, list);
    if (this.failures.size > 4096) this.failures.delete(this.failures.keys().next().value as string);
    this.total++;
    this.last = { at: this.now(), address };
  }

  succeeded(address: string): void {
    this.failures.delete(address);
  }

  private recent(address: string): number[] {
    const t = this.now();
    return (this.failures.get(address) ?? []).filter((at) => t - at < LoginLimiter.WINDOW_MS);
  }
}
