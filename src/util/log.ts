/**
 * Structured logging (pino). One root logger; layers take a child with their own bindings
 * (e.g. { conn: 12 }) so every line says where it came from.
 */
import pino from 'pino';

export type Logger = pino.Logger;

let root: Logger | undefined;

/** The process-wide logger. Level from ISCSI_GATEWAY_LOG (default 'info'; tests use 'silent'). */
export function rootLogger(): Logger {
  if (!root) {
    root = pino({ level: process.env.ISCSI_GATEWAY_LOG ?? 'info', base: undefined });
  }
  return root;
}

/** A logger that discards everything (unit tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
