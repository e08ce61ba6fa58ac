import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GatewayStatus } from '../../../src/daemon/running-state';
import { DiskStatusTracker, LOCK_LOST_THRESHOLD, STATUS_CHECK_INTERVAL_MS } from '../../../src/ha/disk-status';
import type { HaDiskStatus } from '../../../src/ha/manager';

function gw(name: string, up: boolean, h: Partial<HaDiskStatus>): GatewayStatus {
  const ha: HaDiskStatus = { owned: false, preferred: false, failovers: 0, lock_lost_cnt: 0, fenced: 0, bounces: 0, hold_ms: 250, ...h };
  return { name, up, portals: [], sessions: [], activeDisks: [], ha: { 'rbd/x': ha } };
}

test('lock owner and per-gateway counters; the lock itself wins over a stale heartbeat', () => {
  const t = new DiskStatusTracker();
  const r = t.report('rbd/x', [gw('a', true, { owned: true, failovers: 1 }), gw('b', true, { lock_lost_cnt: 1 })], undefined, 0);
  assert.equal(r?.lock_owner, 'a');
  assert.equal(r?.state, 'Online');
  assert.equal(r?.gateways.b.lock_lost_cnt, 1);
  assert.equal(t.report('rbd/x', [gw('a', true, { owned: true }), gw('b', true, { owned: true })], 'b', 1)?.lock_owner, 'b');
  assert.equal(t.report('rbd/y', [gw('a', true, {})]), undefined, 'a disk no gateway serves under HA');
});

test('excessive failovers degrade the disk until quiet checks reset it (ceph-iscsi thresholds)', () => {
  const t = new DiskStatusTracker();
  const at = (lost: number, now: number) => t.report('rbd/x', [gw('a', true, { lock_lost_cnt: lost })], 'a', now)!.state;
  assert.equal(at(0, 0), 'Online');
  assert.equal(at(LOCK_LOST_THRESHOLD, 1000), 'Degraded - excessive failovers');
  let now = 1000;
  // The check that sees the growth, then STABLE_RESET_COUNT (3) quiet ones.
  for (let k = 0; k < 4; k++) {
    now += STATUS_CHECK_INTERVAL_MS;
    at(LOCK_LOST_THRESHOLD, now);
  }
  assert.equal(at(LOCK_LOST_THRESHOLD, now + 1), 'Online');
  assert.equal(t.report('rbd/x', [gw('a', false, {})], '', now + 2)?.state, 'Degraded - no gateway serving the disk');
});
