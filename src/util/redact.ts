/**
 * Secrets never reach a log line: field names whose values pino replaces wherever they occur
 * in a logged object (CHAP and API credentials, HTTP Authorization headers), and a scrubber for
 * free text (messages, error messages) that might quote `password=...` or a CHAP exchange.
 */

export const REDACTED = '[Redacted]';

/**
 * Field names that hold secrets, or material for an offline attack on one (a CHAP challenge
 * with its response). ceph-iscsi's config names (password, mutual_password, api_password),
 * iSCSI's CHAP keys, HTTP credentials and TLS keys.
 */
export const SECRET_KEYS: readonly string[] = [
  'password', 'mutual_password', 'api_password', 'passwd', 'secret', 'mutual_secret', 'chap_secret', 'chap_password',
  'CHAP_R', 'CHAP_C', 'authorization', 'cookie', 'ssl_key', 'private_key',
];

/** pino `redact.paths`: each secret key at the top level and up to three objects deep. */
export function redactPaths(): string[] {
  const out: string[] = [];
  for (const k of SECRET_KEYS) out.push(k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`);
  return out;
}

const KEYS = SECRET_KEYS.join('|');
/** `key = "value with spaces"` (the quotes kept). */
const KEY_QUOTED = new RegExp(`\\b(${KEYS})(["']?\\s*[=:]\\s*)(["'])(?!\\[Redacted\\])(?:\\\\.|(?!\\3).)*\\3`, 'gi');
/** `key=value` up to a separator; an HTTP scheme ("Basic ...") is part of the value. */
const KEY_VALUE = new RegExp(`\\b(${KEYS})(["']?\\s*[=:]\\s*)(?!["'\\[])((?:(?:basic|bearer|digest)\\s+)?[^\\s"',;&)]+)`, 'gi');
const AUTH_SCHEME = /\b(basic|bearer|digest)\s+[A-Za-z0-9+/=._~-]{8,}/gi;

/** Replace the value of every `secret_key=value` / `secret_key: value` and every HTTP credential in a text. */
export function scrubSecrets(text: string): string {
  return text.replace(KEY_QUOTED, `$1$2$3${REDACTED}$3`).replace(KEY_VALUE, `$1$2${REDACTED}`).replace(AUTH_SCHEME, `$1 ${REDACTED}`);
}
