/**
 * GET /api/disk shows the ALUA view of the running gateway (status.alua), next to the lock
 * status, and nothing when the gateway maps the disk in no target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AluaDiskView, RunningState } from '../../../src/daemon/running-state';
import { TARGET, seedTarget, startTestApi } from '../../helpers/api';

const VIEW: AluaDiskView[] = [{
  target: TARGET, mode: 'implicit',
  groups: [{ id: 1, gateway: 'iscsi1', state: 'active/optimized', preferred: true }, { id: 2, gateway: 'iscsi2', state: 'active/non-optimized', preferred: false }],
}];

function running(): RunningState {
  return {
    gatewayName: 'iscsi1',
    appliedEpoch: () => 0,
    localSessions: () => [],
    gateways: () => Promise.resolve([]),
    allSessions: () => Promise.resolve([]),
    sessionsInTheWay: () => Promise.resolve([]),
    refuseIfDisruptive: () => Promise.resolve(),
    waitApplied: () => Promise.resolve(),
    aluaOf: (disk) => (disk === 'rbd/alua_1' ? VIEW : []),
  };
}

test('GET /api/disk: status.alua per target as the gateway reports it; absent when not mapped here', async () => {
  const api = await startTestApi({ running: running() });
  try {
    await seedTarget(api);
    for (const d of ['alua_1', 'alua_2']) {
      const r = await api.call('PUT', `/api/disk/rbd/${d}`, { mode: 'create', size: '8M', create_image: 'true' });
      assert.equal(r.status, 200, r.text);
    }
    const one = await api.call('GET', '/api/disk/rbd/alua_1');
    assert.equal(one.status, 200, one.text);
    assert.deepEqual((one.body.status as Record<string, unknown>).alua, VIEW);
    const two = await api.call('GET', '/api/disk/rbd/alua_2');
    assert.equal((two.body.status as Record<string, unknown>).alua, undefined);
    assert.equal((two.body.status as Record<string, unknown>).state, 'Online');
  } finally {
    await api.close();
  }
});
