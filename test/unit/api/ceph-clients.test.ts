/**
 * The request sequences real ceph-iscsi clients send (reference §2.5), with their form fields
 * exactly: the Ceph Dashboard's iscsi_client.py (Pacific) and gwcli. Extra fields they send
 * (owner, pool, purge_host, nosync) are accepted; every step answers 200.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApi } from '../../helpers/api';

const IQN = 'iqn.2001-07.com.ceph:1700000000000';
const C1 = 'iqn.1994-05.com.redhat:client1';
const C2 = 'iqn.1994-05.com.redhat:client2';

type Step = [string, string, Record<string, string>?];

test('the Ceph Dashboard: create a target with portals, disks, clients, a group and auth, then tear it down', async () => {
  const api = await startTestApi();
  try {
    await api.images.create('rbd', 'dash_img', 8 * 2 ** 20); // the Dashboard attaches existing RBD images
    await api.images.create('rbd', 'dash_img2', 8 * 2 ** 20);
    const reads: Step[] = [['GET', '/api/_ping'], ['GET', '/api/settings'], ['GET', '/api/sysinfo/ip_addresses'], ['GET', '/api/sysinfo/hostname'], ['GET', '/api/config?decrypt_passwords=True']];
    for (const [m, u] of reads) assert.equal((await api.call(m, u)).status, 200, u);
    const config0 = (await api.call('GET', '/api/config?decrypt_passwords=True')).body;
    assert.ok((config0.version as number) >= 10 && (config0.version as number) <= 11, 'the Dashboard manages config versions 10-11');

    const create: Step[] = [
      ['PUT', `/api/target/${IQN}`, { controls: '{}' }],
      ['PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', skipchecks: 'true' }],
      ['PUT', `/api/gateway/${IQN}/iscsi2`, { ip_address: '127.0.0.2', skipchecks: 'true' }],
      ['PUT', '/api/disk/rbd/dash_img', { mode: 'create', backstore: 'user:rbd', wwn: '' }],
      ['PUT', '/api/disk/rbd/dash_img2', { mode: 'create', backstore: 'user:rbd', wwn: '6001405a-0000-4000-8000-00000000d45b' }],
      ['PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/dash_img', lun_id: '0' }],
      ['PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/dash_img2', lun_id: '1' }],
      ['PUT', `/api/client/${IQN}/${C1}`],
      ['PUT', `/api/clientlun/${IQN}/${C1}`, { disk: 'rbd/dash_img' }],
      ['PUT', `/api/clientauth/${IQN}/${C1}`, { username: 'dashuser1', password: 'dashpassword1', mutual_username: '', mutual_password: '' }],
      ['PUT', `/api/client/${IQN}/${C2}`],
      ['PUT', `/api/hostgroup/${IQN}/group1`, { members: C2, disks: 'rbd/dash_img2' }],
      ['PUT', '/api/discoveryauth', { username: '', password: '', mutual_username: '', mutual_password: '' }],
      ['PUT', `/api/target/${IQN}`, { mode: 'reconfigure', controls: '{"cmdsn_depth": 256, "dataout_timeout": 30}' }],
      ['PUT', '/api/disk/rbd/dash_img', { mode: 'reconfigure', controls: '{"emulate_tpu": 1}' }],
      ['GET', `/api/targetinfo/${IQN}`],
      ['GET', `/api/clientinfo/${IQN}/${C1}`],
      ['GET', '/api/gatewayinfo'],
    ];
    for (const [m, u, f] of create) {
      const r = await api.call(m, u, f);
      assert.equal(r.status, 200, `${m} ${u} ${JSON.stringify(f ?? {})}: ${r.text}`);
    }
    assert.deepEqual((await api.call('GET', `/api/targetinfo/${IQN}`)).body, { num_sessions: 0 });
    assert.deepEqual((await api.call('GET', `/api/clientinfo/${IQN}/${C1}`)).body, { alias: '', state: {}, ip_address: [] });
    const c = (await api.call('GET', '/api/config?decrypt_passwords=True')).body as {
      targets: Record<string, { disks: Record<string, { lun_id: number }>; clients: Record<string, { auth: unknown; luns: Record<string, { lun_id: number }>; group_name: string }>; controls: Record<string, unknown> }>;
      disks: Record<string, { wwn: string; controls: Record<string, unknown> }>;
    };
    assert.deepEqual(c.targets[IQN].disks, { 'rbd/dash_img': { lun_id: 0 }, 'rbd/dash_img2': { lun_id: 1 } });
    assert.deepEqual(c.targets[IQN].clients[C2], { auth: c.targets[IQN].clients[C2].auth, luns: { 'rbd/dash_img2': { lun_id: 1 } }, group_name: 'group1' });
    assert.deepEqual(c.targets[IQN].controls, { cmdsn_depth: 256, dataout_timeout: 30 });
    assert.equal(c.disks['rbd/dash_img2'].wwn, '6001405a-0000-4000-8000-00000000d45b');
    assert.match(c.disks['rbd/dash_img'].wwn, /^[0-9a-f-]{36}$/, 'an empty wwn gets a new one');
    assert.deepEqual(c.disks['rbd/dash_img'].controls, { emulate_tpu: 1 });

    // The Dashboard's edit = deletes then creates; its delete of a target, in its order.
    const remove: Step[] = [
      ['PUT', `/api/hostgroup/${IQN}/group1`, { action: 'remove', members: C2, disks: 'rbd/dash_img2' }],
      ['DELETE', `/api/hostgroup/${IQN}/group1`],
      ['DELETE', `/api/clientlun/${IQN}/${C1}`, { disk: 'rbd/dash_img' }],
      ['DELETE', `/api/client/${IQN}/${C1}`],
      ['DELETE', `/api/client/${IQN}/${C2}`],
      ['DELETE', `/api/targetlun/${IQN}`, { disk: 'rbd/dash_img' }],
      ['DELETE', `/api/targetlun/${IQN}`, { disk: 'rbd/dash_img2' }],
      ['DELETE', '/api/disk/rbd/dash_img', { preserve_image: 'true' }],
      ['DELETE', '/api/disk/rbd/dash_img2', { preserve_image: 'true' }],
      ['DELETE', `/api/gateway/${IQN}/iscsi2`],
      ['DELETE', `/api/gateway/${IQN}/iscsi1`],
      ['DELETE', `/api/target/${IQN}`],
    ];
    for (const [m, u, f] of remove) {
      const r = await api.call(m, u, f);
      assert.equal(r.status, 200, `${m} ${u} ${JSON.stringify(f ?? {})}: ${r.text}`);
    }
    assert.deepEqual(await api.images.list('rbd'), ['dash_img', 'dash_img2'], 'the Dashboard never deletes images');
    assert.deepEqual((await api.store.read()).config.targets, {});
  } finally {
    await api.close();
  }
});

test('gwcli: the fields it sends for disks, targets, gateways, hosts, auth, snapshots', async () => {
  const api = await startTestApi();
  try {
    const steps: Step[] = [
      ['GET', '/api/config'],
      ['PUT', `/api/target/${IQN}`],
      ['GET', '/api/sysinfo/hostname'],
      ['PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', nosync: 'false', skipchecks: 'true' }],
      ['PUT', '/api/disk/rbd/disk_1', { pool: 'rbd', size: '90M', owner: 'iscsi1', count: '1', mode: 'create', create_image: 'true', backstore: 'user:rbd' }],
      ['GET', '/api/disk/rbd/disk_1'],
      ['PUT', '/api/disk/rbd/disk_1', { pool: 'rbd', size: '100M', owner: 'iscsi1', mode: 'resize' }],
      ['PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_1' }],
      ['PUT', `/api/client/${IQN}/${C1}`],
      ['PUT', `/api/clientauth/${IQN}/${C1}`, { username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: '', mutual_password: '' }],
      ['PUT', `/api/clientlun/${IQN}/${C1}`, { disk: 'rbd/disk_1' }],
      ['GET', `/api/_clientlun/${IQN}/${C1}`],
      ['PUT', `/api/targetauth/${IQN}`, { action: 'enable_acl' }],
      ['PUT', '/api/discoveryauth', { username: 'discoveryuser', password: 'discoverypass', mutual_username: '', mutual_password: '' }],
      ['PUT', '/api/disksnap/rbd/disk_1/snap1', { mode: 'create' }],
      ['DELETE', '/api/disksnap/rbd/disk_1/snap1'],
      ['DELETE', `/api/clientlun/${IQN}/${C1}`, { disk: 'rbd/disk_1' }],
      ['DELETE', `/api/client/${IQN}/${C1}`],
      ['DELETE', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_1' }],
      ['DELETE', '/api/disk/rbd/disk_1', { purge_host: 'iscsi1', preserve_image: 'false' }],
      ['DELETE', `/api/_target/${IQN}`],
    ];
    for (const [m, u, f] of steps) {
      const r = await api.call(m, u, f);
      assert.equal(r.status, 200, `${m} ${u} ${JSON.stringify(f ?? {})}: ${r.text}`);
    }
    assert.equal(await api.images.exists('rbd', 'disk_1'), false);
    // gwcli's clearconfig on the last gateway removes the target.
    assert.deepEqual((await api.store.read()).config.targets, {});
  } finally {
    await api.close();
  }
});
