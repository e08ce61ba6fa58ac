/** Which image provider a settings file selects, and the OSD op timeout taken from ceph.conf. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_OSD_OP_TIMEOUT_S, cephFromSettingsFile, connectCephImages, osdOpTimeout } from '../../../src/images/select';

function dir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'igw-select-'));
}

function cfg(d: string, lines: string[]): string {
  const f = path.join(d, 'iscsi-gateway.cfg');
  fs.writeFileSync(f, ['[config]', ...lines, ''].join('\n'));
  return f;
}

const NO_ENV: NodeJS.ProcessEnv = {};

test('no settings file: the embedded store', () => {
  assert.equal(cephFromSettingsFile(undefined, { CEPH_CONF: '/etc/ceph/ceph.conf' }), undefined);
});

test('ceph_config_dir alone (the CHAP key pair lives there) does not choose Ceph without a conf file', () => {
  const d = dir();
  assert.equal(cephFromSettingsFile(cfg(d, [`ceph_config_dir = ${d}`, 'api_port = 5001']), NO_ENV), undefined);
});

test('a conf file under ceph_config_dir chooses Ceph', () => {
  const d = dir();
  fs.writeFileSync(path.join(d, 'ceph.conf'), '[global]\n');
  assert.deepEqual(cephFromSettingsFile(cfg(d, [`ceph_config_dir = ${d}`]), NO_ENV), { configDir: d });
  // A cluster named otherwise looks for <name>.conf.
  fs.writeFileSync(path.join(d, 'backup.conf'), '[global]\n');
  assert.deepEqual(cephFromSettingsFile(cfg(d, [`ceph_config_dir = ${d}`, 'cluster_name = backup']), NO_ENV), { clusterName: 'backup', configDir: d });
});

test('cluster_name or gateway_keyring chooses Ceph even without a conf file (the start then fails clearly)', () => {
  const d = dir();
  assert.deepEqual(cephFromSettingsFile(cfg(d, ['cluster_name = ceph', `ceph_config_dir = ${d}`, 'cluster_client_name = client.iscsi']), NO_ENV),
    { clusterName: 'ceph', configDir: d, clientName: 'client.iscsi' });
  assert.deepEqual(cephFromSettingsFile(cfg(d, ['gateway_keyring = iscsi.keyring']), NO_ENV), { keyring: 'iscsi.keyring' });
});

test('CEPH_CONF names the conf file when a settings file is given', () => {
  const d = dir();
  const conf = path.join(d, 'elsewhere.conf');
  fs.writeFileSync(conf, '[global]\n');
  assert.deepEqual(cephFromSettingsFile(cfg(d, ['api_port = 5001']), { CEPH_CONF: conf }), {});
  assert.equal(cephFromSettingsFile(cfg(d, ['api_port = 5001']), { CEPH_CONF: path.join(d, 'missing.conf') }), undefined);
});

test('a configured cluster whose conf file is missing fails the start with what was configured', async () => {
  const d = dir();
  await assert.rejects(connectCephImages({ confFile: path.join(d, 'ceph.conf'), clusterName: 'ceph' }),
    (e: Error) => /^Ceph is configured \(cluster 'ceph', conf .*ceph\.conf, client client\.admin\) but /.test(e.message)
      && /does not exist|binding is not available/.test(e.message));
});

test('rados_osd_op_timeout from ceph.conf, else 30 s', () => {
  const d = dir();
  const conf = path.join(d, 'ceph.conf');
  fs.writeFileSync(conf, '[global]\nfsid = x\n');
  assert.equal(osdOpTimeout(conf), DEFAULT_OSD_OP_TIMEOUT_S);
  fs.writeFileSync(conf, '[global]\nrados osd op timeout = 12\n');
  assert.equal(osdOpTimeout(conf), 12);
  fs.writeFileSync(conf, '[client]\nrados_osd_op_timeout = 5\n[global]\nrados_osd_op_timeout = 9\n');
  assert.equal(osdOpTimeout(conf), 5);
  assert.equal(osdOpTimeout(path.join(d, 'missing.conf')), DEFAULT_OSD_OP_TIMEOUT_S);
});
