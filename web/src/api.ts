/**
 * The dashboard's one way to the server: the REST API with the session cookie (same origin),
 * form-encoded fields as gwcli sends them, and the session's CSRF token on every change.
 * A 401 means the session ended: back to the login page.
 */
let csrf = '';

export interface SessionInfo {
  readonly user: string;
  readonly csrf: string;
  readonly gateway: string;
}

export class ApiFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiFailure';
  }
}

function toLogin(): never {
  location.assign(`/ui/login?expired=1&next=${encodeURIComponent(location.pathname)}`);
  throw new ApiFailure(401, 'Your session has ended: log in again.');
}

export async function loadSession(): Promise<SessionInfo> {
  const r = await fetch('/ui/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (r.status === 401 || r.redirected) toLogin();
  const s = (await r.json()) as SessionInfo;
  csrf = s.csrf;
  return s;
}

export async function api<T = Record<string, unknown>>(method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, fields?: Record<string, string>): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: string | undefined;
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (fields) {
    body = new URLSearchParams(fields).toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  const r = await fetch(url, { method, headers, body, credentials: 'same-origin' });
  if (r.status === 401) toLogin();
  let json: unknown;
  try {
    json = await r.json();
  } catch {
    json = {};
  }
  if (!r.ok) {
    const m = (json as { message?: unknown }).message;
    throw new ApiFailure(r.status, typeof m === 'string' ? m : `HTTP ${r.status}`);
  }
  return json as T;
}

export async function logout(): Promise<void> {
  await fetch('/ui/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' });
  location.assign('/ui/login');
}

/** Path segments of the API are IQNs and pool/image names: encoded, never raw. */
export function seg(s: string): string {
  return encodeURIComponent(s);
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '–';
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}
