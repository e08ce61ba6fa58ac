/**
 * The dashboard's graphs: every SAMPLE_MS the API process reads every gateway's published
 * counters (live.ts) and keeps, per gateway and per LUN, the rates between two samples
 * (bytes/s, IOPS) and the latency percentiles of the commands completed in between, for the
 * last HISTORY_POINTS samples (10 minutes). Counters that went backwards (a gateway restarted)
 * start over without a spike.
 */
import type { LiveDocument, LiveLun } from './live';
import { LiveWhere, readLive } from './live';

export const SAMPLE_MS = 2000;
export const HISTORY_POINTS = 300;

export interface Rates {
  /** Bytes per second read (Data-In) and written (Data-Out). */
  readonly read_bps: number;
  readonly write_bps: number;
  /** Completed commands per second. */
  readonly read_iops: number;
  readonly write_iops: number;
  readonly other_iops: number;
  /** Latency percentiles of the interval's reads and writes, seconds (null: no command). */
  readonly read_p50: number | null;
  readonly read_p99: number | null;
  readonly write_p50: number | null;
  readonly write_p99: number | null;
}

export interface Point {
  /** Date.now() of the later sample. */
  readonly t: number;
  readonly gateways: Record<string, Rates>;
  /** By "target|lun|disk" (one LUN of a target as one gateway serves it, summed over gateways). */
  readonly luns: Record<string, Rates>;
}

/** Upper bound of the bucket that holds quantile q (linear within the bucket), or null. */
export function percentile(bounds: readonly number[], counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let acc = 0;
  for (let i = 0; i < counts.length; i++) {
    const before = acc;
    acc += counts[i];
    if (acc >= rank && counts[i] > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lo = i === 0 ? 0 : bounds[i - 1];
      return lo + (bounds[i] - lo) * Math.min(1, Math.max(0, (rank - before) / counts[i]));
    }
  }
  return bounds[bounds.length - 1];
}

interface Delta {
  seconds: number;
  readBytes: number;
  writeBytes: number;
  commands: [number, number, number];
  read: number[];
  write: number[];
}

function emptyDelta(seconds: number, buckets: number): Delta {
  return { seconds, readBytes: 0, writeBytes: 0, commands: [0, 0, 0], read: new Array<number>(buckets).fill(0), write: new Array<number>(buckets).fill(0) };
}

function lunDelta(now: LiveLun, before: LiveLun | undefined, into: Delta): void {
  // A counter that went backwards: the LU was recreated.
  const reset = before !== undefined && (now.read_bytes < before.read_bytes || now.write_bytes < before.write_bytes || now.commands.some((c, i) => c < before.commands[i]));
  const b = reset ? undefined : before;
  // A logical unit starts with zero counters: new (or recreated) ones count from zero.
  into.readBytes += now.read_bytes - (b?.read_bytes ?? 0);
  into.writeBytes += now.write_bytes - (b?.write_bytes ?? 0);
  for (let k = 0; k < 3; k++) into.commands[k] += now.commands[k] - (b?.commands[k] ?? 0);
  for (let i = 0; i < into.read.length; i++) {
    into.read[i] += (now.latency.read[i] ?? 0) - (b?.latency.read[i] ?? 0);
    into.write[i] += (now.latency.write[i] ?? 0) - (b?.latency.write[i] ?? 0);
  }
}

function rates(d: Delta, bounds: readonly number[]): Rates {
  const s = d.seconds > 0 ? d.seconds : 1;
  return {
    read_bps: d.readBytes / s, write_bps: d.writeBytes / s,
    read_iops: d.commands[0] / s, write_iops: d.commands[1] / s, other_iops: d.commands[2] / s,
    read_p50: percentile(bounds, d.read, 0.5), read_p99: percentile(bounds, d.read, 0.99),
    write_p50: percentile(bounds, d.write, 0.5), write_p99: percentile(bounds, d.write, 0.99),
  };
}

export function lunKey(l: { target: string; lun: number; disk: string }): string {
  return `${l.target}|${l.lun}|${l.disk}`;
}

/** The rates between two samples of every gateway (pure; the sampler feeds it). */
export function point(previous: ReadonlyMap<string, LiveDocument>, current: readonly LiveDocument[], t: number): Point {
  const gateways: Record<string, Rates> = {};
  const lunDeltas = new Map<string, Delta>();
  let bounds: readonly number[] = [];
  for (const doc of current) {
    const before = previous.get(doc.name);
    // The same sample again (the gateway has not published since): no new point for it.
    if (!before || before.at >= doc.at || before.pid !== doc.pid) continue;
    bounds = doc.bounds;
    const seconds = (doc.at - before.at) / 1000;
    const buckets = doc.bounds.length + 1;
    const gw = emptyDelta(seconds, buckets);
    const old = new Map(before.luns.map((l) => [lunKey(l), l]));
    for (const l of doc.luns) {
      const one = emptyDelta(seconds, buckets);
      lunDelta(l, old.get(lunKey(l)), one);
      lunDelta(l, old.get(lunKey(l)), gw);
      const key = lunKey(l);
      const acc = lunDeltas.get(key);
      if (!acc) lunDeltas.set(key, one);
      else {
        acc.readBytes += one.readBytes;
        acc.writeBytes += one.writeBytes;
        for (let k = 0; k < 3; k++) acc.commands[k] += one.commands[k];
        for (let i = 0; i < buckets; i++) {
          acc.read[i] += one.read[i];
          acc.write[i] += one.write[i];
        }
      }
    }
    gateways[doc.name] = rates(gw, doc.bounds);
  }
  const luns: Record<string, Rates> = {};
  for (const [key, d] of lunDeltas) luns[key] = rates(d, bounds);
  return { t, gateways, luns };
}

/** Samples every gateway's live file and keeps the last HISTORY_POINTS points. */
export class StatsHistory {
  private readonly points: Point[] = [];
  private previous = new Map<string, LiveDocument>();
  private latest: LiveDocument[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly where: LiveWhere, private readonly periodMs = SAMPLE_MS) {}

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const docs = await readLive(this.where);
      const p = point(this.previous, docs, Date.now());
      if (Object.keys(p.gateways).length > 0) {
        this.points.push(p);
        if (this.points.length > HISTORY_POINTS) this.points.splice(0, this.points.length - HISTORY_POINTS);
      }
      // Keep the last sample of a gateway that did not publish anew (it may be slow, or down).
      const next = new Map(this.previous);
      for (const d of docs) next.set(d.name, d);
      this.previous = next;
      this.latest = docs;
    } catch {
      // the live directory is unreadable now; try again next period
    } finally {
      this.busy = false;
    }
  }

  /** Points newer than `since` (ms). */
  since(since: number): Point[] {
    return this.points.filter((p) => p.t > since);
  }

  /** The last sample of every gateway that publishes. */
  current(): readonly LiveDocument[] {
    return this.latest;
  }
}
