/**
 * When the daemon uses Ceph (src/ceph/settings.ts, the same rule as the image provider's): never
 * without a settings file; with one, when it names the cluster (cluster_name, gateway_keyring) or
 * the cluster's conf file exists (CEPH_CONF, else <ceph_config_dir>/<cluster_name>.conf). A
 * ceph_config_dir that only holds the CHAP key pair keeps everything embedded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cephSettings, cephSettingsFromEnv } from '../../../src/ceph/settings';
import { defaultSettings, parseSettings } from '../../../src/config/settings';

const none: NodeJS.ProcessEnv = {};
const file = (text: string) => parseSettings(text, '/etc/ceph/iscsi-gateway.cfg');

describe('cephSettings', () => {
  it('no settings file: embedded, even with CEPH_CONF set', () => {
    assert.equal(cephSettings({ settings: defaultSettings(), warnings: [] }, { CEPH_CONF: '/tmp' }), undefined);
  });

  it('a settings file that does not name the cluster, no conf file: embedded', () => {
    assert.equal(cephSettings(file(`[config]\napi_port = 5001\nceph_config_dir = ${os.tmpdir()}/igw-none\n`), none), undefined);
  });

  it('cluster_name or gateway_keyring in [config] select Ceph; pool, gateway_conf and the client name follow the file', () => {
    const s = cephSettings(file('[config]\ncluster_name = prod\nceph_config_dir = /etc/ceph-prod\npool = iscsi\ngateway_conf = gw.conf\ncluster_client_name = client.iscsi.a\n'), none);
    assert.deepEqual(s, {
      conf: '/etc/ceph-prod/prod.conf', keyring: undefined, clientName: 'client.iscsi.a', clusterName: 'prod',
      pool: 'iscsi', configObject: 'gw.conf', osdOpTimeout: 30, monOpTimeout: 15,
    });
    const k = cephSettings(file('[config]\ngateway_keyring = ceph.client.iscsi.keyring\n'), none);
    assert.ok(k);
    assert.equal(k.keyring, '/etc/ceph/ceph.client.iscsi.keyring');
    assert.equal(k.conf, '/etc/ceph/ceph.conf');
    assert.equal(cephSettings(file('[config]\ncluster_name =\n'), none), undefined, 'an empty value names nothing');
  });

  it('the conf file existing selects Ceph: CEPH_CONF, else <ceph_config_dir>/<cluster_name>.conf', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-cephcfg-'));
    const text = `[config]\nceph_config_dir = ${dir}\n`;
    assert.equal(cephSettings(file(text), none), undefined, 'a directory with only the CHAP keys');
    fs.writeFileSync(path.join(dir, 'ceph.conf'), '[global]\n');
    assert.equal(cephSettings(file(text), none)?.conf, path.join(dir, 'ceph.conf'));
    const other = path.join(dir, 'other.conf');
    fs.writeFileSync(other, '[global]\n');
    assert.equal(cephSettings(file('[config]\napi_port = 5001\n'), { CEPH_CONF: other })?.conf, other);
    assert.equal(cephSettings(file('[config]\napi_port = 5001\n'), { CEPH_CONF: path.join(dir, 'missing.conf') }), undefined);
  });

  it('tools without a settings file: CEPH_CONF with the defaults', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-cephcfg-'));
    const conf = path.join(dir, 'ceph.conf');
    fs.writeFileSync(conf, '[global]\n');
    assert.equal(cephSettingsFromEnv(none), undefined);
    const s = cephSettingsFromEnv({ CEPH_CONF: conf });
    assert.equal(s?.conf, conf);
    assert.equal(s?.pool, 'rbd');
    assert.equal(s?.configObject, 'gateway.conf');
  });

  it('an invalid value is not "set"', () => {
    const p = file('[config]\nminimum_gateways = zero\n');
    assert.deepEqual(p.explicit, []);
  });
});
