/**
 * Validation rules of the management plane, with ceph-iscsi's rules and messages
 * (ceph-iscsi-reference.md §1.5, §4, §6): IQNs, CHAP credentials, pool/image names, sizes, the
 * count of a multi-create, WWNs, the disk limit, host-group and snapshot names, backstores and
 * the target/disk controls. Every function is pure: it answers a message (the problem) or
 * undefined, or a normalised value; callers (the REST API, gwcli) turn the message into their
 * own error. Messages never contain a secret.
 */
import { DISK_SETTING_SPECS, DiskSettingsError, normalizeDiskSetting, validateDiskSettings } from '../scsi/disk-settings';
import { SettingError, TARGET_SETTING_DEFS, TargetControls, normalizeTargetControls } from './target-settings';

/** The problem found by a rule, with the message ceph-iscsi answers. */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

// ------------------------------------------------------------------ IQN

/**
 * rtslib's normalize_wwn(['iqn'], name): trimmed and lower-cased, "iqn.YYYY-MM." then at least
 * one more dot, no blank and no underscore. Answers the normalised name or undefined.
 * EUI and NAA names are refused, as in ceph-iscsi.
 */
export function normalizeIqn(raw: string): string | undefined {
  const name = raw.trim().toLowerCase();
  if (!/^iqn\.[0-9]{4}-[0-1][0-9]\..*\..*/.test(name)) return undefined;
  if (/\s/.test(name) || name.includes('_')) return undefined;
  // iSCSI names are at most 223 bytes (RFC 7143 §4.2.7.1); rtslib does not check, LIO does.
  if (Buffer.byteLength(name, 'utf8') > 223) return undefined;
  return name;
}

/** The message rbd-target-api answers for an invalid IQN in a path ("Invalid iqn x - ..."). */
export function invalidIqnMessage(raw: string): string {
  return `Invalid iqn ${raw} - WWN not valid as: iqn`;
}

/** Normalise or throw with rbd-target-api's message. */
export function requireIqn(raw: string): string {
  const n = normalizeIqn(raw);
  if (n === undefined) throw new ValidationError(invalidIqnMessage(raw));
  return n;
}

// ------------------------------------------------------------------ CHAP

export interface Credentials {
  readonly username: string;
  readonly password: string;
  readonly mutual_username: string;
  readonly mutual_password: string;
}

// Python 3's \w is Unicode (letters, digits of every script, '_'); ceph-iscsi's username class
// also admits a literal backslash (reference §1.5 quirk) - kept, so that every credential a
// ceph-iscsi gateway accepted is accepted here too.
const USERNAME_RE = /^[\p{L}\p{N}_\\.:@-]{8,64}$/u;
const PASSWORD_RE = /^[\p{L}\p{N}_@\-/]{12,16}$/u;

/** Length in code points, as Python's len(). */
function pyLen(s: string): number {
  return [...s].length;
}

function userProblem(value: string, what: 'username' | 'mutual username'): string | undefined {
  const n = pyLen(value);
  if (n < 8) return `Minimum length of ${what} is 8 characters`;
  if (n > 64) return `Maximum length of ${what} is 64 characters`;
  if (!USERNAME_RE.test(value)) return `Invalid ${what}`;
  return undefined;
}

function passwordProblem(value: string, what: 'password' | 'mutual password'): string | undefined {
  const n = pyLen(value);
  if (n < 12) return `Minimum length of ${what} is 12 characters`;
  if (n > 16) return `Maximum length of ${what} is 16 characters`;
  if (!PASSWORD_RE.test(value)) return `Invalid ${what}`;
  return undefined;
}

/**
 * ceph-iscsi's valid_credentials (discovery, target and client CHAP), checks in its order.
 * All four empty means "no CHAP" and is valid.
 */
