import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS_SECONDS, LatencyHistogram } from '../../../src/metrics/histogram';
import { histogramJson } from '../../../src/metrics/stats';

describe('LatencyHistogram', () => {
  it('puts a value into the first bucket whose upper bound it does not exceed (le is inclusive)', () => {
    const h = new LatencyHistogram([0.001, 0.01, 0.1]);
    for (const v of [0, 0.0005, 0.001, 0.0010001, 0.01, 0.05, 0.1, 0.2, 1e9]) h.observe(v);
    assert.deepEqual([...h.counts], [3, 2, 2, 2]);
    assert.equal(h.count, 9);
    assert.ok(Math.abs(h.sum - (0.0005 + 0.001 + 0.0010001 + 0.01 + 0.05 + 0.1 + 0.2 + 1e9)) < 1e-6);
  });

  it('exports cumulative buckets ending in +Inf = count', () => {
    const h = new LatencyHistogram([0.001, 0.01]);
    h.observe(0.0001);
    h.observe(0.005);
    h.observe(0.005);
    h.observe(3);
    assert.deepEqual(histogramJson(h), { buckets: [[0.001, 1], [0.01, 3], ['+Inf', 4]], sum: 3.0101, count: 4 });
  });

  it('default buckets span 50 µs to 10 s, strictly ascending', () => {
    const b = LATENCY_BUCKETS_SECONDS;
    assert.equal(b[0], 0.00005);
    assert.equal(b[b.length - 1], 10);
    for (let i = 1; i < b.length; i++) assert.ok(b[i] > b[i - 1]);
    const h = new LatencyHistogram();
    h.observe(0.00007);
    assert.equal(h.counts[1], 1, '70 µs lands in the le=100µs bucket');
  });

  it('adds histograms with equal bounds and refuses different ones', () => {
    const a = new LatencyHistogram([1, 2]);
    const b = new LatencyHistogram([1, 2]);
    a.observe(0.5);
    b.observe(1.5);
    b.observe(7);
    a.add(b);
    assert.deepEqual([...a.counts], [1, 1, 1]);
    assert.equal(a.count, 3);
    assert.equal(a.sum, 9);
    assert.throws(() => a.add(new LatencyHistogram([1, 3])), RangeError);
  });

  it('rejects bounds that are not strictly ascending', () => {
    assert.throws(() => new LatencyHistogram([1, 1]), RangeError);
    assert.throws(() => new LatencyHistogram([2, 1]), RangeError);
  });
});
