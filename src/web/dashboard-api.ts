/**
 * The routes the dashboard reads beyond ceph-iscsi's (JSON, same authentication as every
 * route): one overview document (gateways with their state, portals and sessions; counts; LUN
 * owners and ALUA path states; alerts), the sampled graphs, every session with its negotiated
 * parameters, and every disk with its size, snapshots, targets and status in one call.
 */
import type { GatewayConfig } from '../config/schema';
import type { GatewayStatus, SessionInfo } from '../daemon/running-state';
import { diskStatus } from '../api/disks';
import { ApiContext, Routes, current, field } from '../api/context';
import { isImageBackstore } from '../config/schema';
import { ImageProviderKind, aluaMode } from '../ha/access-state';
import type { WebState } from './pages';
import { SAMPLE_MS } from './history';

export type GatewayState = 'up' | 'down' | 'degraded';

export interface GatewayRow {
  readonly name: string;
  readonly state: GatewayState;
  /** Why degraded (or down). */
  readonly reason?: string;
  readonly heartbeat?: number;
  readonly applied_epoch?: number;
  readonly portals: readonly string[];
  readonly sessions: number;
  readonly active_disks: readonly string[];
  /** It hands its disks to the other gateways and takes none (drain, before maintenance). */
  readonly draining: boolean;
  /** Further flags the gateway publishes (e.g. `draining` once the HA work reports it), shown as they are. */
  readonly flags: Record<string, string | number | boolean>;
}

const SHOWN = new Set(['name', 'up', 'heartbeat', 'appliedEpoch', 'pid', 'host', 'portals', 'sessions', 'activeDisks', 'error', 'draining']);

/** Scalar fields of a gateway's status beyond those the overview shows itself. */
function flagsOf(st: GatewayStatus): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(st as unknown as Record<string, unknown>)) {
    if (!SHOWN.has(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) out[k] = v;
  }
  return out;
}

export interface Alert {
  readonly severity: 'critical' | 'warning';
  readonly kind: 'gateway-down' | 'gateway-degraded' | 'no-optimized-path' | 'failed-logins';
  readonly message: string;
}

/** ALUA access state of a LUN through one gateway (SPC-4 asymmetric access states). */
export type AluaState = 'active/optimized' | 'active/non-optimized' | 'standby' | 'unavailable';

function gatewayRows(c: GatewayConfig, epoch: number, statuses: readonly GatewayStatus[]): GatewayRow[] {
  const names = new Set<string>(Object.keys(c.gateways));
  for (const t of Object.values(c.targets)) for (const g of Object.keys(t.portals)) names.add(g);
  for (const s of statuses) names.add(s.name);
  return [...names].sort().map((name) => {
    const st = statuses.find((s) => s.name === name);
    const portals = st?.portals ?? [];
    if (!st || !st.up) {
      return { name, state: 'down' as const, reason: st ? 'no heartbeat (stopped or unreachable)' : 'never started', heartbeat: st?.heartbeat, applied_epoch: st?.appliedEpoch, portals, sessions: 0, active_disks: [], draining: false, flags: {} };
    }
    const flags = flagsOf(st);
    let reason: string | undefined;
    if (st.error) reason = st.error;
    else if (st.draining === true) reason = 'draining: its disks are handed to the other gateways';
    else if ((st.appliedEpoch ?? -1) < epoch) reason = `applying configuration epoch ${epoch} (has ${st.appliedEpoch ?? 'none'})`;
    return {
      name, state: reason ? 'degraded' as const : 'up' as const, ...(reason ? { reason } : {}), heartbeat: st.heartbeat, applied_epoch: st.appliedEpoch,
      portals, sessions: st.sessions.length, active_disks: st.activeDisks, draining: st.draining === true, flags,
    };
  });
}

/**
 * Per mapped LUN: the gateway writing it and the ALUA state through each gateway of the target,
 * as the gateways report it: the holder of the disk's lock (each gateway's published HA status)
 * is active/optimized, the configured owner is only the preferred one; active/active disks
 * (aluaMode) are optimized on every gateway that is up.
 */
