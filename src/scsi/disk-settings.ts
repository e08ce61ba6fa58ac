/**
 * Disk (logical unit) settings: the SES 7 "advanced settings" of ceph-iscsi-reference.md §4.3,
 * with the same names, ranges, defaults and validation messages as ceph-iscsi's
 * IntSetting/EnumSetting.normalize ("expected integer for X", "expected integer >= MIN for X",
 * "expected integer <= MAX for X", "expected [v1, v2] for X found v").
 *
 * Every setting changes what the logical unit does (see logical-unit.ts); settings we cannot
 * honour (protection information) are refused here rather than silently ignored.
 */

export interface DiskSettings {
  readonly block_size: number;
  /**
   * Gateway extension, LIO's storage-object attribute of the same name: seconds a backstore
   * operation may take before the command fails (NOT READY, LOGICAL UNIT COMMUNICATION
   * FAILURE) and the operation is given up on. 1..600, default 30 (tcmu's default).
   */
  readonly cmd_time_out: number;
  readonly emulate_3pc: number;
  readonly emulate_caw: number;
  readonly emulate_dpo: number;
  readonly emulate_fua_read: number;
  readonly emulate_fua_write: number;
  readonly emulate_model_alias: number;
  readonly emulate_pr: number;
  readonly emulate_rest_reord: number;
  /**
   * Gateway extension: report a removable medium (RMB=1) that START STOP UNIT ejects and
   * loads and PREVENT ALLOW MEDIUM REMOVAL locks, as tgt's `removable` LUN parameter. Off by
   * default: Windows failover clusters and ESXi want fixed disks.
   */
  readonly emulate_removable: number;
  /** Gateway extension (not in the seed): offer SANITIZE, which erases the whole LU. Off by default. */
  readonly emulate_sanitize: number;
  readonly emulate_tas: number;
  readonly emulate_tpu: number;
  readonly emulate_tpws: number;
  readonly emulate_ua_intlck_ctrl: number;
  readonly emulate_write_cache: number;
  readonly enforce_pr_isids: number;
  readonly force_pr_aptpl: number;
  readonly is_nonrot: number;
  readonly max_unmap_block_desc_count: number;
  readonly max_unmap_lba_count: number;
  readonly max_write_same_len: number;
  readonly optimal_sectors: number;
  readonly pi_prot_type: number;
  readonly pi_prot_verify: number;
  readonly queue_depth: number;
  readonly unmap_granularity: number;
  readonly unmap_granularity_alignment: number;
  readonly unmap_zeroes_data: number;
}

export type DiskSettingName = keyof DiskSettings;

type Spec =
  | { readonly type: 'int'; readonly min: number; readonly max: number; readonly def: number }
  | { readonly type: 'enum'; readonly values: readonly number[]; readonly def: number };

const U32 = 4294967295;
const bool = (def: number): Spec => ({ type: 'enum', values: [0, 1], def });
const int = (def: number): Spec => ({ type: 'int', min: 0, max: U32, def });

/** The settings table (§4.3) in the order the reference lists them, then the gateway's own. */
export const DISK_SETTING_SPECS: { readonly [K in DiskSettingName]: Spec } = {
  block_size: { type: 'enum', values: [512, 1024, 2048, 4096], def: 512 },
  emulate_3pc: bool(1),
  emulate_caw: bool(1),
  emulate_dpo: bool(1),
  emulate_fua_read: bool(1),
  emulate_fua_write: bool(1),
  emulate_model_alias: bool(0),
  emulate_pr: bool(1),
  emulate_rest_reord: bool(1),
  emulate_tas: bool(1),
  emulate_tpu: bool(0),
  emulate_tpws: bool(0),
  emulate_ua_intlck_ctrl: { type: 'enum', values: [0, 1, 2], def: 0 },
  emulate_write_cache: bool(0),
  enforce_pr_isids: bool(1),
  force_pr_aptpl: bool(0),
  is_nonrot: bool(1),
  max_unmap_block_desc_count: int(1),
  max_unmap_lba_count: int(8192),
  max_write_same_len: int(65535),
  optimal_sectors: int(8192),
  pi_prot_type: { type: 'enum', values: [0, 1, 2, 3], def: 0 },
  pi_prot_verify: bool(0),
  queue_depth: int(256),
  unmap_granularity: int(8192),
  unmap_granularity_alignment: int(0),
  unmap_zeroes_data: bool(0),
  // Gateway extensions. SANITIZE wipes every block of the image at once (BLOCK ERASE in
  // milliseconds on a thin image): an administrator has to allow it per disk.
  emulate_sanitize: bool(0),
  emulate_removable: bool(0),
  // A hung backstore must become an error, never a hung TMF or logout: always bounded.
  cmd_time_out: { type: 'int', min: 1, max: 600, def: 30 },
};

