/** clientinfo aggregation: ceph-iscsi's {alias, state: {LOGGED_IN: [gw…]}, ip_address: [ip…]}. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientInfo } from '../../../src/api/clients';
import type { SessionInfo } from '../../../src/daemon/running-state';

const base = { target: 'iqn.2003-01.org.x:t', initiator: 'iqn.1994-05.com.redhat:c', isid: '400001370000', disks: [] };

test('no session: empty state, no addresses, no alias', () => {
  assert.deepEqual(clientInfo([]), { alias: '', state: {}, ip_address: [] });
});

test('sessions on two gateways: each gateway and each initiator address once, in order', () => {
  const sessions: SessionInfo[] = [
    { ...base, gateway: 'gw1', tsih: 1, ip_address: '10.0.0.5', alias: 'host-a' },
    { ...base, gateway: 'gw2', tsih: 7, ip_address: '10.0.1.5', alias: 'host-a' },
    { ...base, gateway: 'gw1', tsih: 2, ip_address: '10.0.0.5', alias: 'host-a', isid: '400001370001' },
  ];
  assert.deepEqual(clientInfo(sessions), { alias: 'host-a', state: { LOGGED_IN: ['gw1', 'gw2'] }, ip_address: ['10.0.0.5', '10.0.1.5'] });
});

test('status files of gateways without addresses (older versions) still count as logged in', () => {
  const sessions: SessionInfo[] = [{ ...base, gateway: 'gw1', tsih: 1 }, { ...base, gateway: 'gw2', tsih: 3, ip_address: '::1', alias: '' }];
  assert.deepEqual(clientInfo(sessions), { alias: '', state: { LOGGED_IN: ['gw1', 'gw2'] }, ip_address: ['::1'] });
});