function lunPaths(c: GatewayConfig, rows: readonly GatewayRow[], st: readonly GatewayStatus[], provider: ImageProviderKind) {
  const up = new Set(rows.filter((r) => r.state !== 'down').map((r) => r.name));
  const out: Array<{ target: string; disk: string; lun_id: number; owner: string | null; preferred: string | null; paths: Record<string, AluaState> }> = [];
  for (const [iqn, t] of Object.entries(c.targets)) {
    for (const [disk, ref] of Object.entries(t.disks)) {
      const preferred = c.disks[disk]?.owner ?? null;
      const mode = aluaMode(c, iqn, disk, provider, 'implicit');
      const managed = st.filter((g) => g.up && g.ha?.[disk] !== undefined);
      // Disks under the lock: whoever holds it; others keep the configured owner.
      const owner = mode === 'active/active' ? null
        : managed.length > 0 ? managed.find((g) => g.ha?.[disk]?.owned)?.name ?? null : preferred;
      const paths: Record<string, AluaState> = {};
      for (const gw of Object.keys(t.portals)) {
        paths[gw] = !up.has(gw) ? 'unavailable'
          : mode === 'active/active' || gw === owner ? 'active/optimized'
            : mode === 'explicit' ? 'standby' : 'active/non-optimized';
      }
      out.push({ target: iqn, disk, lun_id: ref.lun_id, owner, preferred, paths });
    }
  }
  return out;
}

async function statuses(ctx: ApiContext): Promise<GatewayStatus[]> {
  return ctx.running ? ctx.running.gateways() : [];
}

function authOf(c: GatewayConfig, target: string, initiator: string): string {
  const t = c.targets[target];
  if (!t) return 'unknown';
  const client = t.clients[initiator];
  const a = client?.auth.username ? client.auth : t.auth;
  if (a.username) return a.mutual_username ? 'CHAP (mutual)' : 'CHAP';
  return t.acl_enabled ? 'ACL (no CHAP)' : 'none (target without ACL)';
}

