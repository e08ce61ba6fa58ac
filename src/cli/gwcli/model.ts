/**
 * What gwcli knows about the gateways: the configuration object (GET /api/config), settings limits,
 * pools, and live state (gateway pings, disk state and size, logged-in hosts), fetched together on
 * every refresh so the tree shows the truth after each command.
 */
import type { ClusterStatus } from '../../ceph/cluster-status';
import type { GatewayConfig } from '../../config/schema';
import { ApiClient, ApiUnreachableError, seg } from './api-client';

export type GatewayState = 'UP' | 'DOWN' | 'PARTIAL' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'UNKNOWN';

export interface DiskLive {
  readonly size?: number;
  /** Bytes allocated in the image (GET /api/disk's `used`, an extra of this gateway). */
  readonly used?: number;
  readonly state: string;
  readonly lockOwner: string;
}

export interface PoolInfo {
  readonly name: string;
  readonly images: number;
  readonly provisioned_bytes: number;
}

export interface ControlLimit {
  readonly type: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

export interface ApiLimits {
  readonly backstores: readonly string[];
  readonly targetDefaults: Record<string, unknown>;
  readonly targetLimits: Record<string, ControlLimit>;
  readonly diskDefaults: Record<string, unknown>;
  readonly diskLimits: Record<string, ControlLimit>;
}

export class Model {
  config!: GatewayConfig;
  limits: ApiLimits = { backstores: [], targetDefaults: {}, targetLimits: {}, diskDefaults: {}, diskLimits: {} };
  pools: PoolInfo[] = [];
  backend = '';
  /** The Ceph cluster (GET /api/cluster); undefined without Ceph or when it did not answer. */
  cluster: ClusterStatus | undefined;
  /** Why the Ceph cluster could not be shown (its API answer), '' when fine or absent. */
  clusterError = '';
  gatewayStates = new Map<string, GatewayState>();
  disks = new Map<string, DiskLive>();
  /** "<target>|<client>" → gateways the client is logged in to. */
  loggedIn = new Map<string, string[]>();
  /** "<target>|<client>" → its sessions' initiator IP addresses and alias (clientinfo). */
  clientInfo = new Map<string, { ip_address: string[]; alias: string }>();

  constructor(
    readonly api: ApiClient,
    readonly clusterName: string,
  ) {}

  async load(): Promise<void> {
    const r = await this.api.request('GET', '/api/config?decrypt_passwords=true');
    if (r.status !== 200) {
      const m = typeof r.body.message === 'string' ? r.body.message : `HTTP ${r.status}`;
      throw new ApiUnreachableError(`${m} (HTTP ${r.status})`);
    }
    this.config = r.body as unknown as GatewayConfig;
    const [settings, pools, cluster] = await Promise.all([
      Object.keys(this.limits.targetLimits).length ? undefined : this.api.request('GET', '/api/settings'),
      this.api.request('GET', '/api/pools'),
      this.api.request('GET', '/api/cluster'),
    ]);
    this.cluster = undefined;
    this.clusterError = '';
    if (cluster.status === 200 && cluster.body.ceph === true) this.cluster = cluster.body as unknown as ClusterStatus;
    else if (cluster.status !== 200 && cluster.status !== 404) this.clusterError = typeof cluster.body.message === 'string' ? cluster.body.message : `HTTP ${cluster.status}`;
    if (settings?.status === 200) {
      const b = settings.body;
      const pick = (o: unknown, key: string): Record<string, unknown> => {
        const v = (o as Record<string, unknown> | undefined)?.[key];
        return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
      };
      const bs = (b.default_backstore as string) ?? 'user:rbd';
      this.limits = {
        backstores: Array.isArray(b.backstores) ? (b.backstores as string[]) : [],
        targetDefaults: pick(b, 'target_default_controls'),
        targetLimits: pick(b, 'target_controls_limits') as Record<string, ControlLimit>,
        diskDefaults: pick(pick(b, 'disk_default_controls'), bs),
        diskLimits: pick(pick(b, 'disk_controls_limits'), bs) as Record<string, ControlLimit>,
      };
    }
    if (pools.status === 200 && Array.isArray(pools.body.pools)) {
      this.pools = pools.body.pools as PoolInfo[];
      this.backend = String(pools.body.backend ?? '');
    }
    await Promise.all([this.loadDisks(), this.loadGateways(), this.loadSessions()]);
  }

