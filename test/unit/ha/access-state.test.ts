import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigSchema, GatewayConfig, emptyAuth } from '../../../src/config/schema';
import { aluaMode, aluaStates, assignTopologyIds, moveOwner, targetTopology, transitionCause } from '../../../src/ha/access-state';

const IQN = 'iqn.2003-01.com.example:t';

function config(gateways: Record<string, string[]>, tag?: number): GatewayConfig {
  const c = ConfigSchema.parse({ version: 11, epoch: 5 });
  c.targets[IQN] = {
    acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: Object.values(gateways).flat(), portals: {}, disks: { 'rbd/a': { lun_id: 0 } },
    clients: {}, groups: {}, ...(tag ? { portal_group_tag: tag } : {}),
  };
  for (const [gw, ips] of Object.entries(gateways)) {
    c.gateways[gw] = { active_luns: 0 };
    c.targets[IQN].portals[gw] = { portal_ip_addresses: ips, inactive_portal_ips: [], gateway_ip_list: [], tpgs: 0 };
  }
  c.disks['rbd/a'] = { pool: 'rbd', image: 'a', wwn: 'w-1', backstore: 'rbd', backstore_object_name: 'rbd.a', controls: {}, owner: Object.keys(gateways)[0] };
  return c;
}

describe('multi-gateway topology', () => {
  it('one TPG per gateway, one relative target port (= TPGT) per portal IP, in portals order', () => {
    const t = targetTopology(config({ gw1: ['10.0.0.1', '10.0.1.1'], gw2: ['10.0.0.2'] }), IQN);
    assert.deepEqual(t.groups.map((g) => [g.id, g.gateway, g.ports]), [[1, 'gw1', [1, 2]], [2, 'gw2', [3]]]);
    assert.equal(t.portAt('gw2', '10.0.0.2')?.relativeTargetPortId, 3);
    assert.equal(t.portAt('gw1', '::ffff:10.0.1.1')?.relativeTargetPortId, 2);
    assert.equal(t.portAt('gw1', '10.0.0.2'), undefined, 'another gateway\'s address is not a port of this one');
  });
  it('the first port keeps the target\'s portal_group_tag', () => {
    const t = targetTopology(config({ gw1: ['10.0.0.1'], gw2: ['10.0.0.2'] }, 7), IQN);
    assert.deepEqual(t.groups.map((g) => g.ports), [[7], [1]]);
  });
  it('stored ids stay put when a gateway goes; a new gateway gets the smallest free ids', () => {
    const c = config({ gw1: ['10.0.0.1'], gw2: ['10.0.0.2'], gw3: ['10.0.0.3'] });
    assert.equal(assignTopologyIds(c), true);
    assert.equal(assignTopologyIds(c), false, 'idempotent');
    delete c.targets[IQN].portals.gw1;
    c.targets[IQN].portals.gw4 = { portal_ip_addresses: ['10.0.0.4'], inactive_portal_ips: [], gateway_ip_list: [], tpgs: 0 };
    const t = targetTopology(c, IQN);
    assert.deepEqual(t.groups.map((g) => [g.gateway, g.id, g.ports[0]]), [['gw4', 1, 1], ['gw2', 2, 2], ['gw3', 3, 3]]);
  });
});

describe('ALUA states from the configuration', () => {
  it('implicit: owner active/optimized, others active/non-optimized; explicit: standby; transitioning while taking over', () => {
    const c = config({ gw1: ['10.0.0.1'], gw2: ['10.0.0.2'] });
    assert.deepEqual([...aluaStates(c, IQN, 'rbd/a', 'implicit')], [[1, 'active/optimized'], [2, 'active/non-optimized']]);
    assert.deepEqual([...aluaStates(c, IQN, 'rbd/a', 'explicit')], [[1, 'active/optimized'], [2, 'standby']]);
    assert.deepEqual([...aluaStates(c, IQN, 'rbd/a', 'active/active')], [[1, 'active/optimized'], [2, 'active/optimized']]);
    assert.deepEqual([...aluaStates(c, IQN, 'rbd/a', 'implicit', { gateway: 'gw1', holdsWriter: false, transitioning: false })][0], [1, 'transitioning']);
    assert.deepEqual([...aluaStates(c, IQN, 'rbd/a', 'implicit', { gateway: 'gw2', holdsWriter: false, transitioning: true })][1], [2, 'transitioning']);
  });
  it('the mode: rbd on Ceph, snapshots and null disks active/active; else the target control, else the default', () => {
    const c = config({ gw1: ['10.0.0.1'] });
    assert.equal(aluaMode(c, IQN, 'rbd/a', 'embedded', 'implicit'), 'implicit');
    assert.equal(aluaMode(c, IQN, 'rbd/a', 'ceph', 'implicit'), 'active/active');
    c.disks['rbd/a'].backstore = 'user:rbd';
    assert.equal(aluaMode(c, IQN, 'rbd/a', 'ceph', 'implicit'), 'implicit', 'user:rbd is active/passive');
    c.targets[IQN].controls = { alua_failover_type: 'explicit' };
    assert.equal(aluaMode(c, IQN, 'rbd/a', 'embedded', 'implicit'), 'explicit');
  });
  it('moveOwner moves active_luns and records the cause for the next epoch only while it is the owner', () => {
    const c = config({ gw1: ['10.0.0.1'], gw2: ['10.0.0.2'] });
    c.gateways.gw1.active_luns = 1;
    assert.equal(moveOwner(c, 'rbd/a', 'gw2', 'iqn.x:host'), true);
    assert.deepEqual([c.gateways.gw1.active_luns, c.gateways.gw2.active_luns], [0, 1]);
    c.epoch += 1; // as the store commits it
    assert.equal(transitionCause(c, 'rbd/a'), 'iqn.x:host');
    moveOwner(c, 'rbd/a', 'gw1');
    assert.equal(transitionCause(c, 'rbd/a'), undefined, 'an owner change without a cause clears it');
    assert.equal(moveOwner(c, 'rbd/a', 'gw1'), false);
  });
});
