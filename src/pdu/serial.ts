/**
 * Serial number arithmetic for 32-bit sequence numbers (RFC 1982), as CmdSN, StatSN, DataSN
 * comparisons require (RFC 7143 §4.2.2.1). Never compare sequence numbers with < directly.
 */

const HALF = 0x80000000;

/** a < b in serial arithmetic. */
export function serialLt(a: number, b: number): boolean {
  const d = (b - a) >>> 0;
  return d !== 0 && d < HALF;
}

export function serialLe(a: number, b: number): boolean {
  return a >>> 0 === b >>> 0 || serialLt(a, b);
}

export function serialGt(a: number, b: number): boolean {
  return serialLt(b, a);
}

export function serialAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Is x within [lo, hi] in serial arithmetic? */
export function serialInWindow(x: number, lo: number, hi: number): boolean {
  return serialLe(lo, x) && serialLe(x, hi);
}