/** The settings of the seed (§4.3); the others are this gateway's extensions. */
export const SEED_DISK_SETTING_NAMES: readonly DiskSettingName[] = [
  'block_size', 'emulate_3pc', 'emulate_caw', 'emulate_dpo', 'emulate_fua_read', 'emulate_fua_write', 'emulate_model_alias',
  'emulate_pr', 'emulate_rest_reord', 'emulate_tas', 'emulate_tpu', 'emulate_tpws', 'emulate_ua_intlck_ctrl',
  'emulate_write_cache', 'enforce_pr_isids', 'force_pr_aptpl', 'is_nonrot', 'max_unmap_block_desc_count', 'max_unmap_lba_count',
  'max_write_same_len', 'optimal_sectors', 'pi_prot_type', 'pi_prot_verify', 'queue_depth', 'unmap_granularity',
  'unmap_granularity_alignment', 'unmap_zeroes_data',
];

export const DISK_SETTING_NAMES = Object.keys(DISK_SETTING_SPECS) as DiskSettingName[];

export const DEFAULT_DISK_SETTINGS: DiskSettings = Object.freeze(
  Object.fromEntries(DISK_SETTING_NAMES.map((n) => [n, DISK_SETTING_SPECS[n].def])) as unknown as DiskSettings,
);

export class DiskSettingsError extends Error {
  readonly kind = 'invalid-disk-setting';
  constructor(readonly setting: string, message: string) {
    super(message);
    this.name = 'DiskSettingsError';
  }
}

/** Python's int(): integers, and strings of an optionally signed decimal integer. */
function toInteger(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined;
  if (typeof raw === 'bigint') return Number(raw);
  if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) {
    const v = Number(raw.trim());
    return Number.isSafeInteger(v) ? v : undefined;
  }
  return undefined;
}

/** Normalize one setting value exactly as ceph-iscsi does; throws DiskSettingsError. */
export function normalizeDiskSetting(name: string, raw: unknown): number {
  if (!Object.prototype.hasOwnProperty.call(DISK_SETTING_SPECS, name)) {
    throw new DiskSettingsError(name, `unsupported disk setting ${name}`);
  }
  const spec = DISK_SETTING_SPECS[name as DiskSettingName];
  const v = toInteger(raw);
  if (spec.type === 'int') {
    if (v === undefined) throw new DiskSettingsError(name, `expected integer for ${name}`);
    if (v < spec.min) throw new DiskSettingsError(name, `expected integer >= ${spec.min} for ${name}`);
    if (v > spec.max) throw new DiskSettingsError(name, `expected integer <= ${spec.max} for ${name}`);
    return v;
  }
  if (v === undefined || !spec.values.includes(v)) {
    throw new DiskSettingsError(name, `expected [${spec.values.join(', ')}] for ${name} found ${String(raw)}`);
  }
  return v;
}

/**
 * Validate a (partial) settings object and apply defaults. Besides the reference's type and
 * range rules, refuses what this gateway cannot do: protection information (no PI on any
 * backstore) and an unmap granularity alignment that is not below the granularity.
 */
export function validateDiskSettings(input: Readonly<Record<string, unknown>> = {}): DiskSettings {
  const out: Record<string, number> = { ...DEFAULT_DISK_SETTINGS };
  for (const [name, raw] of Object.entries(input)) {
    if (raw === undefined) continue;
    out[name] = normalizeDiskSetting(name, raw);
  }
  const s = out as unknown as DiskSettings;
  if (s.pi_prot_type !== 0) {
    throw new DiskSettingsError('pi_prot_type',
      `pi_prot_type ${s.pi_prot_type} is not supported: this gateway stores no protection information (use 0)`);
  }
  if (s.pi_prot_verify !== 0) {
    throw new DiskSettingsError('pi_prot_verify', 'pi_prot_verify requires protection information, which is not supported (use 0)');
  }
  if (s.unmap_granularity !== 0 && s.unmap_granularity_alignment >= s.unmap_granularity) {
    throw new DiskSettingsError('unmap_granularity_alignment',
      `unmap_granularity_alignment must be less than unmap_granularity (${s.unmap_granularity})`);
  }
  return Object.freeze(s);
}

export { validateDiskSettings as validate };
