/**
 * Target-level settings ("controls"), named, ranged and validated as ceph-iscsi does
 * (reference §4.1 and the SES 7 additions in §4.3), with the same error messages, so that
 * `reconfigure` and the REST API can reuse them.
 */
import { DEFAULT_TARGET_OFFER } from '../iscsi/parameters';
import { TargetSettings } from '../iscsi/target-node';

type SettingDef =
  | { readonly kind: 'int'; readonly min: number; readonly max: number; readonly default: number }
  | { readonly kind: 'bool'; readonly default: boolean }
  | { readonly kind: 'enum'; readonly values: readonly string[]; readonly default: string };

export const TARGET_SETTING_DEFS = {
  cmdsn_depth: { kind: 'int', min: 1, max: 512, default: 128 },
  dataout_timeout: { kind: 'int', min: 2, max: 60, default: 20 },
  nopin_response_timeout: { kind: 'int', min: 3, max: 60, default: 5 },
  nopin_timeout: { kind: 'int', min: 3, max: 60, default: 5 },
  immediate_data: { kind: 'bool', default: true },
  initial_r2t: { kind: 'bool', default: true },
  max_outstanding_r2t: { kind: 'int', min: 1, max: 65535, default: 1 },
  first_burst_length: { kind: 'int', min: 512, max: 16777215, default: 262144 },
  max_burst_length: { kind: 'int', min: 512, max: 16777215, default: 524288 },
  max_recv_data_segment_length: { kind: 'int', min: 512, max: 16777215, default: 262144 },
  max_xmit_data_segment_length: { kind: 'int', min: 512, max: 16777215, default: 262144 },
  // SES 7 additions (reference §4.3).
  login_timeout: { kind: 'int', min: 5, max: 30, default: 15 },
  default_erl: { kind: 'enum', values: ['0', '1', '2'], default: '0' },
  // Digest policy: which values the target accepts, in order of preference.
  header_digest: { kind: 'enum', values: ['None,CRC32C', 'CRC32C,None', 'CRC32C', 'None'], default: 'None,CRC32C' },
  data_digest: { kind: 'enum', values: ['None,CRC32C', 'CRC32C,None', 'CRC32C', 'None'], default: 'None,CRC32C' },
  // ALUA of the target's LUNs (src/ha/access-state.ts): non-owner paths active/non-optimized
  // (implicit transitions) or standby (SET TARGET PORT GROUPS). Default: iscsi-gateway.cfg's.
  alua_failover_type: { kind: 'enum', values: ['implicit', 'explicit'], default: 'implicit' },
} as const satisfies Record<string, SettingDef>;

export type TargetSettingName = keyof typeof TARGET_SETTING_DEFS;
export type TargetControls = { -readonly [K in TargetSettingName]?: number | boolean | string };

export class SettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingError';
  }
}

/** Normalize one value as ceph-iscsi's IntSetting/BoolSetting/EnumSetting do. */
export function normalizeSetting(name: string, value: unknown, defs: Record<string, SettingDef>): number | boolean | string {
  const def = defs[name];
  if (!def) throw new SettingError(`unknown setting ${name}; supported: ${Object.keys(defs).join(', ')}`);
  const text = String(value).trim();
  switch (def.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(text)) throw new SettingError(`expected integer for ${name}`);
      const n = Number(text);
      if (n < def.min) throw new SettingError(`expected integer >= ${def.min} for ${name}`);
      if (n > def.max) throw new SettingError(`expected integer <= ${def.max} for ${name}`);
      return n;
    }
    case 'bool': {
      const t = text.toLowerCase();
      if (['true', 'yes', '1'].includes(t)) return true;
      if (['false', 'no', '0'].includes(t)) return false;
      throw new SettingError(`expected yes or no for ${name}`);
    }
    case 'enum':
      if (!def.values.includes(text)) throw new SettingError(`expected [${def.values.join(', ')}] for ${name} found ${text}`);
      return text;
  }
}

export function normalizeTargetControls(controls: Record<string, unknown>): TargetControls {
  const out: TargetControls = {};
  for (const [k, v] of Object.entries(controls)) {
    (out as Record<string, unknown>)[k] = normalizeSetting(k, v, TARGET_SETTING_DEFS);
  }
  if (out.default_erl !== undefined && out.default_erl !== '0') {
    throw new SettingError(`default_erl ${out.default_erl} is not supported: this gateway implements ErrorRecoveryLevel 0`);
  }
  const fbl = (out.first_burst_length as number | undefined) ?? TARGET_SETTING_DEFS.first_burst_length.default;
  const mbl = (out.max_burst_length as number | undefined) ?? TARGET_SETTING_DEFS.max_burst_length.default;
  if (fbl > mbl) throw new SettingError(`first_burst_length (${fbl}) must not exceed max_burst_length (${mbl})`);
  return out;
}

function digestList(v: string): ('None' | 'CRC32C')[] {
  return v.split(',') as ('None' | 'CRC32C')[];
}

/** Turn validated controls into the settings the iSCSI layer runs with. */
export function targetSettingsFrom(controls: TargetControls): TargetSettings {
  const d = TARGET_SETTING_DEFS;
  const get = <K extends TargetSettingName>(k: K) => controls[k] ?? d[k].default;
  return {
    cmdsnDepth: get('cmdsn_depth') as number,
    nopinTimeout: get('nopin_timeout') as number,
    nopinResponseTimeout: get('nopin_response_timeout') as number,
    dataoutTimeout: get('dataout_timeout') as number,
    loginTimeout: get('login_timeout') as number,
    offer: {
      ...DEFAULT_TARGET_OFFER,
      headerDigest: digestList(get('header_digest') as string),
      dataDigest: digestList(get('data_digest') as string),
      initialR2T: get('initial_r2t') as boolean,
      immediateData: get('immediate_data') as boolean,
      maxOutstandingR2T: get('max_outstanding_r2t') as number,
      firstBurstLength: get('first_burst_length') as number,
      maxBurstLength: get('max_burst_length') as number,
      maxRecvDataSegmentLength: get('max_recv_data_segment_length') as number,
      maxXmitDataSegmentLength: get('max_xmit_data_segment_length') as number,
      errorRecoveryLevel: Number(get('default_erl')),
    },
  };
}