export function credentialsProblem(c: Credentials): string | undefined {
  const { username, password, mutual_username: mu, mutual_password: mp } = c;
  if (username && !password) return 'Password is required';
  if (!username && (password || mu)) return 'Username is required';
  if (mu && !mp) return 'Mutual password is required';
  if (!mu && mp) return 'Mutual username is required';
  if (username) {
    const p = userProblem(username, 'username');
    if (p) return p;
  }
  if (mu) {
    const p = userProblem(mu, 'mutual username');
    if (p) return p;
  }
  if (password) {
    const p = passwordProblem(password, 'password');
    if (p) return p;
  }
  if (mp) {
    const p = passwordProblem(mp, 'mutual password');
    if (p) return p;
  }
  return undefined;
}

// ------------------------------------------------------------------ disks

const NAME_RE = /^[a-zA-Z0-9\-_.]+$/;

export function poolNameProblem(pool: string): string | undefined {
  return NAME_RE.test(pool) ? undefined : "Invalid pool name (use alphanumeric, '_', '.', or '-' characters)";
}

export function imageNameProblem(image: string): string | undefined {
  return NAME_RE.test(image) ? undefined : "Invalid image name (use alphanumeric, '_', '.', or '-' characters)";
}

/** A disk id "pool/image" split, or undefined when it is not of that form. */
export function parseDiskId(id: string): { pool: string; image: string } | undefined {
  const parts = id.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  return { pool: parts[0], image: parts[1] };
}

