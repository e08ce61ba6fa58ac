/**
 * The `status` of a disk in GET /api/disk/<pool>/<image>, as ceph-iscsi's device-status watcher
 * reports it: who holds the lock (the gateway whose path is active/optimized), and per gateway
 * the lock-loss counters — here from every gateway's published HA counters. "Degraded -
 * excessive failovers" when the lock moved at least LOCK_LOST_THRESHOLD times (ceph-iscsi's
 * lock_lost_cnt_threshhold, 12) within one STATUS_CHECK_INTERVAL_MS (10 s), cleared again after
 * STABLE_RESET_COUNT quiet checks (stable_state_reset_count, 3).
 */
import type { GatewayStatus } from '../daemon/running-state';

export const LOCK_LOST_THRESHOLD = 12;
export const STATUS_CHECK_INTERVAL_MS = 10_000;
export const STABLE_RESET_COUNT = 3;

export interface GatewayDiskCounters {
  readonly lock_lost_cnt: number;
  readonly failovers: number;
  readonly fenced: number;
  readonly bounces: number;
  readonly up: boolean;
  readonly draining: boolean;
  readonly last_takeover_ms?: number;
}

export interface HaDiskStatusReport {
  readonly state: string;
  readonly lock_owner: string;
  readonly failovers: number;
  readonly gateways: Record<string, GatewayDiskCounters>;
}

interface Track {
  checkedAt: number;
  lostAtCheck: number;
  degraded: boolean;
  quiet: number;
}

/** Remembers lock-loss totals between checks (one per API process). */
export class DiskStatusTracker {
  private readonly tracks = new Map<string, Track>();

  /** `holder`: the lock holder from the lock itself (preferred over heartbeats, which lag a dead gateway). */
  report(disk: string, statuses: readonly GatewayStatus[], holder?: string, now = Date.now()): HaDiskStatusReport | undefined {
    const gateways: Record<string, GatewayDiskCounters> = {};
    let owner = '';
    let lost = 0;
    let failovers = 0;
    let seen = false;
    for (const g of statuses) {
      const h = g.ha?.[disk];
      if (!h) continue;
      seen = true;
      if (h.owned && g.up) owner = g.name;
      lost += h.lock_lost_cnt;
      failovers += h.failovers;
      gateways[g.name] = {
        lock_lost_cnt: h.lock_lost_cnt, failovers: h.failovers, fenced: h.fenced, bounces: h.bounces, up: g.up, draining: g.draining ?? false,
        ...(h.last_takeover_ms !== undefined ? { last_takeover_ms: h.last_takeover_ms } : {}),
      };
    }
    if (!seen) return undefined;
    if (holder !== undefined) owner = holder;
    let t = this.tracks.get(disk);
    if (!t) {
      t = { checkedAt: now, lostAtCheck: lost, degraded: false, quiet: 0 };
      this.tracks.set(disk, t);
    }
    if (now - t.checkedAt >= STATUS_CHECK_INTERVAL_MS) {
      const grew = lost - t.lostAtCheck;
      if (grew >= LOCK_LOST_THRESHOLD) {
        t.degraded = true;
        t.quiet = 0;
      } else if (t.degraded && ++t.quiet >= STABLE_RESET_COUNT) {
        t.degraded = false;
      }
      t.checkedAt = now;
      t.lostAtCheck = lost;
    } else if (lost - t.lostAtCheck >= LOCK_LOST_THRESHOLD) {
      t.degraded = true;
      t.quiet = 0;
    }
    const anyUp = statuses.some((g) => g.up && g.ha?.[disk]);
    const state = !anyUp ? 'Degraded - no gateway serving the disk' : t.degraded ? 'Degraded - excessive failovers' : 'Online';
    return { state, lock_owner: owner, failovers, gateways };
  }
}
