/**
 * When the daemon uses Ceph (src/ceph/settings.ts): CEPH_CONF, or a settings file that names the
 * cluster; a ceph_config_dir that only holds the CHAP key pair keeps everything embedded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cephSettings } from '../../../src/ceph/settings';
import { defaultSettings, parseSettings } from '../../../src/config/settings';

const none: NodeJS.ProcessEnv = {};

describe('cephSettings', () => {
  it('no settings file and no CEPH_CONF: embedded', () => {
    assert.equal(cephSettings({ settings: defaultSettings(), warnings: [] }, none), undefined);
    assert.equal(cephSettings(parseSettings('[config]\napi_port = 5001\n'), none), undefined);
  });

  it('CEPH_CONF alone selects Ceph with the defaults of ceph-iscsi', () => {
    const s = cephSettings({ settings: defaultSettings(), warnings: [] }, { CEPH_CONF: '/tmp/x/ceph.conf' });
    assert.deepEqual(s, {
      conf: '/tmp/x/ceph.conf', keyring: undefined, clientName: 'client.admin', clusterName: 'ceph',
      pool: 'rbd', configObject: 'gateway.conf', osdOpTimeout: 30, monOpTimeout: 30,
    });
  });

  it('cluster_name or gateway_keyring in [config] select Ceph; pool, gateway_conf and the client name follow the file', () => {
    const s = cephSettings(parseSettings('[config]\ncluster_name = prod\nceph_config_dir = /etc/ceph-prod\npool = iscsi\ngateway_conf = gw.conf\ncluster_client_name = client.iscsi.a\n'), none);
    assert.ok(s);
    assert.equal(s.conf, '/etc/ceph-prod/prod.conf');
    assert.equal(s.pool, 'iscsi');
    assert.equal(s.configObject, 'gw.conf');
    assert.equal(s.clientName, 'client.iscsi.a');
    const k = cephSettings(parseSettings('[config]\ngateway_keyring = ceph.client.iscsi.keyring\n'), none);
    assert.ok(k);
    assert.equal(k.keyring, '/etc/ceph/ceph.client.iscsi.keyring');
    assert.equal(k.conf, '/etc/ceph/ceph.conf');
  });

  it('ceph_config_dir selects Ceph only when it holds <cluster_name>.conf', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-cephcfg-'));
    const text = `[config]\nceph_config_dir = ${dir}\n`;
    assert.equal(cephSettings(parseSettings(text), none), undefined, 'a directory with only the CHAP keys');
    fs.writeFileSync(path.join(dir, 'ceph.conf'), '[global]\n');
    assert.equal(cephSettings(parseSettings(text), none)?.conf, path.join(dir, 'ceph.conf'));
  });

  it('an invalid value is not "set": it does not switch to Ceph', () => {
    const p = parseSettings('[config]\nminimum_gateways = zero\n');
    assert.deepEqual(p.explicit, []);
    assert.equal(cephSettings(p, none), undefined);
  });
});
