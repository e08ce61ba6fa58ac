/**
 * A fixed-bucket latency histogram cheap enough for the data path: one observation is a short
 * scan over a dozen upper bounds and three additions into plain typed arrays, no allocation.
 * The Prometheus registry reads it at scrape time (cumulative buckets, sum, count).
 */

/**
 * Upper bounds in seconds, 50 µs .. 10 s. A loopback 4 KiB read is ~50-100 µs, a page-cache
 * write some hundreds of µs, a flush or a slow backstore milliseconds to seconds; initiators
 * time commands out after some seconds. Few buckets: a thousand LUNs carry one histogram each.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10,
]);

/** Read-only view of a histogram (what the registry and the API read). */
export interface HistogramView {
  /** Upper bounds in seconds, ascending (the +Inf bucket is implicit). */
  readonly bounds: readonly number[];
  /** Observations per bucket, NOT cumulative; index bounds.length is the +Inf bucket. */
  readonly counts: ArrayLike<number>;
  /** Sum of the observed values in seconds. */
  readonly sum: number;
  readonly count: number;
}

export class LatencyHistogram implements HistogramView {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError('histogram bounds must be strictly ascending');
    }
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Record one value in seconds. Bucket i holds values v with bounds[i-1] < v <= bounds[i]. */
  observe(seconds: number): void {
    this.observeInBucket(bucketIndex(this.bounds, seconds), seconds);
  }

  /** Record a value whose bucket the caller already knows (one lookup for several histograms). */
  observeInBucket(bucket: number, seconds: number): void {
    this.counts[bucket]++;
    this.sum += seconds;
    this.count++;
  }

  /** Add another histogram with the same bounds into this one (aggregation at scrape time). */
  add(other: HistogramView): void {
    if (other.bounds !== this.bounds && !sameBounds(other.bounds, this.bounds)) {
      throw new RangeError('cannot add histograms with different bounds');
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.sum += other.sum;
    this.count += other.count;
  }
}

/** Index of the bucket a value falls in (bounds.length: the +Inf bucket). */
export function bucketIndex(bounds: readonly number[], seconds: number): number {
  let i = 0;
  while (i < bounds.length && seconds > bounds[i]) i++;
  return i;
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
