/**
 * The seed's flow (user's guide §6.4.3-6.4.5) over the REST API, checked in the committed
 * config: target, two gateways, disks, LUN mapping (owners balanced), host, CHAP, LUN masking,
 * host group; then snapshots beyond ceph-iscsi, and tear-down in the order ceph-iscsi demands.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT, TARGET, seedTarget, startTestApi } from '../../helpers/api';

test('seed flow: target, gateways, disks, LUNs, host, CHAP, masking; config has the v11 shape', async () => {
  const api = await startTestApi();
  try {
    await seedTarget(api);
    let r = await api.call('PUT', '/api/disk/rbd/disk_1', { mode: 'create', size: '64M', create_image: 'true' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.message, 'disk create/update successful');
    r = await api.call('PUT', '/api/disk/rbd/disk_2', { mode: 'create', size: '32M' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await api.images.info('rbd', 'disk_2')).size, 32 * 2 ** 20);
    for (const d of ['rbd/disk_1', 'rbd/disk_2']) {
      r = await api.call('PUT', `/api/targetlun/${TARGET}`, { disk: d });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.message, 'Target LUN mapping updated successfully');
    }
    r = await api.call('PUT', `/api/client/${TARGET}/${CLIENT}`);
    assert.equal(r.status, 200, r.text);
    r = await api.call('PUT', `/api/clientauth/${TARGET}/${CLIENT}`, { username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: '', mutual_password: '' });
    assert.equal(r.status, 200, r.text);
    r = await api.call('PUT', `/api/clientlun/${TARGET}/${CLIENT}`, { disk: 'rbd/disk_1' });
    assert.equal(r.status, 200, r.text);

    const c = (await api.store.read()).config;
    assert.equal(c.version, 11);
    const t = c.targets[TARGET];
    assert.deepEqual(t.ip_list, ['127.0.0.1', '127.0.0.2']);
    assert.deepEqual(t.portals.iscsi1, { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: ['127.0.0.2'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 });
    assert.deepEqual(t.portals.iscsi2.inactive_portal_ips, ['127.0.0.1']);
    assert.deepEqual(t.disks, { 'rbd/disk_1': { lun_id: 0 }, 'rbd/disk_2': { lun_id: 1 } });
    // Owners balanced over the two gateways, active_luns counted.
    assert.deepEqual([c.disks['rbd/disk_1'].owner, c.disks['rbd/disk_2'].owner].sort(), ['iscsi1', 'iscsi2']);
    assert.equal(c.gateways.iscsi1.active_luns, 1);
    assert.equal(c.gateways.iscsi2.active_luns, 1);
    assert.equal(c.disks['rbd/disk_1'].backstore, 'user:rbd');
    assert.equal(c.disks['rbd/disk_1'].backstore_object_name, 'rbd.disk_1');
    assert.match(c.disks['rbd/disk_1'].wwn, /^[0-9a-f-]{36}$/);
    assert.equal(c.disks['rbd/disk_1'].allocating_host, 'iscsi1');
    assert.deepEqual(t.clients[CLIENT].luns, { 'rbd/disk_1': { lun_id: 0 } });
    assert.equal(t.clients[CLIENT].auth.username, 'myiscsiusername');
    assert.equal(t.clients[CLIENT].auth.password, 'myiscsipassword');
    assert.equal(t.acl_enabled, true);

    // Reads as gwcli/the Dashboard make them.
    assert.deepEqual((await api.call('GET', '/api/targets')).body, { targets: [TARGET] });
    assert.deepEqual((await api.call('GET', `/api/clients/${TARGET}`)).body, { clients: [CLIENT] });
    assert.deepEqual((await api.call('GET', `/api/_clientlun/${TARGET}/${CLIENT}`)).body, { message: { 'rbd/disk_1': { lun_id: 0 } } });
    assert.deepEqual(Object.keys((await api.call('GET', `/api/gateways/${TARGET}`)).body).sort(), ['iscsi1', 'iscsi2']);
    const disk = await api.call('GET', '/api/disk/rbd/disk_1');
    assert.equal(disk.status, 200);
    assert.equal((disk.body.status as { state: string }).state, 'Online');
    assert.deepEqual((await api.call('GET', '/api/disks')).body, { disks: ['rbd/disk_1', 'rbd/disk_2'] });
    // gwcli sends config=yes as a form body of the GET (as rbd-target-api reads it).
    const all = (await api.call('GET', '/api/disks', { config: 'yes' })).body.disks as Record<string, { pool: string }>;
    assert.deepEqual(Object.keys(all), ['rbd/disk_1', 'rbd/disk_2']);
    assert.equal(all['rbd/disk_1'].pool, 'rbd');
    assert.equal((await api.call('GET', '/api/config')).body.epoch, c.epoch);

    // Host group: a second client joins with disk_2 under the same LUN id.
    const c2 = 'iqn.1998-01.com.vmware:esx1';
    assert.equal((await api.call('PUT', `/api/client/${TARGET}/${c2}`)).status, 200);
    r = await api.call('PUT', `/api/hostgroup/${TARGET}/esx-cluster`, { members: c2, disks: 'rbd/disk_2' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await api.call('GET', `/api/hostgroup/${TARGET}/esx-cluster`)).body, { members: [c2], disks: { 'rbd/disk_2': { lun_id: 1 } } });
    r = await api.call('PUT', `/api/hostgroup/${TARGET}/esx-cluster`, { members: CLIENT });
    assert.equal(r.status, 400);
    assert.equal(r.body.message, `Client '${CLIENT}' already has luns. Only clients without prior lun maps can be added to a group`);
    r = await api.call('DELETE', `/api/client/${TARGET}/${c2}`);
    assert.equal(r.body.message, `Unable to delete '${c2}' - it belongs to group esx-cluster`);
    assert.equal((await api.call('DELETE', `/api/hostgroup/${TARGET}/esx-cluster`)).body.message, "Group definition 'esx-cluster' deleted");

    // Tear-down in ceph-iscsi's order: refusals first.
    r = await api.call('DELETE', '/api/disk/rbd/disk_1', { preserve_image: 'false' });
    assert.equal(r.status, 400);
    assert.equal(r.body.message, `Unable to delete rbd/disk_1. Allocated to: ${CLIENT}`);
    r = await api.call('DELETE', `/api/target/${TARGET}`);
    assert.equal(r.body.message, 'Clients(2) and disks(2) must be removed before the gateways');
    assert.equal((await api.call('DELETE', `/api/clientlun/${TARGET}/${CLIENT}`, { disk: 'rbd/disk_1' })).status, 200);
    for (const cl of [CLIENT, c2]) assert.equal((await api.call('DELETE', `/api/client/${TARGET}/${cl}`)).status, 200);
    r = await api.call('DELETE', '/api/disk/rbd/disk_1', { preserve_image: 'false' });
    assert.equal(r.body.message, `Unable to delete rbd/disk_1. Mapped to: ${TARGET}`);
    for (const d of ['rbd/disk_1', 'rbd/disk_2']) assert.equal((await api.call('DELETE', `/api/targetlun/${TARGET}`, { disk: d })).status, 200);
    assert.equal((await api.store.read()).config.disks['rbd/disk_1'].owner, undefined);
    assert.equal((await api.call('DELETE', '/api/disk/rbd/disk_1', { preserve_image: 'false' })).status, 200);
    assert.equal(await api.images.exists('rbd', 'disk_1'), false);
    assert.equal((await api.call('DELETE', '/api/disk/rbd/disk_2', { preserve_image: 'true' })).status, 200);
    assert.equal(await api.images.exists('rbd', 'disk_2'), true, 'detach keeps the image');
    assert.equal((await api.call('DELETE', `/api/gateway/${TARGET}/iscsi2`)).body.message, 'Gateway deletion successful');
    assert.equal((await api.call('DELETE', `/api/target/${TARGET}`)).body.message, 'Target deleted.');
    const end = (await api.store.read()).config;
    assert.deepEqual(end.targets, {});
    assert.deepEqual(end.disks, {});
    assert.deepEqual(end.gateways, {});
  } finally {
    await api.close();
  }
});

test('disk create count=3, attach of an existing image, resize, reconfigure', async () => {
  const api = await startTestApi();
  try {
    await seedTarget(api);
    let r = await api.call('PUT', '/api/disk/rbd/multi', { mode: 'create', size: '8M', count: '3' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys((await api.store.read()).config.disks).sort(), ['rbd/multi1', 'rbd/multi2', 'rbd/multi3']);
    await api.images.create('rbd', 'existing', 4 * 2 ** 20);
    r = await api.call('PUT', '/api/disk/rbd/existing', { mode: 'create', backstore: 'user:rbd', wwn: '11111111-2222-3333-4444-555555555555' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await api.store.read()).config.disks['rbd/existing'].wwn, '11111111-2222-3333-4444-555555555555');
    r = await api.call('PUT', '/api/disk/rbd/existing', { mode: 'resize', size: '4M' });
    assert.equal(r.body.message, 'resize value must be larger than the current size (4M/4194304)');
    r = await api.call('PUT', '/api/disk/rbd/existing', { mode: 'resize', size: '1G' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await api.images.info('rbd', 'existing')).size, 2 ** 30);
    r = await api.call('PUT', '/api/disk/rbd/existing', { mode: 'reconfigure', controls: '{"emulate_pr": 0, "queue_depth": "64"}' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await api.store.read()).config.disks['rbd/existing'].controls, { emulate_pr: 0, queue_depth: 64 });
    r = await api.call('PUT', '/api/disk/rbd/existing', { mode: 'reconfigure', controls: '{"emulate_pr": ""}' });
    assert.deepEqual((await api.store.read()).config.disks['rbd/existing'].controls, { queue_depth: 64 }, 'empty resets to the default');
    r = await api.call('PUT', `/api/target/${TARGET}`, { mode: 'reconfigure', controls: '{"cmdsn_depth": 64, "immediate_data": "No"}' });
    assert.equal(r.body.message, 'Target reconfigured.');
    assert.deepEqual((await api.store.read()).config.targets[TARGET].controls, { cmdsn_depth: 64, immediate_data: false });
  } finally {
    await api.close();
  }
});

test('snapshots: create, rollback, delete as ceph-iscsi; protect, clone, flatten, read-only export beyond it', async () => {
  const api = await startTestApi();
  try {
    await seedTarget(api);
    assert.equal((await api.call('PUT', '/api/disk/rbd/base', { mode: 'create', size: '8M' })).status, 200);
    let r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'create' });
    assert.equal(r.body.message, 'disk snapshot snapshot created');
    r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'create' });
    assert.deepEqual([r.status, r.body.message], [400, 'snapshot monday already exists']);
    r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'rollback' });
    assert.equal(r.body.message, 'disk snapshot rolled back to snapshot');
    assert.deepEqual(((await api.call('GET', '/api/disksnap/rbd/base')).body.snapshots as Array<{ name: string }>).map((s) => s.name), ['monday']);
    r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'clone', dest: 'rbd/child' });
    assert.equal(r.status, 400, 'clone needs a protected snapshot');
    assert.match(String(r.body.message), /must be protected/);
    assert.equal((await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'protect' })).body.message, 'disk snapshot protected');
    r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'clone', dest: 'rbd/child' });
    assert.equal(r.status, 200, r.text);
    assert.ok((await api.store.read()).config.disks['rbd/child'], 'the clone is a disk');
    assert.equal((await api.call('PUT', '/api/disk/rbd/child', { mode: 'flatten' })).status, 200);
    assert.equal((await api.images.info('rbd', 'child')).parent, null);
    r = await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'export' });
    assert.equal(r.status, 200, r.text);
    const exp = (await api.store.read()).config.disks['rbd/base@monday'];
    assert.equal(exp.snapshot, 'monday');
    r = await api.call('PUT', `/api/targetlun/${TARGET}`, { disk: 'rbd/base@monday' });
    assert.equal(r.status, 200, r.text);
    r = await api.call('DELETE', '/api/disksnap/rbd/base/monday');
    assert.equal(r.body.message, 'snapshot monday is exported as disk rbd/base@monday - delete that disk first');
    assert.equal((await api.call('DELETE', `/api/targetlun/${TARGET}`, { disk: 'rbd/base@monday' })).status, 200);
    assert.equal((await api.call('DELETE', '/api/disk/rbd/base@monday', { preserve_image: 'false' })).status, 200);
    assert.equal(await api.images.exists('rbd', 'base'), true, 'unregistering an export never deletes the image');
    assert.equal((await api.call('PUT', '/api/disksnap/rbd/base/monday', { mode: 'unprotect' })).body.message, 'disk snapshot unprotected');
    r = await api.call('DELETE', '/api/disk/rbd/base', { preserve_image: 'false' });
    assert.equal(r.body.message, 'Unable to delete the underlying rbd image rbd/base - Image has snapshots');
    assert.equal((await api.call('DELETE', '/api/disksnap/rbd/base/monday')).body.message, 'disk snapshot snapshot deleted');
    r = await api.call('DELETE', '/api/disksnap/rbd/base/monday');
    assert.deepEqual([r.status, r.body.message], [404, 'snapshot monday does not exist']);
    assert.equal((await api.call('DELETE', '/api/disk/rbd/base', { preserve_image: 'false' })).status, 200);
  } finally {
    await api.close();
  }
});

test('target auth modes, discovery auth, settings, /api, sysinfo, encrypted passwords and decrypt_passwords', async () => {
  const { ChapSecrets, generateChapKeyPair } = await import('../../../src/config/secrets');
  const keys = generateChapKeyPair();
  const api = await startTestApi({ secrets: ChapSecrets.fromPem(keys.publicKey, keys.privateKey) });
  try {
    await seedTarget(api);
    const creds = { username: 'targetuser1', password: 'targetpass123', mutual_username: '', mutual_password: '' };
    let r = await api.call('PUT', `/api/targetauth/${TARGET}`, creds);
    assert.equal(r.body.message, 'Cannot enable target CHAP authentication because ACL authentication is enabled');
    r = await api.call('PUT', `/api/targetauth/${TARGET}`, { action: 'disable_acl' });
    assert.equal(r.body.message, 'target auth disable_acl - successful');
    r = await api.call('PUT', `/api/targetauth/${TARGET}`, creds);
    assert.equal(r.status, 200, r.text);
    r = await api.call('PUT', `/api/client/${TARGET}/${CLIENT}`);
    assert.equal(r.body.message, 'Cannot create client because target CHAP authentication is enabled');
    r = await api.call('PUT', `/api/targetauth/${TARGET}`, { action: 'enable_acl' });
    assert.equal(r.body.message, 'Cannot enable ACL authentication because target CHAP authentication is enabled');
    r = await api.call('PUT', `/api/targetauth/${TARGET}`, { action: 'bogus' });
    assert.equal(r.body.message, 'Invalid auth bogus');
    r = await api.call('PUT', '/api/discoveryauth', { username: 'discoveruser', password: 'discoverpass12', mutual_username: 'mutualuser1', mutual_password: 'mutualpass1234' });
    assert.equal(r.body.message, 'discovery auth successful');
    const stored = (await api.store.read()).config;
    assert.equal(stored.discovery_auth.password_encryption_enabled, true);
    assert.notEqual(stored.discovery_auth.password, 'discoverpass12', 'encrypted at rest');
    assert.notEqual(stored.targets[TARGET].auth.password, 'targetpass123');
    const plain = (await api.call('GET', '/api/config?decrypt_passwords=True')).body as { discovery_auth: { password: string; mutual_password: string } };
    assert.equal(plain.discovery_auth.password, 'discoverpass12');
    assert.equal(plain.discovery_auth.mutual_password, 'mutualpass1234');
    const raw = (await api.call('GET', '/api/config')).body as { discovery_auth: { password: string } };
    assert.equal(raw.discovery_auth.password, stored.discovery_auth.password);

    const s = (await api.call('GET', '/api/settings')).body as Record<string, unknown>;
    assert.equal(s.api_version, 2);
    assert.deepEqual((s.target_controls_limits as Record<string, unknown>).cmdsn_depth, { min: 1, max: 512, type: 'int' });
    assert.deepEqual((s.config as Record<string, unknown>), { minimum_gateways: 1 });
    assert.equal(s.default_backstore, 'user:rbd');
    assert.ok(((s.disk_controls_limits as Record<string, Record<string, unknown>>)['user:rbd']).emulate_pr);

    const idx = await api.call('GET', '/api', undefined, { auth: null });
    assert.equal(idx.status, 200, 'the index needs no credentials');
    const entries = (idx.body.api as Array<[string, string, string[]]>);
    assert.ok(entries.some(([d, m]) => d.startsWith('/api/target/<target_iqn> : ') && m === 'Methods: PUT,DELETE'));
    assert.ok(entries.every(([d]) => !/\/_/.test(d.split(' : ')[0])), 'internal routes are hidden');
    assert.equal((await api.call('GET', '/api/sysinfo/hostname')).body.data, 'iscsi1');
    assert.match(String((await api.call('GET', '/api/sysinfo/checkconf')).body.data), /^[0-9a-f]{64}$/);
    assert.ok(Array.isArray((await api.call('GET', '/api/sysinfo/ip_addresses')).body.data));
    assert.deepEqual((await api.call('GET', '/api/sysinfo/bogus')).body, { message: 'Unknown /sysinfo query' });
    assert.deepEqual((await api.call('GET', '/api/_ping')).body, { message: 'pong' });
  } finally {
    await api.close();
  }
});
