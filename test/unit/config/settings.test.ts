import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSettings } from '../../../src/config/settings';

describe('iscsi-gateway.cfg settings', () => {
  it('reads [config] into typed settings with defaults, reporting bad values', () => {
    const { settings, warnings } = parseSettings(`
[config]
cluster_name = ceph
api_port = 5001
api_secure = false
trusted_ip_list = 192.168.0.1, 192.168.0.2
minimum_gateways = 0
prometheus_port = 9288
bogus = 1
[target]
cmdsn_depth = 64
`);
    assert.equal(settings.api_port, 5001);
    assert.equal(settings.api_secure, false);
    assert.deepEqual(settings.trusted_ip_list, ['192.168.0.1', '192.168.0.2']);
    assert.equal(settings.minimum_gateways, 1, 'out of range keeps the default (1 here)');
    assert.equal(settings.prometheus_port, 9288);
    assert.equal(settings.api_user, 'admin');
    assert.equal(settings.pool, 'rbd');
    assert.ok(warnings.some((w) => w.startsWith('minimum_gateways')));
    assert.ok(warnings.some((w) => w.startsWith('bogus')));
  });
});
