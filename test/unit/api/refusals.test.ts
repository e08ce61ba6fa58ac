/**
 * Every route with a missing or invalid field answers 4xx with the reference's message, and a
 * refused request changes nothing: the config's epoch and content are the same afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT, TARGET, seedTarget, startTestApi } from '../../helpers/api';

const T = TARGET;
const C = CLIENT;

/** [method, url, fields, status, message (string: exact, RegExp: match)] */
type Case = [string, string, Record<string, string> | undefined, number, string | RegExp];

const CASES: Case[] = [
  // targets
  ['PUT', '/api/target/eui.0123456789abcdef', undefined, 400, 'Invalid iqn eui.0123456789abcdef - WWN not valid as: iqn'],
  ['PUT', '/api/target/iqn.2003-01.com.x_y:t', undefined, 400, 'Invalid iqn iqn.2003-01.com.x_y:t - WWN not valid as: iqn'],
  ['PUT', `/api/target/${T}`, { mode: 'bogus' }, 400, `Unexpected mode provided for ${T} - bogus`],
  ['PUT', `/api/target/${T}`, { mode: 'reconfigure', controls: '{cmdsn_depth=128}' }, 400, /^Unexpected or invalid controls - /],
  ['PUT', `/api/target/${T}`, { mode: 'reconfigure', controls: '{"cmdsn_depth": 0}' }, 400, 'Unexpected or invalid controls - expected integer >= 1 for cmdsn_depth'],
  ['PUT', `/api/target/${T}`, { mode: 'reconfigure', controls: '{"first_burst_length": 1048576}' }, 400, /first_burst_length \(1048576\) must not exceed max_burst_length/],
  ['PUT', '/api/target/iqn.2003-01.com.example:other', { mode: 'reconfigure', controls: '{}' }, 400, 'Target: iqn.2003-01.com.example:other is not defined.'],
  ['DELETE', '/api/target/iqn.2003-01.com.example:other', undefined, 404, 'Target iqn.2003-01.com.example:other does not exist'],
  ['DELETE', `/api/target/${T}`, undefined, 400, 'Clients(1) and disks(1) must be removed before the gateways'],
  // gateways
  ['PUT', `/api/gateway/${T}/iscsi1`, { ip_address: '127.0.0.9', skipchecks: 'true' }, 400, 'Gateway already exists in configuration'],
  ['PUT', `/api/gateway/${T}/iscsi3`, { skipchecks: 'true' }, 400, /^ip_address is required/],
  ['PUT', `/api/gateway/${T}/iscsi3`, { ip_address: 'not-an-ip', skipchecks: 'true' }, 400, "IP address provided is not usable (name doesn't resolve, or not a valid IPv4/IPv6 address)"],
  ['PUT', `/api/gateway/${T}/iscsi3`, { ip_address: '127.0.0.2', skipchecks: 'true' }, 400, 'IP address already defined to the configuration'],
  ['PUT', `/api/gateway/${T}/no-such-host.invalid`, { ip_address: '127.0.0.3' }, 400, "Gateway 'no-such-host.invalid' is not resolvable to an IP address"],
  ['PUT', `/api/gateway/${T}/bad_name!`, { ip_address: '127.0.0.3', skipchecks: 'true' }, 400, /^Invalid gateway name/],
  ['DELETE', `/api/gateway/${T}/iscsi9`, undefined, 404, 'Gateway does not exist in configuration'],
  ['PUT', `/api/gateway/${T}/iscsi1`, { ip_address: '192.0.2.1' }, 400, 'Gateway already exists in configuration'],
  ['PUT', `/api/gateway/${T}2/iscsi1`, { ip_address: '192.0.2.1' }, 400, /^IP address of 192\.0\.2\.1 is not available on iscsi1\. Valid IPs are :/],
  ['PUT', `/api/gateway/${T}3/iscsi1`, { ip_address: '192.0.2.1' }, 404, `Target ${T}3 does not exist`],
  ['GET', '/api/gateways/iqn.2003-01.com.example:other', undefined, 404, 'Target iqn.2003-01.com.example:other does not exist'],
  // disks
  ['PUT', '/api/disk/rbd/new', undefined, 400, "disk operation mode 'None' is invalid"],
  ['PUT', '/api/disk/rbd/new', { mode: 'explode' }, 400, "disk operation mode 'explode' is invalid"],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '10' }, 400, 'Size is invalid'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1.5G' }, 400, 'Size is invalid'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', count: '11' }, 400, 'invalid count specified, must be an integer (1-10)'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', count: 'x' }, 400, 'invalid count specified, must be an integer (1-10)'],
  ['PUT', '/api/disk/bad%20pool/new', { mode: 'create', size: '1G' }, 400, "Invalid pool name (use alphanumeric, '_', '.', or '-' characters)"],
  ['PUT', '/api/disk/rbd/new@x', { mode: 'create', size: '1G' }, 400, "Invalid image name (use alphanumeric, '_', '.', or '-' characters)"],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', backstore: 'fileio' }, 400, "Invalid 'fileio' backstore - Supported backstores: user:rbd,rbd"],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', count: '2', wwn: 'abc' }, 400, 'WWN cannot be specified when count > 1'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', wwn: '11111111-2222-3333-4444-555555555555' }, 400, 'WWN 11111111-2222-3333-4444-555555555555 is already in use by rbd/disk_1'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', size: '1G', controls: '{"block_size": 1000}' }, 400, 'Unexpected or invalid controls - expected [512, 1024, 2048, 4096] for block_size found 1000'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create' }, 400, 'Size parameter is required when creating a new image'],
  ['PUT', '/api/disk/rbd/new', { mode: 'create', create_image: 'false' }, 400, 'Image rbd/new does not exist'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'create', size: '1G' }, 400, 'at least one rbd image(s) with that name/prefix is already defined'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'resize', size: '1M' }, 400, 'resize value must be larger than the current size (16M/16777216)'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'resize', size: 'big' }, 400, 'Size is invalid'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'resize' }, 400, 'resize request must contain the following variables: pool,image,size'],
  ['PUT', '/api/disk/rbd/nope', { mode: 'resize', size: '2G' }, 400, 'rbd rbd/nope is not defined to the configuration'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'reconfigure' }, 400, 'reconfigure request must contain the following variables: pool,image,controls'],
  ['PUT', '/api/disk/rbd/disk_1', { mode: 'reconfigure', controls: '{"pi_prot_type": 1}' }, 400, /^Unexpected or invalid controls - pi_prot_type 1 is not supported/],
  ['GET', '/api/disk/rbd/nope', undefined, 404, 'rbd image rbd/nope not found'],
  ['DELETE', '/api/disk/rbd/nope', { preserve_image: 'true' }, 400, 'rbd rbd/nope is not defined to the configuration'],
  ['DELETE', '/api/disk/rbd/disk_1', { preserve_image: 'true' }, 400, `Unable to delete rbd/disk_1. Allocated to: ${C}`],
  ['DELETE', '/api/disk/rbd/disk_2', undefined, 400, "preserve_image is required: 'true' keeps the image (detach), 'false' deletes it"],
  // snapshots
  ['PUT', '/api/disksnap/rbd/disk_1/a@b', { mode: 'create' }, 400, 'snapshot name is invalid'],
  ['PUT', '/api/disksnap/rbd/nope/s1', { mode: 'create' }, 404, 'rbd image rbd/nope not found'],
  ['PUT', '/api/disksnap/rbd/disk_1/s1', { mode: 'bogus' }, 400, 'mode is invalid'],
  ['PUT', '/api/disksnap/rbd/disk_1/s1', undefined, 400, 'mode is invalid'],
  ['PUT', '/api/disksnap/rbd/disk_1/nosnap', { mode: 'rollback' }, 404, 'snapshot nosnap does not exist'],
  ['DELETE', '/api/disksnap/rbd/disk_1/nosnap', undefined, 404, 'snapshot nosnap does not exist'],
  ['PUT', '/api/disksnap/rbd/disk_1/s1', { mode: 'clone' }, 400, 'dest is required: the new disk as <pool>/<image>'],
  // LUN mapping
  ['PUT', `/api/targetlun/${T}`, undefined, 400, 'disk is required (<pool>/<image>)'],
  ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/nope' }, 400, 'Disk rbd/nope is not defined in the configuration'],
  ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/disk_1' }, 400, `Disk rbd/disk_1 cannot be used because it is already mapped on target ${T}`],
  ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/disk_2', lun_id: 'one' }, 400, 'Lun id must be a number'],
  ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/disk_2', lun_id: '0' }, 400, 'Lun id 0 already in use'],
  ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/gone' }, 400, 'Image rbd/gone not found'],
  ['DELETE', `/api/targetlun/${T}`, { disk: 'rbd/disk_2' }, 400, `Disk rbd/disk_2 is not defined in target ${T}`],
  ['DELETE', `/api/targetlun/${T}`, { disk: 'rbd/disk_1' }, 400, `Disk rbd/disk_1 is mapped to client(s) ${C} - remove it from them first`],
  // clients
  ['PUT', `/api/client/${T}/not-an-iqn`, undefined, 400, 'Invalid IQN name for iSCSI'],
  ['PUT', `/api/client/${T}/${C}`, undefined, 400, `A client with the name '${C}' is already defined`],
  ['DELETE', `/api/client/${T}/iqn.1994-05.com.redhat:nobody`, undefined, 400, 'iqn.1994-05.com.redhat:nobody is not defined yet - nothing to delete'],
  ['PUT', `/api/clientauth/${T}/${C}`, { username: 'myiscsiusername' }, 400, 'Password is required'],
  ['PUT', `/api/clientauth/${T}/${C}`, { password: 'myiscsipassword' }, 400, 'Username is required'],
  ['PUT', `/api/clientauth/${T}/${C}`, { username: 'short', password: 'myiscsipassword' }, 400, 'Minimum length of username is 8 characters'],
  ['PUT', `/api/clientauth/${T}/${C}`, { username: 'myiscsiusername', password: 'short' }, 400, 'Minimum length of password is 12 characters'],
  ['PUT', `/api/clientauth/${T}/${C}`, { username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: 'mutualuser1' }, 400, 'Mutual password is required'],
  ['PUT', `/api/clientauth/${T}/${C}`, { username: 'my iscsi user', password: 'myiscsipassword' }, 400, 'Invalid username'],
  ['PUT', `/api/clientauth/${T}/iqn.1994-05.com.redhat:nobody`, { username: '', password: '' }, 404, "Client 'iqn.1994-05.com.redhat:nobody' does not exist"],
  ['PUT', `/api/clientlun/${T}/${C}`, undefined, 400, 'disk is required (<pool>/<image>)'],
  ['PUT', `/api/clientlun/${T}/${C}`, { disk: 'rbd/nope' }, 400, 'Invalid image list - it defines new disks that do not current exist'],
  ['PUT', `/api/clientlun/${T}/${C}`, { disk: 'rbd/disk_2' }, 400, `Disk rbd/disk_2 is not mapped to target ${T} - map it to the target first`],
  ['DELETE', `/api/clientlun/${T}/${C}`, { disk: 'rbd/disk_2' }, 400, 'disk not mapped to client'],
  ['GET', `/api/_clientlun/${T}/iqn.1994-05.com.redhat:nobody`, undefined, 404, 'Client does not exist'],
  // host groups
  ['PUT', `/api/hostgroup/${T}/g1`, { action: 'merge' }, 405, 'Invalid hostgroup action specified'],
  ['PUT', `/api/hostgroup/${T}/bad.name`, { members: C }, 400, /^Invalid host group name/],
  ['PUT', `/api/hostgroup/${T}/g1`, { members: 'iqn.1994-05.com.redhat:nobody' }, 400, "client 'iqn.1994-05.com.redhat:nobody' doesn't exist"],
  ['PUT', `/api/hostgroup/${T}/g1`, { members: `${C},${C}` }, 400, 'Member must contain unique clients - no duplication'],
  ['PUT', `/api/hostgroup/${T}/g1`, { disks: 'rbd/nope' }, 400, "disk 'rbd/nope' doesn't exist"],
  ['PUT', `/api/hostgroup/${T}/g1`, { members: C }, 400, `Client '${C}' already has luns. Only clients without prior lun maps can be added to a group`],
  ['GET', `/api/hostgroup/${T}/g1`, undefined, 404, 'Group name does not exist'],
  ['DELETE', `/api/hostgroup/${T}/g1`, undefined, 404, "Group name 'g1' not found"],
  // auth
  ['PUT', `/api/targetauth/${T}`, { action: 'bogus' }, 400, 'Invalid auth bogus'],
  ['PUT', `/api/targetauth/${T}`, { action: 'disable_acl' }, 400, 'Cannot disable ACL authentication because target has clients'],
  ['PUT', `/api/targetauth/${T}`, { username: 'targetuser1', password: 'targetpass123' }, 400, 'Cannot enable target CHAP authentication because ACL authentication is enabled'],
  ['PUT', `/api/targetauth/${T}`, { username: 'targetuser1' }, 400, 'Password is required'],
  ['PUT', '/api/discoveryauth', { username: 'u', password: 'discoverpass12' }, 400, 'Minimum length of username is 8 characters'],
  ['PUT', '/api/discoveryauth', { mutual_password: 'discoverpass12' }, 400, 'Mutual username is required'],
  ['PUT', '/api/discoveryauth', { username: 'discoveruser', password: 'discoverpass12345' }, 400, 'Maximum length of password is 16 characters'],
  // an invalid target IQN in any path
  ...['/api/clients/x', '/api/hostgroups/x', '/api/gateways/x', '/api/targetinfo/x', '/api/hostgroup/x/g1', `/api/clientinfo/x/${C}`, `/api/_clientlun/x/${C}`]
    .map((u): Case => ['GET', u, undefined, 400, 'Invalid iqn x - WWN not valid as: iqn']),
  ...[`/api/targetlun/x`, `/api/client/x/${C}`, `/api/clientauth/x/${C}`, `/api/clientlun/x/${C}`, '/api/targetauth/x', '/api/gateway/x/iscsi3', '/api/hostgroup/x/g1']
    .map((u): Case => ['PUT', u, { disk: 'rbd/disk_2' }, 400, 'Invalid iqn x - WWN not valid as: iqn']),
  // misc
  ['GET', '/api/sysinfo/bogus', undefined, 404, 'Unknown /sysinfo query'],
  ['GET', '/api/nothing-here', undefined, 404, 'Not found: GET /api/nothing-here'],
  ['GET', `/api/targetinfo/iqn.2003-01.com.example:other`, undefined, 404, 'Target iqn.2003-01.com.example:other does not exist'],
  ['GET', `/api/clientinfo/${T}/iqn.1994-05.com.redhat:nobody`, undefined, 404, 'Client iqn.1994-05.com.redhat:nobody does not exist'],
];

