/**
 * The process-wide guard: an exception or promise rejection nobody handled must not end the
 * gateway (every other initiator would lose its sessions). Work done on behalf of one connection
 * runs inside its fault scope, so an error escaping from it is attributed to that connection,
 * which alone is closed; an error outside any scope is logged and the gateway carries on.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from './log';

/** Who to blame: the connection (or other unit) on whose behalf the failing code ran. */
export interface FaultOwner {
  readonly faultName: string;
  /** Close this owner after an internal error it caused. */
  fault(reason: string): void;
}

const scope = new AsyncLocalStorage<FaultOwner>();

/** Run `fn` (and everything it schedules: callbacks, timers, promises) on behalf of `owner`. */
export function runAs<T>(owner: FaultOwner, fn: () => T): T {
  return scope.run(owner, fn);
}

/**
 * Bind an event handler to `owner`: emitters call handlers outside the scope they were added
 * in. A synchronous throw leaves the scope before the process sees it, so it is handled here.
 */
export function boundTo<A extends unknown[]>(owner: FaultOwner, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) =>
    scope.run(owner, () => {
      try {
        fn(...args);
      } catch (error) {
        if (!installed) throw error;
        installed(error, 'uncaughtException');
      }
    });
}

export function currentOwner(): FaultOwner | undefined {
  return scope.getStore();
}

let installed: ((error: unknown, origin: string) => void) | undefined;

/** Install the guard once per process (idempotent). Returns the handler (for tests). */
export function installProcessGuard(log: Logger): (error: unknown, origin: string) => void {
  if (installed) return installed;
  const handle = (error: unknown, origin: string) => {
    const owner = currentOwner();
    if (owner) {
      log.error({ err: error, origin, owner: owner.faultName }, 'internal error: closing the connection it came from');
      try {
        owner.fault(`internal error (${origin})`);
      } catch (e) {
        log.error({ err: e }, 'closing after an internal error failed');
      }
      return;
    }
    log.error({ err: error, origin }, 'internal error outside any connection; the gateway carries on');
  };
  process.on('uncaughtException', (error, origin) => handle(error, origin));
  process.on('unhandledRejection', (reason) => handle(reason, 'unhandledRejection'));
  installed = handle;
  return handle;
}
