/**
 * Text key=value codec for Login and Text PDUs (RFC 7143 §6.1, §6.2). A data segment holds
 * null-terminated "key=value" strings; keys are case-sensitive, at most 63 bytes of
 * [A-Za-z0-9.-+@_]; values are UTF-8.
 */

export type TextPair = readonly [key: string, value: string];

export class TextFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TextFormatError';
  }
}

const KEY_RE = /^[A-Za-z0-9.\-+@_]{1,63}$/;
/** RFC 7143 §6.1: values are limited to 255 bytes unless a key says otherwise (CHAP_C/R allow more). */
export const MAX_TEXT_VALUE_LENGTH = 8192;

/**
 * Parse a complete (reassembled) text data segment. Tolerates a missing final NUL and NUL
 * padding; rejects malformed pairs, bad key names and over-long values.
 */
export function parseText(data: Buffer): TextPair[] {
  const pairs: TextPair[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) {
      const item = data.toString('utf8', start, end);
      const eq = item.indexOf('=');
      if (eq < 0) throw new TextFormatError(`text item "${truncate(item)}" has no '='`);
      const key = item.slice(0, eq);
      const value = item.slice(eq + 1);
      if (!KEY_RE.test(key)) throw new TextFormatError(`invalid key name "${truncate(key)}"`);
      if (Buffer.byteLength(value) > MAX_TEXT_VALUE_LENGTH) throw new TextFormatError(`value of ${key} is too long`);
      pairs.push([key, value]);
    }
    start = end + 1;
  }
  return pairs;
}

export function encodeText(pairs: readonly TextPair[]): Buffer {
  if (pairs.length === 0) return Buffer.alloc(0);
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
