/** The dashboard's rates and latency percentiles from two samples of the live counters. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, point } from '../../../src/web/history';
import type { LiveDocument, LiveLun } from '../../../src/web/live';

const BOUNDS = [0.001, 0.01, 0.1];

function lun(disk: string, o: Partial<LiveLun> = {}): LiveLun {
  return {
    target: 'iqn.2003-01.com.example:t', lun: 0, disk, owner: 'gw1', tasks: 0, commands: [0, 0, 0], read_bytes: 0, write_bytes: 0, errors: 0,
    latency: { read: [0, 0, 0, 0], write: [0, 0, 0, 0] }, ...o,
  };
}

function doc(name: string, at: number, luns: LiveLun[], pid = 1): LiveDocument {
  return { name, pid, at, bounds: BOUNDS, luns, sessions: [], login_failures: {} };
}

describe('dashboard history', () => {
  it('percentile: linear within the bucket that holds the rank; null without data', () => {
    assert.equal(percentile(BOUNDS, [0, 0, 0, 0], 0.5), null);
    assert.equal(percentile(BOUNDS, [10, 0, 0, 0], 0.5), 0.0005);
    assert.ok(Math.abs((percentile(BOUNDS, [0, 10, 0, 0], 1) ?? 0) - 0.01) < 1e-12);
    assert.ok(Math.abs((percentile(BOUNDS, [50, 50, 0, 0], 0.99) ?? 0) - (0.001 + 0.009 * 0.98)) < 1e-12);
    assert.equal(percentile(BOUNDS, [0, 0, 0, 4], 0.5), 0.1, 'beyond the last bound: the last bound');
  });

  it('rates per gateway and per LUN between two samples; counters that went back start over', () => {
    const a0 = lun('rbd/a', { commands: [100, 10, 1], read_bytes: 1000, write_bytes: 500, latency: { read: [90, 10, 0, 0], write: [0, 10, 0, 0] } });
    const a1 = lun('rbd/a', { commands: [300, 30, 3], read_bytes: 5000, write_bytes: 2500, latency: { read: [280, 20, 0, 0], write: [0, 20, 10, 0] } });
    const b0 = lun('rbd/b', { lun: 1, commands: [50, 0, 0], read_bytes: 9999 });
    const b1 = lun('rbd/b', { lun: 1, commands: [10, 0, 0], read_bytes: 100 });
    const prev = new Map([['gw1', doc('gw1', 10_000, [a0, b0])]]);
    const p = point(prev, [doc('gw1', 12_000, [a1, b1])], 12_000);
    const a = p.luns['iqn.2003-01.com.example:t|0|rbd/a'];
    assert.equal(a.read_bps, 2000);
    assert.equal(a.write_bps, 1000);
    assert.equal(a.read_iops, 100);
    assert.equal(a.write_iops, 10);
    assert.equal(a.other_iops, 1);
    assert.ok(a.read_p50 !== null && a.read_p50 <= 0.001);
    assert.ok(a.write_p99 !== null && a.write_p99 > 0.01, 'the interval had writes in the 10-100 ms bucket');
    const b = p.luns['iqn.2003-01.com.example:t|1|rbd/b'];
    assert.equal(b.read_iops, 5, 'restarted LU: counted from zero, no negative rate');
    assert.equal(b.read_bps, 50);
    assert.equal(p.gateways.gw1.read_iops, 105);
  });

  it('no point for a gateway that has not published anew or restarted (other pid)', () => {
    const d = doc('gw1', 10_000, [lun('rbd/a')]);
    assert.deepEqual(point(new Map([['gw1', d]]), [d], 1).gateways, {});
    assert.deepEqual(point(new Map([['gw1', d]]), [doc('gw1', 12_000, [lun('rbd/a')], 2)], 1).gateways, {});
    assert.deepEqual(point(new Map(), [d], 1).gateways, {});
  });
});
