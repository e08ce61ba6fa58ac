import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_DISK_SETTINGS, DISK_SETTING_NAMES, SEED_DISK_SETTING_NAMES, normalizeDiskSetting, validate, validateDiskSettings,
} from '../../../src/scsi/disk-settings';

describe('disk settings', () => {
  it('has the §4.3 table: 27 settings with their defaults, and the gateway\'s emulate_sanitize and emulate_removable (off) and cmd_time_out (30 s)', () => {
    assert.equal(SEED_DISK_SETTING_NAMES.length, 27);
    assert.deepEqual(DISK_SETTING_NAMES, [...SEED_DISK_SETTING_NAMES, 'emulate_sanitize', 'emulate_removable', 'cmd_time_out']);
    assert.equal(DEFAULT_DISK_SETTINGS.cmd_time_out, 30);
    assert.deepEqual(Object.fromEntries(SEED_DISK_SETTING_NAMES.map((n) => [n, DEFAULT_DISK_SETTINGS[n]])), {
      block_size: 512, emulate_3pc: 1, emulate_caw: 1, emulate_dpo: 1, emulate_fua_read: 1, emulate_fua_write: 1,
      emulate_model_alias: 0, emulate_pr: 1, emulate_rest_reord: 1, emulate_tas: 1, emulate_tpu: 0, emulate_tpws: 0,
      emulate_ua_intlck_ctrl: 0, emulate_write_cache: 0, enforce_pr_isids: 1, force_pr_aptpl: 0, is_nonrot: 1,
      max_unmap_block_desc_count: 1, max_unmap_lba_count: 8192, max_write_same_len: 65535, optimal_sectors: 8192,
      pi_prot_type: 0, pi_prot_verify: 0, queue_depth: 256, unmap_granularity: 8192, unmap_granularity_alignment: 0,
      unmap_zeroes_data: 0,
    });
    assert.equal(DEFAULT_DISK_SETTINGS.emulate_sanitize, 0);
    assert.equal(DEFAULT_DISK_SETTINGS.emulate_removable, 0);
    assert.equal(validate, validateDiskSettings);
  });

  it('normalizes like ceph-iscsi: integers and integer strings', () => {
    assert.equal(normalizeDiskSetting('queue_depth', '64'), 64);
    assert.equal(normalizeDiskSetting('queue_depth', ' +7 '), 7);
    assert.equal(normalizeDiskSetting('block_size', '4096'), 4096);
    assert.equal(normalizeDiskSetting('max_unmap_lba_count', 4294967295), 4294967295);
  });

  it('uses the exact validation messages', () => {
    assert.throws(() => normalizeDiskSetting('queue_depth', 'abc'), { message: 'expected integer for queue_depth' });
    assert.throws(() => normalizeDiskSetting('queue_depth', 1.5), { message: 'expected integer for queue_depth' });
    assert.throws(() => normalizeDiskSetting('optimal_sectors', -1), { message: 'expected integer >= 0 for optimal_sectors' });
    assert.throws(() => normalizeDiskSetting('max_write_same_len', 4294967296), { message: 'expected integer <= 4294967295 for max_write_same_len' });
    assert.throws(() => normalizeDiskSetting('block_size', 100), { message: 'expected [512, 1024, 2048, 4096] for block_size found 100' });
    assert.throws(() => normalizeDiskSetting('emulate_tpu', 'yes'), { message: 'expected [0, 1] for emulate_tpu found yes' });
    assert.throws(() => normalizeDiskSetting('emulate_ua_intlck_ctrl', 3), { message: 'expected [0, 1, 2] for emulate_ua_intlck_ctrl found 3' });
    assert.throws(() => normalizeDiskSetting('hw_max_sectors', 1), { message: 'unsupported disk setting hw_max_sectors' });
  });

  it('applies defaults and refuses what cannot be honoured', () => {
    const s = validateDiskSettings({ emulate_tpu: '1', block_size: 4096 });
    assert.equal(s.emulate_tpu, 1);
    assert.equal(s.block_size, 4096);
    assert.equal(s.queue_depth, 256);
    assert.ok(Object.isFrozen(s));
    assert.throws(() => validateDiskSettings({ pi_prot_type: 1 }), /pi_prot_type 1 is not supported/);
    assert.throws(() => validateDiskSettings({ pi_prot_verify: 1 }), /pi_prot_verify requires protection information/);
    assert.throws(() => validateDiskSettings({ unmap_granularity: 8, unmap_granularity_alignment: 8 }), /must be less than unmap_granularity/);
  });
});
