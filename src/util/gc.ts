/**
 * Ask V8 for a full garbage collection. Buffers the pool lets go of are only returned to the
 * system when V8 collects them, and an idle gateway may not collect for minutes: after a burst
 * (or after abusive peers are gone) memory would stay high. Used rarely: only after a trim that
 * released a large amount. Node exposes gc() only behind --expose-gc; the flag can be set at
 * run time and the function taken from a fresh context.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

let collect: (() => void) | null | undefined;

export function collectGarbage(): boolean {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const fn: unknown = vm.runInNewContext('gc');
      collect = typeof fn === 'function' ? () => (fn as () => void)() : null;
    } catch {
      collect = null;
    }
  }
  if (!collect) return false;
  collect();
  return true;
}