export function registerDashboard(r: Routes, ctx: ApiContext, web: WebState): void {
  r.add(['GET'], '/api/dashboard', ['Dashboard overview: gateways with state, counts, LUN owners and ALUA paths, alerts'], async () => {
    const { config: c, epoch } = await ctx.store.read();
    const st = await statuses(ctx);
    const gateways = gatewayRows(c, epoch, st);
    const luns = lunPaths(c, gateways, st, ctx.images.kind === 'ceph' ? 'ceph' : 'embedded');
    const alerts: Alert[] = [];
    for (const g of gateways) {
      if (g.state === 'down') alerts.push({ severity: 'critical', kind: 'gateway-down', message: `Gateway ${g.name} is down: ${g.reason ?? ''}` });
      else if (g.state === 'degraded') alerts.push({ severity: 'warning', kind: 'gateway-degraded', message: `Gateway ${g.name} is degraded: ${g.reason ?? ''}` });
    }
    for (const l of luns) {
      if (!Object.values(l.paths).includes('active/optimized')) {
        const why = l.owner !== null ? `its owner ${l.owner} is not a gateway of the target`
          : l.preferred === null ? 'it has no owner'
            : `no gateway holds its lock (preferred owner ${l.preferred} is ${gateways.find((g) => g.name === l.preferred)?.state ?? 'unknown'})`;
        alerts.push({ severity: 'critical', kind: 'no-optimized-path', message: `LUN ${l.lun_id} (${l.disk}) of ${l.target} has no active/optimized path: ${why}` });
      }
    }
    const iscsiFailures: Record<string, Record<string, number>> = {};
    for (const doc of web.history?.current() ?? []) {
      const n = Object.values(doc.login_failures).reduce((a, b) => a + b, 0);
      if (n > 0) iscsiFailures[doc.name] = doc.login_failures;
    }
    for (const [gw, reasons] of Object.entries(iscsiFailures)) {
      const text = Object.entries(reasons).map(([k, v]) => `${v} ${k.replace(/_/g, ' ')}`).join(', ');
      alerts.push({ severity: 'warning', kind: 'failed-logins', message: `Failed iSCSI logins on ${gw} since it started: ${text}` });
    }
    if (web.limiter.total > 0) {
      alerts.push({ severity: 'warning', kind: 'failed-logins', message: `${web.limiter.total} failed dashboard login(s), the last from ${web.limiter.last?.address ?? '?'}` });
    }
    const hosts = Object.values(c.targets).reduce((n, t) => n + Object.keys(t.clients).length, 0);
    return {
      gateway: ctx.gatewayName, epoch,
      counts: { targets: Object.keys(c.targets).length, disks: Object.keys(c.disks).length, hosts, gateways: gateways.length, sessions: gateways.reduce((n, g) => n + g.sessions, 0) },
      gateways, luns, alerts, iscsi_login_failures: iscsiFailures, dashboard_login_failures: web.limiter.total,
    };
  });

  r.add(['GET'], '/api/dashboard/stats', [
    'Dashboard graphs: per gateway and per LUN throughput, IOPS and latency percentiles of the last 10 minutes',
    ':param since: (int) only points after this time (ms since the epoch)',
  ], async (req) => {
    const since = Number(field(req, 'since') ?? '0');
    return { sample_ms: SAMPLE_MS, points: web.history ? web.history.since(Number.isFinite(since) ? since : 0) : [] };
  });

  r.add(['GET'], '/api/dashboard/sessions', ['Every logged-in iSCSI session: gateway, LUNs, auth, negotiated parameters, counters'], async () => {
    const c = await current(ctx);
    const st = await statuses(ctx);
    const info = new Map<string, SessionInfo>();
    for (const g of st) if (g.up) for (const s of g.sessions) info.set(`${s.gateway}|${s.tsih}`, s);
    const up = new Set(st.filter((g) => g.up).map((g) => g.name));
    const sessions = [];
    for (const doc of web.history?.current() ?? []) {
      if (!up.has(doc.name)) continue;
      for (const s of doc.sessions) {
        const i = info.get(`${doc.name}|${s.tsih}`);
        const t = c.targets[s.target];
        sessions.push({
          gateway: doc.name, ...s, auth: authOf(c, s.target, s.initiator),
          luns: (i?.disks ?? []).map((d) => ({ disk: d, lun_id: t?.disks[d]?.lun_id ?? null })),
          portals: t?.portals[doc.name]?.portal_ip_addresses ?? [],
        });
      }
    }
    return { sessions };
  });

  r.add(['GET'], '/api/dashboard/disks', ['Every disk: pool, image, size, used bytes, snapshots, targets and LUN ids, owner and status'], async () => {
    const c = await current(ctx);
    const disks = [];
    for (const [id, d] of Object.entries(c.disks)) {
      let size = d.size ?? null;
      let snapshots: Array<{ name: string; size: number; protected: boolean; children: number; created: string }> = [];
      let parent: string | null = null;
      let used: number | null = null;
      if (isImageBackstore(d.backstore)) {
        try {
          const info = await ctx.images.info(d.pool, d.image);
          size = info.size;
          parent = info.parent ? `${info.parent.pool}/${info.parent.image}@${info.parent.snapshot}` : null;
          if (!d.snapshot) used = await ctx.images.usage(d.pool, d.image);
          snapshots = (await ctx.images.listSnapshots(d.pool, d.image)).map((s) => ({ name: s.name, size: s.size, protected: s.protected, children: s.children, created: s.createTime }));
        } catch {
          // the image is gone: the status says so
        }
      }
      const targets = Object.entries(c.targets).filter(([, t]) => t.disks[id]).map(([iqn, t]) => ({ target: iqn, lun_id: t.disks[id].lun_id }));
      disks.push({
        id, pool: d.pool, image: d.image, snapshot: d.snapshot ?? null, backstore: d.backstore, wwn: d.wwn, size, used, parent, snapshots, targets,
        owner: d.owner ?? null, controls: d.controls, status: await diskStatus(ctx, d),
      });
    }
    return { backend: ctx.images.kind, disks };
  });
}