const UNITS: Record<string, number> = { M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * ceph-iscsi's valid_size/convert_2_bytes: an integer followed by M, G or T (any case).
 * Answers bytes, or undefined when invalid (the API's message is "Size is invalid").
 * Sizes beyond 2^53 bytes are refused too (they cannot be represented exactly).
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)([mgtMGT])$/.exec(text.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (!Number.isSafeInteger(bytes)) return undefined;
  return bytes;
}

export const SIZE_INVALID = 'Size is invalid';

/** The `count` of a disk create: digits, 1-10. */
export function parseCount(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 10 ? n : undefined;
}

export const COUNT_INVALID = 'invalid count specified, must be an integer (1-10)';

/** This gateway's disk limit (ceph-iscsi: 256). */
export const MAX_DISKS = 1024;

export function diskLimitProblem(defined: number, adding = 1): string | undefined {
  return defined + adding > MAX_DISKS ? `Disk limit of ${MAX_DISKS} reached.` : undefined;
}

/**
 * A WWN (the T10 unit serial number an initiator sees in VPD page 0x80): unique over all
 * disks, and not with count > 1. The serial is printable ASCII of at most 36 characters
 * (ceph-iscsi uses a UUID) so that it fits VPD 0x80 and identifies the disk on every gateway.
 */
export function wwnProblem(wwn: string, count: number, disks: Readonly<Record<string, { wwn?: string }>>): string | undefined {
  if (count > 1) return 'WWN cannot be specified when count > 1';
  if (!/^[\x21-\x7e]{1,36}$/.test(wwn)) return `WWN ${wwn} is invalid (use 1-36 printable ASCII characters, e.g. a UUID)`;
  for (const [id, d] of Object.entries(disks)) {
    if (d.wwn !== undefined && d.wwn.toLowerCase() === wwn.toLowerCase()) return `WWN ${wwn} is already in use by ${id}`;
  }
  return undefined;
}

/** Backstores a disk may name. "user:rbd" is what upstream clients send, "rbd" the SUSE default. */
export const BACKSTORES = ['user:rbd', 'rbd'] as const;
export type Backstore = (typeof BACKSTORES)[number];
export const DEFAULT_BACKSTORE: Backstore = 'user:rbd';

export function backstoreProblem(b: string): string | undefined {
  return (BACKSTORES as readonly string[]).includes(b) ? undefined : `Invalid '${b}' backstore - Supported backstores: ${BACKSTORES.join(',')}`;
}

// ------------------------------------------------------------------ names

const GROUP_RE = /^[\p{L}\p{N}_@-]{1,32}$/u;

export function hostGroupNameProblem(name: string): string | undefined {
  return GROUP_RE.test(name) ? undefined : `Invalid host group name '${name}' (1-32 characters: alphanumeric, '@', '_' or '-')`;
}

export const SNAPSHOT_NAME_INVALID = 'snapshot name is invalid';

/** ceph-iscsi's valid_snapshot_name: no '/' and no '@'. */
export function snapshotNameProblem(name: string): string | undefined {
  return /^[^/@]+$/.test(name) ? undefined : SNAPSHOT_NAME_INVALID;
}

// ------------------------------------------------------------------ controls

/**
 * The `controls` form field: a JSON object of setting -> value. Answers the parsed object or
 * throws ValidationError with "Unexpected or invalid controls - <why>".
 */
export function parseControlsField(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`Unexpected or invalid controls - ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ValidationError('Unexpected or invalid controls - controls must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/**
 * Target controls (§4.1, §4.3) normalised; an empty string resets a control to its default
 * (it is left out of the result). Throws ValidationError("Unexpected or invalid controls - ...").
 */
export function validateTargetControls(controls: Record<string, unknown>): TargetControls {
  const set: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(controls)) {
    if (!Object.prototype.hasOwnProperty.call(TARGET_SETTING_DEFS, k)) {
      throw new ValidationError(`Unexpected or invalid controls - unsupported target control ${k}; supported: ${Object.keys(TARGET_SETTING_DEFS).join(', ')}`);
    }
    if (v === '' || v === null) continue;
    set[k] = v;
  }
  try {
    return normalizeTargetControls(set);
  } catch (e) {
    if (e instanceof SettingError) throw new ValidationError(`Unexpected or invalid controls - ${e.message}`);
    throw e;
  }
}

/** Disk controls (§4.3) normalised, only the ones given; empty string = back to default. */
export function validateDiskControls(controls: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const [k, v] of Object.entries(controls)) {
      if (!Object.prototype.hasOwnProperty.call(DISK_SETTING_SPECS, k)) {
        throw new DiskSettingsError(k, `unsupported disk control ${k}; supported: ${Object.keys(DISK_SETTING_SPECS).join(', ')}`);
      }
      if (v === '' || v === null) continue;
      out[k] = normalizeDiskSetting(k, v);
    }
    validateDiskSettings(out); // cross-setting rules (PI, unmap alignment)
  } catch (e) {
    if (e instanceof DiskSettingsError) throw new ValidationError(`Unexpected or invalid controls - ${e.message}`);
    throw e;
  }
  return out;
}

/** `/api/settings` limits, as ceph-iscsi's fill_settings_dict: {min,max,type:int} | {type:bool} | {values,type:enum}. */
export type SettingLimit = { min: number; max: number; type: 'int' } | { type: 'bool' } | { values: Array<string | number>; type: 'enum' };

export function targetControlsLimits(): Record<string, SettingLimit> {
  const out: Record<string, SettingLimit> = {};
  for (const [k, d] of Object.entries(TARGET_SETTING_DEFS)) {
    if (d.kind === 'int') out[k] = { min: d.min, max: d.max, type: 'int' };
    else if (d.kind === 'bool') out[k] = { type: 'bool' };
    else out[k] = { values: [...d.values], type: 'enum' };
  }
  return out;
}

export function targetDefaultControls(): Record<string, number | boolean | string> {
  return Object.fromEntries(Object.entries(TARGET_SETTING_DEFS).map(([k, d]) => [k, d.default]));
}

export function diskControlsLimits(): Record<string, SettingLimit> {
  const out: Record<string, SettingLimit> = {};
  for (const [k, s] of Object.entries(DISK_SETTING_SPECS)) {
    out[k] = s.type === 'int' ? { min: s.min, max: s.max, type: 'int' } : { values: [...s.values], type: 'enum' };
  }
  return out;
}

export function diskDefaultControls(): Record<string, number> {
  return Object.fromEntries(Object.entries(DISK_SETTING_SPECS).map(([k, s]) => [k, s.def]));
}
