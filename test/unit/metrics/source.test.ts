import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SessionRegistry } from '../../../src/iscsi/session-registry';
import { ConfigView, gatewayMetricsSource } from '../../../src/metrics/source';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { TARGET, WWN, fixture } from '../scsi/helpers';

const C1 = 'iqn.1994-05.com.example:c1';
const C2 = 'iqn.1994-05.com.example:c2';

describe('gatewayMetricsSource', () => {
  it('reads LUNs, owners, client LUN maps (own and host groups) and TPGs from a ceph-iscsi v11 config', async () => {
    const f = await fixture({
      blocks: 4096,
      extraUnits: [{ lun: 1, device: new MemoryBackstore({ size: 1 << 20, name: 'mem1' }), wwn: `${WWN.slice(0, -1)}c`, name: 'rbd/disk_2' }],
    });
    const config: ConfigView & Record<string, unknown> = {
      epoch: 17,
      disks: { 'rbd/disk_1': { owner: 'iscsi2' }, 'rbd/disk_2': {} },
      targets: {
        [TARGET]: {
          acl_enabled: true,
          ip_list: ['127.0.0.1', '127.0.0.2'],
          disks: { 'rbd/disk_1': { lun_id: 0 }, 'rbd/disk_2': { lun_id: 1 } },
          clients: { [C1]: { luns: { 'rbd/disk_1': { lun_id: 0 } } }, [C2]: { luns: {} } },
          groups: { g1: { members: [C2], disks: { 'rbd/disk_2': { lun_id: 1 } } } },
        } as ConfigView['targets'][string],
      },
    };
    const src = gatewayMetricsSource({ config, targets: () => new Map([[TARGET, f.target]]), service: { sessions: new SessionRegistry() } }, 'iscsi1');
    assert.equal(src.gatewayName, 'iscsi1');
    assert.equal(src.configEpoch(), 17);
    assert.deepEqual(src.targets(), [{ name: TARGET, tpgs: 2 }]);
    const luns = src.luns().map((l) => ({ lun: l.lun, name: l.name, size: l.sizeBytes, owner: l.owner, mapped: l.mapped }));
    assert.deepEqual(luns, [
      { lun: 0, name: 'rbd/disk_1', size: 4096 * 512, owner: 'iscsi2', mapped: true },
      { lun: 1, name: 'rbd/disk_2', size: 1 << 20, owner: 'iscsi1', mapped: true },
    ]);
    assert.deepEqual(src.clients(), [
      { target: TARGET, iqn: C1, luns: [{ name: 'rbd/disk_1', lun: 0 }] },
      { target: TARGET, iqn: C2, luns: [{ name: 'rbd/disk_2', lun: 1 }] },
    ]);
    assert.deepEqual(src.sessions(), []);
    const c = src.luns()[0].stats.total.commands;
    assert.equal(c[0] + c[1] + c[2], 2, 'the LU\'s own counters (the fixture\'s TEST UNIT READY and REQUEST SENSE)');
  });

  it('with ACLs on, a disk no client maps is not mapped; without per-client maps every client sees every disk', async () => {
    const f = await fixture();
    const view = (target: ConfigView['targets'][string]) => gatewayMetricsSource({
      config: { epoch: 1, disks: {}, targets: { [TARGET]: target } },
      targets: () => new Map([[TARGET, f.target]]),
      service: { sessions: new SessionRegistry() },
    }, 'gw');
    assert.equal(view({ acl_enabled: true, disks: { 'rbd/disk_1': { lun_id: 0 } }, clients: { [C1]: { luns: {} } } }).luns()[0].mapped, false);
    const open = view({ acl_enabled: false, disks: { 'rbd/disk_1': { lun_id: 0 } }, clients: { [C1]: {} } });
    assert.equal(open.luns()[0].mapped, true);
    assert.deepEqual(open.clients()[0].luns, [{ name: 'rbd/disk_1', lun: 0 }]);
  });
});
