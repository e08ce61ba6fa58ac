/**
 * The active/active model of `rbd` on Ceph (src/ha/active-active.ts): which disks get it, that
 * every gateway serves them read-write, and the image rules that keep it safe (no
 * exclusive-lock / object-map / fast-diff: librbd would move the lock on every write).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featureMask } from '../../../src/ceph/features';
import { ACTIVE_ACTIVE_FEATURES, CEPH_ISCSI_DEFAULT_FEATURES, exportProblem, unsupportedFeatures } from '../../../src/images/disk-rules';
import { diskAccess, isActiveActive } from '../../../src/ha/active-active';
import { aluaMode } from '../../../src/ha/access-state';
import { emptyAuth, emptyConfig, GatewayConfig } from '../../../src/config/schema';

function config(backstore: 'rbd' | 'user:rbd', snapshot?: string): GatewayConfig {
  const c = emptyConfig();
  c.gateways.gw1 = { active_luns: 1 } as GatewayConfig['gateways'][string];
  c.gateways.gw2 = { active_luns: 0 } as GatewayConfig['gateways'][string];
  c.disks['rbd/d'] = { pool: 'rbd', image: 'd', backstore, wwn: 'x', controls: {}, owner: 'gw1', ...(snapshot ? { snapshot } : {}) } as GatewayConfig['disks'][string];
  c.targets.iqn = { acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: [], portals: {}, disks: { 'rbd/d': { lun_id: 0 } }, clients: {}, groups: {} } as unknown as GatewayConfig['targets'][string];
  return c;
}

test('rbd on Ceph is active/active on every gateway; user:rbd, the embedded store and snapshots are not', () => {
  assert.equal(isActiveActive({ backstore: 'rbd' }, 'ceph'), true);
  assert.equal(isActiveActive({ backstore: 'rbd', snapshot: 's' }, 'ceph'), false);
  assert.equal(isActiveActive({ backstore: 'user:rbd' }, 'ceph'), false);
  assert.equal(isActiveActive({ backstore: 'rbd' }, 'embedded'), false);
  assert.equal(isActiveActive(undefined, 'ceph'), false);
  const aa = config('rbd');
  assert.equal(diskAccess(aa, 'gw1', 'rbd/d', 'ceph'), 'active');
  assert.equal(diskAccess(aa, 'gw2', 'rbd/d', 'ceph'), 'active', 'the non-owner writes too');
  assert.equal(diskAccess(aa, 'gw2', 'rbd/d', 'embedded'), 'standby', 'embedded store: one owner');
  assert.equal(aluaMode(aa, 'iqn', 'rbd/d', 'ceph', 'implicit'), 'active/active');
  const ap = config('user:rbd');
  assert.equal(diskAccess(ap, 'gw1', 'rbd/d', 'ceph'), 'active');
  assert.equal(diskAccess(ap, 'gw2', 'rbd/d', 'ceph'), 'standby', 'user:rbd: the owner alone');
  assert.equal(aluaMode(ap, 'iqn', 'rbd/d', 'ceph', 'implicit'), 'implicit');
});

test('an active/active rbd image must not have exclusive-lock, object-map or fast-diff; the message says how to fix it', () => {
  const img = (mask: number) => ({ pool: 'rbd', image: 'disk_1', featureMask: mask, stripeUnit: 4 << 20, stripeCount: 1 });
  const defaults = featureMask(CEPH_ISCSI_DEFAULT_FEATURES);
  assert.equal(exportProblem('rbd', img(defaults)), undefined, 'one owner (embedded store, user:rbd rules): fine');
  const p = exportProblem('rbd', img(defaults), { activeActive: true });
  assert.ok(p);
  assert.match(p, /^\(LUN\.allocate\) rbd 'disk_1' is not compatible with LIO\n/);
  assert.match(p, /Image features exclusive-lock,object-map,fast-diff are not supported by the rbd backstore on Ceph/);
  assert.match(p, /'rbd feature disable rbd\/disk_1 fast-diff object-map exclusive-lock'/);
  assert.match(exportProblem('rbd', img(1 | 4), { activeActive: true }) ?? '', /disable rbd\/disk_1 exclusive-lock'\)$/);
  assert.equal(exportProblem('rbd', img(featureMask(ACTIVE_ACTIVE_FEATURES)), { activeActive: true }), undefined, 'what the API creates');
  // Journaling stays refused, reported on its own line.
  const j = exportProblem('rbd', img(1 | 4 | 64), { activeActive: true }) ?? '';
  assert.equal(j.split('\n').length, 3, j);
  assert.equal(unsupportedFeatures('rbd', { activeActive: true }), 4 | 8 | 16 | 64);
  assert.equal(unsupportedFeatures('rbd'), 64);
});
