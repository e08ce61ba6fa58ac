/**
 * Structured logging (pino). One root logger; layers take a child with their own bindings
 * (e.g. { conn: 12 }) so every line says where it came from.
 */
import pino from 'pino';
import { REDACTED, redactPaths, scrubSecrets } from './redact';

export type Logger = pino.Logger;

let root: Logger | undefined;

/**
 * The process-wide logger, JSON lines on stderr (stdout stays for what a command prints for
 * people). Level from ISCSI_GATEWAY_LOG (default 'info'; 'silent' turns it off).
 */
export function rootLogger(): Logger {
  if (!root) {
    root = pino({ level: process.env.ISCSI_GATEWAY_LOG ?? 'info', base: undefined, ...SECRET_SAFE }, pino.destination({ fd: 2, sync: true }));
  }
  return root;
}

/**
 * Secrets never reach a log line (src/util/redact.ts): secret fields of logged objects are
 * censored, and messages and error messages are scrubbed of `password=...`-like text.
 */
export const SECRET_SAFE: pino.LoggerOptions = {
  redact: { paths: redactPaths(), censor: REDACTED },
  serializers: {
    err: (e: Error) => {
      const s = pino.stdSerializers.err(e);
      s.message = scrubSecrets(s.message);
      if (s.stack) s.stack = scrubSecrets(s.stack);
      return s;
    },
  },
  hooks: {
    logMethod(args, method) {
      const a = args as unknown[];
      for (let i = 0; i < a.length; i++) if (typeof a[i] === 'string') a[i] = scrubSecrets(a[i] as string);
      return method.apply(this, args);
    },
  },
};

/** A logger that discards everything (unit tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Rate limit for log lines a peer can trigger (Rejects, Data-Out errors, protocol errors,
 * refused logins): a flood of bad PDUs must not turn into a flood of synchronous writes that
 * blocks the event loop. Per kind, at most `burst` lines per `intervalMs`; past that lines are
 * counted, and one summary line says how many were suppressed.
 */
export class RateLimitedLog {
  private readonly kinds = new Map<string, { start: number; count: number; suppressed: number; timer?: NodeJS.Timeout }>();

  constructor(
    private readonly fallback: Logger,
    private readonly burst = 20,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Log a warning of `kind` through `log` (default: this limiter's logger) unless over the rate; true if written. */
  warn(kind: string, obj: Record<string, unknown>, msg: string, log: Logger = this.fallback): boolean {
    const t = this.now();
    let k = this.kinds.get(kind);
    if (!k || t - k.start >= this.intervalMs) {
      if (k) this.flush(kind, k);
      k = { start: t, count: 0, suppressed: 0 };
      this.kinds.set(kind, k);
    }
    if (k.count < this.burst) {
      k.count++;
      log.warn(obj, msg);
      return true;
    }
    k.suppressed++;
    if (!k.timer) {
      const entry = k;
      entry.timer = setTimeout(() => this.flush(kind, entry), Math.max(1, entry.start + this.intervalMs - t));
      entry.timer.unref();
    }
    return false;
  }

  /** Lines of `kind` suppressed in the current interval. */
  suppressed(kind: string): number {
    return this.kinds.get(kind)?.suppressed ?? 0;
  }

  private flush(kind: string, k: { suppressed: number; timer?: NodeJS.Timeout }): void {
    if (k.timer) clearTimeout(k.timer);
    k.timer = undefined;
    if (k.suppressed > 0) this.fallback.warn({ kind, suppressed: k.suppressed }, `${k.suppressed} more "${kind}" messages suppressed in ${this.intervalMs / 1000} s`);
    k.suppressed = 0;
  }
}

let peerEventLog: RateLimitedLog | undefined;

/** The process-wide limiter for peer-triggered log lines (one budget per kind for all connections). */
export function peerEvents(): RateLimitedLog {
  if (!peerEventLog) peerEventLog = new RateLimitedLog(rootLogger());
  return peerEventLog;
}
