/** Helpers shared by the node kinds: argument checks, credential fields, hints for API refusals. */
import { ApiCallError, Fields } from '../api-client';
import { Args, CliError, CommandContext, didYouMean } from '../node';
import type { ControlLimit } from '../model';

export function arg(args: Args, name: string): string | undefined {
  const v = args.named[name];
  return v === undefined || v === '' ? undefined : v;
}

export function need(args: Args, name: string, usage: string): string {
  const v = arg(args, name);
  if (v === undefined) throw new CliError(`missing ${name}: usage: ${usage}`, 'usage');
  return v;
}

export function bool(args: Args, name: string, dflt: boolean): boolean {
  const v = arg(args, name);
  if (v === undefined) return dflt;
  if (v.toLowerCase() === 'true') return true;
  if (v.toLowerCase() === 'false') return false;
  throw new CliError(`${name} must be true or false, not '${v}'`, 'usage');
}

/** Upper case is accepted and normalised, as rtslib's normalize_wwn does. */
export function iqn(v: string): string {
  return v.trim().toLowerCase();
}

const HINTS: Array<[RegExp, string]> = [
  [/^Invalid (mutual )?username/, "use 8-64 characters: letters, digits, '.', ':', '@', '_', '-'"],
  [/^Invalid (mutual )?password/, "use 12-16 characters: letters, digits, '@', '-', '_', '/'"],
  [/is not valid for iSCSI|Invalid IQN/i, "an IQN looks like iqn.YYYY-MM.reversed.domain[:name] (no spaces or '_'), e.g. iqn.2003-01.org.linux-iscsi.host:target"],
  [/gateway\(s\) unavailable|not available to/, 'check that every gateway daemon is running and reachable'],
];

/** The API's refusal with a hint naming what would be right, as a CliError. */
export function refused(e: unknown): never {
  if (e instanceof ApiCallError) {
    const hint = HINTS.find(([re]) => re.test(e.message));
    throw new CliError(hint ? `${e.message} (${hint[1]})` : e.message, 'refused');
  }
  throw e;
}

export async function call(ctx: CommandContext, method: string, path: string, fields?: Fields): Promise<Record<string, unknown>> {
  try {
    return await ctx.api.ok(method, path, fields);
  } catch (e) {
    return refused(e);
  }
}

export const AUTH_PARAMS = ['username', 'password', 'mutual_username', 'mutual_password'] as const;

/** username= password= [mutual_username= mutual_password=] or nochap → the four form fields. */
export function credentials(args: Args, usage: string): Fields {
  const first = args.named.username;
  if (first === 'nochap' && !arg(args, 'password')) return { username: '', password: '', mutual_username: '', mutual_password: '' };
  const f: Fields = {};
  for (const k of AUTH_PARAMS) f[k] = args.named[k] ?? '';
  if (!f.username && !f.password && !f.mutual_username && !f.mutual_password) {
    throw new CliError(`To set or reset authentication, specify either ${usage} or nochap`, 'usage');
  }
  return f;
}

/** Check `attr value` against the API's limits table before sending; names the valid range. */
export function checkControl(kind: string, attr: string, value: string, limits: Record<string, ControlLimit>): void {
  const names = Object.keys(limits).sort();
  if (names.length && !(attr in limits)) {
    throw new CliError(`'${attr}' is not a ${kind} setting.${didYouMean(attr, names)} Supported: ${names.join(', ')}`, 'usage');
  }
  const l = limits[attr];
  if (!l || value === '') return;
  if (l.type === 'int') {
    if (!/^-?\d+$/.test(value)) throw new CliError(`${attr} must be an integer${l.min !== undefined ? ` in ${l.min}-${l.max}` : ''}, not '${value}'`, 'usage');
    const n = Number(value);
    if ((l.min !== undefined && n < l.min) || (l.max !== undefined && n > l.max)) throw new CliError(`${attr} ${n} is out of range: valid ${l.min}-${l.max}`, 'usage');
  } else if (l.type === 'bool') {
    if (!/^(true|false|yes|no|1|0)$/i.test(value)) throw new CliError(`${attr} must be true or false (or 1/0), not '${value}'`, 'usage');
  } else if (l.type === 'enum' && l.values && !l.values.map(String).includes(value)) {
    throw new CliError(`${attr} must be one of ${l.values.join(', ')}, not '${value}'`, 'usage');
  }
}

/** Values TAB offers for a setting. */
export function controlValues(l: ControlLimit | undefined): string[] {
  if (!l) return [];
  if (l.type === 'bool') return ['true', 'false'];
  if (l.type === 'enum') return (l.values ?? []).map(String);
  if (l.type === 'int' && l.min !== undefined) return [String(l.min), String(l.max)];
  return [];
}

/** control JSON value: numbers as numbers, booleans as booleans. */
export function controlJson(attr: string, value: string, limits: Record<string, ControlLimit>): string {
  const l = limits[attr];
  let v: unknown = value;
  if (l?.type === 'int' && /^-?\d+$/.test(value)) v = Number(value);
  else if (l?.type === 'bool') v = /^(true|yes|1)$/i.test(value);
  else if (l?.type === 'enum') v = l.values?.find((x) => String(x) === value) ?? value;
  else if (/^-?\d+$/.test(value)) v = Number(value);
  return JSON.stringify({ [attr]: v });
}

export function authSummary(a: { username: string; mutual_username: string } | undefined): string {
  if (!a?.username) return 'None';
  return a.mutual_username ? 'CHAP_MUTUAL' : 'CHAP';
}

export const SIZE_RE = /^\d+[MGT]$/i;
export function checkSize(size: string): string {
  if (!SIZE_RE.test(size)) throw new CliError(`Invalid size '${size}' requested. Must be an integer, suffixed by M, G or T, e.g. 100G`, 'usage');
  return size.toUpperCase();
}

/** "pool/image" split, with the message naming the form. */
export function diskParts(id: string): [string, string] {
  const m = /^([^/@]+)\/([^/]+)$/.exec(id);
  if (!m) throw new CliError(`'${id}' is not a disk name: use <pool>/<image>, e.g. rbd/testvol`, 'usage');
  return [m[1], m[2]];
}