  private async loadDisks(): Promise<void> {
    this.disks = new Map();
    await pool(Object.keys(this.config.disks), 8, async (id) => {
      const [p, i] = [id.slice(0, id.indexOf('/')), id.slice(id.indexOf('/') + 1)];
      const r = await this.api.request('GET', `/api/disk/${seg(p)}/${seg(i)}`);
      if (r.status !== 200) {
        this.disks.set(id, { state: 'NOT FOUND', lockOwner: '' });
        return;
      }
      const st = (r.body.status ?? {}) as Record<string, unknown>;
      this.disks.set(id, {
        size: typeof r.body.size === 'number' ? r.body.size : undefined,
        used: typeof r.body.used === 'number' ? r.body.used : undefined,
        state: String(st.state ?? 'Unknown'),
        lockOwner: String(st.lock_owner ?? ''),
      });
    });
  }

  /** Addresses to reach a gateway's API: its portal IPs (names of test gateways do not resolve). */
  gatewayAddresses(gw: string): string[] {
    const out: string[] = [];
    for (const t of Object.values(this.config.targets)) for (const ip of t.portals[gw]?.portal_ip_addresses ?? []) out.push(ip);
    for (const a of this.config.gateways[gw]?.portal_ip_addresses ?? []) out.push(a.replace(/^\[([^\]]+)\](:\d+)?$/, '$1').replace(/^([^:\]]+):\d+$/, '$1'));
    if (out.length === 0) out.push(gw);
    return [...new Set(out)];
  }

  private async loadGateways(): Promise<void> {
    this.gatewayStates = new Map();
    await pool(Object.keys(this.config.gateways), 8, async (gw) => {
      this.gatewayStates.set(gw, await this.ping(gw));
    });
  }

  /** configshell's mapping of GET /api/_ping: 200 UP, 503 PARTIAL, 401/403, else UNKNOWN; no answer DOWN. */
  async ping(gw: string): Promise<GatewayState> {
    let state: GatewayState = 'DOWN';
    for (const addr of this.gatewayAddresses(gw)) {
      try {
        const r = await this.api.at(addr, this.api.port).request('GET', '/api/_ping');
        const map: Record<number, GatewayState> = { 200: 'UP', 503: 'PARTIAL', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN' };
        state = map[r.status] ?? 'UNKNOWN';
        if (state === 'UP') return state;
      } catch {
        // next address
      }
    }
    return state;
  }

  private async loadSessions(): Promise<void> {
    this.loggedIn = new Map();
    this.clientInfo = new Map();
    const jobs: Array<[string, string]> = [];
    for (const [t, tc] of Object.entries(this.config.targets)) for (const c of Object.keys(tc.clients)) jobs.push([t, c]);
    await pool(jobs, 8, async ([t, c]) => {
      const r = await this.api.request('GET', `/api/clientinfo/${seg(t)}/${seg(c)}`);
      const st = (r.body.state ?? {}) as Record<string, unknown>;
      const gws = Array.isArray(st.LOGGED_IN) ? (st.LOGGED_IN as string[]) : [];
      if (r.status === 200 && gws.length) this.loggedIn.set(`${t}|${c}`, gws);
      const ips = Array.isArray(r.body.ip_address) ? (r.body.ip_address as unknown[]).filter((a): a is string => typeof a === 'string') : [];
      if (r.status === 200) this.clientInfo.set(`${t}|${c}`, { ip_address: ips, alias: typeof r.body.alias === 'string' ? r.body.alias : '' });
    });
  }

  diskIds(): string[] {
    return Object.keys(this.config.disks).sort();
  }

  targetIqns(): string[] {
    return Object.keys(this.config.targets).sort();
  }
}

/** Run `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