test('every refused request answers 4xx with its message and leaves the config as it was', async () => {
  const api = await startTestApi();
  try {
    await seedTarget(api);
    const setup: Array<[string, string, Record<string, string>?]> = [
      ['PUT', '/api/disk/rbd/disk_1', { mode: 'create', size: '16M', wwn: '11111111-2222-3333-4444-555555555555' }],
      ['PUT', '/api/disk/rbd/disk_2', { mode: 'create', size: '16M' }],
      ['PUT', '/api/disk/rbd/gone', { mode: 'create', size: '16M' }],
      ['PUT', `/api/targetlun/${T}`, { disk: 'rbd/disk_1' }],
      ['PUT', `/api/client/${T}/${C}`],
      ['PUT', `/api/clientlun/${T}/${C}`, { disk: 'rbd/disk_1' }],
      ['PUT', `/api/target/${T}2`],
    ];
    for (const [m, u, f] of setup) {
      const r = await api.call(m, u, f);
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    await api.images.remove('rbd', 'gone'); // registered, image gone behind the config's back
    const before = await api.store.read();
    const beforeText = JSON.stringify(before.config);
    const images = await api.images.list('rbd');
    for (const [method, url, fields, status, message] of CASES) {
      const r = await api.call(method, url, fields);
      const where = `${method} ${url} ${JSON.stringify(fields ?? {})}`;
      assert.equal(r.status, status, `${where}: ${r.text}`);
      if (typeof message === 'string') assert.equal(r.body.message, message, where);
      else assert.match(String(r.body.message), message, where);
      const after = await api.store.read();
      assert.equal(after.epoch, before.epoch, `${where} changed the epoch`);
      assert.equal(JSON.stringify(after.config), beforeText, `${where} changed the config`);
    }
    assert.deepEqual(await api.images.list('rbd'), images, 'no image created or removed by a refused request');
    // Not a single one leaked a password into a message.
    assert.ok(!CASES.some(([, , , , m]) => typeof m === 'string' && /myiscsipassword|targetpass123/.test(m)));
  } finally {
    await api.close();
  }
});

test('disk limit: 1024 disks, the 1025th is refused', async () => {
  const api = await startTestApi();
  try {
    await seedTarget(api);
    // Fill the config directly (creating 1024 images would only test the store).
    await api.store.update((c) => {
      for (let i = 0; i < 1024; i++) {
        c.disks[`rbd/d${i}`] = { pool: 'rbd', image: `d${i}`, wwn: `wwn-${i}`, backstore: 'user:rbd', backstore_object_name: `rbd.d${i}`, controls: {} };
      }
    });
    const before = await api.store.read();
    const r = await api.call('PUT', '/api/disk/rbd/one_more', { mode: 'create', size: '1M' });
    assert.deepEqual([r.status, r.body.message], [400, 'Disk limit of 1024 reached.']);
    assert.equal((await api.store.read()).epoch, before.epoch);
    assert.equal(await api.images.exists('rbd', 'one_more'), false);
  } finally {
    await api.close();
  }
});
