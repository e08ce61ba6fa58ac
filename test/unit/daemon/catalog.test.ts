import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { ConfigSchema, TargetSchema } from '../../../src/config/schema';
import { AuthError } from '../../../src/iscsi/auth';
import { ConfiguredCatalog, ConfiguredTarget, lunMaskingFrom } from '../../../src/daemon/catalog';
import { LoginStatus } from '../../../src/pdu/opcodes';
import { LogicalUnitRegistry } from '../../../src/scsi/lu-registry';
import { ScsiTarget } from '../../../src/scsi/scsi-target';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:t';
const HOST = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
const OTHER = 'iqn.2024-01.com.example:other';
const SEED_AUTH = { username: 'common12', password: 'pass12345678' };

function scsi(): ScsiTarget {
  return new ScsiTarget({
    targetName: IQN,
    registry: new LogicalUnitRegistry(),
    logicalUnits: [0, 1].map((lun) => ({ lun, device: new MemoryBackstore({ size: 8 * 512 }), wwn: `${lun}${lun}${lun}${lun}aaaa-0000-4000-8000-000000000000`, name: `rbd/d${lun}` })),
  });
}

function catalogWith(target: unknown, discovery: unknown = {}) {
  const catalog = new ConfiguredCatalog();
  const t = TargetSchema.parse(target);
  catalog.add(new ConfiguredTarget(IQN, t, scsi(), []));
  catalog.config = ConfigSchema.parse({ version: 11, epoch: 1, discovery_auth: discovery, targets: { [IQN]: target } });
  return catalog;
}

const methods = (c: ConfiguredCatalog, initiatorName: string, sessionType: 'Normal' | 'Discovery' = 'Normal') =>
  c.methodsFor({ initiatorName, targetName: sessionType === 'Normal' ? IQN : undefined, sessionType }).map((m) => m.name);

describe('access policy from the configuration (ceph-iscsi modes)', () => {
  it('demo mode: any initiator, no CHAP', () => {
    const c = catalogWith({ acl_enabled: false, disks: { 'rbd/d0': { lun_id: 0 } } });
    assert.equal(c.find(IQN)!.allows(OTHER), true);
    assert.deepEqual(methods(c, OTHER), ['None']);
  });

  it('demo mode with target-level CHAP: everyone must pass it', () => {
    const c = catalogWith({ acl_enabled: false, auth: SEED_AUTH });
    assert.deepEqual(methods(c, OTHER), ['CHAP']);
  });

  it('ACL mode: only clients; CHAP per client; names compare case-insensitively', () => {
    const c = catalogWith({ acl_enabled: true, clients: { [HOST]: { auth: SEED_AUTH }, [OTHER]: {} } });
    const t = c.find(IQN)!;
    assert.equal(t.allows(HOST), true);
    assert.equal(t.allows(HOST.toUpperCase()), true);
    assert.equal(t.allows('iqn.2024-01.com.example:stranger'), false);
    assert.deepEqual(methods(c, HOST), ['CHAP']);
    assert.deepEqual(methods(c, OTHER), ['None']);
  });

  it('discovery CHAP is independent of target CHAP', () => {
    const off = catalogWith({ acl_enabled: false, auth: SEED_AUTH });
    assert.deepEqual(methods(off, OTHER, 'Discovery'), ['None']);
    const on = catalogWith({ acl_enabled: false }, { username: 'du123456', password: 'dp1234567890' });
    assert.deepEqual(methods(on, OTHER, 'Discovery'), ['CHAP']);
    assert.deepEqual(methods(on, OTHER), ['None']);
  });

  it('an encrypted password without a key fails the login as a target error, without the secret', () => {
    const c = catalogWith({ acl_enabled: false, auth: { username: 'common12', password: 'Q2lwaGVydGV4dA==', password_encryption_enabled: true } });
    const [m] = c.methodsFor({ initiatorName: OTHER, targetName: IQN, sessionType: 'Normal' });
    assert.throws(() => m.start({ initiatorName: OTHER, targetName: IQN, sessionType: 'Normal' }).step(new Map([['CHAP_A', '5']])),
      (e: unknown) => e instanceof AuthError && e.status === LoginStatus.TargetError && !e.message.includes('Q2lw'));
  });

  it('uses a configured decoder for encrypted passwords', () => {
    const catalog = new ConfiguredCatalog();
    catalog.decode = (stored, encrypted) => (encrypted ? Buffer.from(stored, 'base64').toString() : stored);
    const t = TargetSchema.parse({ acl_enabled: false, auth: { username: 'common12', password: Buffer.from('pass12345678').toString('base64'), password_encryption_enabled: true } });
    catalog.add(new ConfiguredTarget(IQN, t, scsi(), []));
    assert.deepEqual(methods(catalog, OTHER), ['CHAP']);
  });
});

describe('LUN masking from clients and host groups', () => {
  it('maps client LUN ids to target LUNs; group disks use the group LUN id on every member', () => {
    const t = TargetSchema.parse({
      acl_enabled: true,
      disks: { 'rbd/a': { lun_id: 0 }, 'rbd/b': { lun_id: 1 }, 'rbd/g': { lun_id: 2 } },
      clients: {
        [HOST]: { luns: { 'rbd/b': { lun_id: 0 } } },
        'iqn.1998-01.com.vmware:esx1': { luns: { 'rbd/a': { lun_id: 0 } }, group_name: 'esx' },
        'iqn.1998-01.com.vmware:esx2': { group_name: 'esx' },
        [OTHER]: { luns: { 'rbd/missing': { lun_id: 3 } } },
      },
      groups: { esx: { members: ['iqn.1998-01.com.vmware:esx1', 'iqn.1998-01.com.vmware:esx2'], disks: { 'rbd/g': { lun_id: 9 } } } },
    });
    const m = lunMaskingFrom(t);
    assert.deepEqual([...m.get(HOST)!], [[0, 1]]);
    assert.deepEqual([...m.get('iqn.1998-01.com.vmware:esx1')!], [[0, 0], [9, 2]]);
    assert.deepEqual([...m.get('iqn.1998-01.com.vmware:esx2')!], [[9, 2]]);
    assert.deepEqual([...m.get(OTHER)!], [], 'a disk not mapped to the target is not visible');
  });

  it('ACL mode masks the SCSI target; demo mode does not', () => {
    const device = scsi();
    const t = new ConfiguredTarget(IQN, TargetSchema.parse({ acl_enabled: true, disks: { 'rbd/a': { lun_id: 1 } }, clients: { [HOST]: { luns: { 'rbd/a': { lun_id: 0 } } } } }), device, []);
    const nexus = { initiatorName: HOST } as Parameters<ScsiTarget['luns']>[0];
    assert.deepEqual(device.luns(nexus), [0]);
    t.update(TargetSchema.parse({ acl_enabled: false, disks: { 'rbd/a': { lun_id: 1 } } }), []);
    assert.deepEqual(device.luns(nexus), [0, 1]);
  });
});
