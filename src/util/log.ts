/**
 * Structured logging (pino). One root logger; layers take a child with their own bindings
 * (e.g. { conn: 12 }) so every line says where it came from.
 */
import pino from 'pino';

export type Logger = pino.Logger;

let root: Logger | undefined;

/**
 * The process-wide logger, JSON lines on stderr (stdout stays for what a command prints for
 * people). Level from ISCSI_GATEWAY_LOG (default 'info'; 'silent' turns it off).
 */
export function rootLogger(): Logger {
  if (!root) {
    root = pino({ level: process.env.ISCSI_GATEWAY_LOG ?? 'info', base: undefined }, pino.destination({ fd: 2, sync: true }));
  }
  return root;
}

/** A logger that discards everything (unit tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
