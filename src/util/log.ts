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
