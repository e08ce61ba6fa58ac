/**
 * What the metrics collectors read: a narrow view of the running gateway (targets, logical
 * units with their statistics, configured clients, sessions, config epoch). Collectors see
 * only this interface, so they can be tested without a daemon and the daemon can change shape.
 */
import * as os from 'node:os';
import type { SessionRegistry } from '../iscsi/session-registry';
import type { ScsiTarget } from '../scsi/scsi-target';
import type { LuStatsView, SessionStatsView } from './stats';

export interface TargetSample {
  readonly name: string;
  /** Target portal groups of the target (one per gateway serving it). */
  readonly tpgs: number;
}

export interface LunSample {
  readonly target: string;
  readonly lun: number;
  /** The disk's id ("pool/image"), ceph-iscsi's lun_name. */
  readonly name: string;
  readonly sizeBytes: number;
  /** The gateway that owns the disk (ALUA active/optimized path). */
  readonly owner: string;
  /** Mapped to a client (or visible to every initiator: the target has no ACL). */
  readonly mapped: boolean;
  /** Tasks in the LU's task set right now. */
  readonly tasks: number;
  readonly stats: LuStatsView;
}

export interface ClientSample {
  readonly target: string;
  readonly iqn: string;
  /** Disks the client sees, with their LUN ids. */
  readonly luns: readonly { readonly name: string; readonly lun: number }[];
}

export interface SessionSample {
  readonly target: string;
  readonly initiator: string;
  readonly isid: string;
  readonly tsih: number;
  readonly stats: SessionStatsView;
}

/** HA state of one disk on this gateway (src/ha HaManager). */
export interface HaDiskSample {
  readonly disk: string;
  /** This gateway holds the image lock (its path is the active/optimized one). */
  readonly owned: boolean;
  readonly failovers: number;
  readonly lockLost: number;
  readonly fenced: number;
  readonly bounces: number;
  /** Last takeover by this gateway, seconds (undefined: none yet). */
  readonly lastTakeoverSeconds?: number;
}

export interface HaSample {
  readonly draining: boolean;
  readonly disks: readonly HaDiskSample[];
  /** Other gateways as their last heartbeat shows them. */
  readonly peers: readonly { readonly name: string; readonly up: boolean; readonly draining: boolean }[];
}

export interface MetricsSource {
  /** This gateway's name (ceph-iscsi's gw_name). */
  readonly gatewayName: string;
  /** Ownership, failovers and peer health (undefined: no HA manager). */
  ha?(): HaSample | undefined;
  /** Epoch of the configuration the gateway runs, undefined before it loaded one. */
  configEpoch(): number | undefined;
  targets(): TargetSample[];
  luns(): LunSample[];
  clients(): ClientSample[];
  sessions(): SessionSample[];
}

/** The parts of the configuration metrics read (ceph-iscsi's schema; v11 fields when present). */
export interface ConfigView {
  readonly epoch: number;
  readonly disks: Readonly<Record<string, unknown>>;
  readonly targets: Readonly<Record<string, {
    readonly acl_enabled?: boolean;
    readonly disks: Readonly<Record<string, unknown>>;
    readonly clients: Readonly<Record<string, unknown>>;
  }>>;
}

/** What metrics need from the running daemon (the Gateway class has this shape). */
export interface GatewayView {
  /** The configuration the gateway runs (undefined before it loaded one). */
  readonly config: ConfigView | undefined;
  /** The SCSI target devices this gateway serves, by target name. */
  targets(): ReadonlyMap<string, ScsiTarget>;
  readonly service: { readonly sessions: SessionRegistry };
  /** HA state, when the gateway runs the HA manager. */
  haSample?(): HaSample | undefined;
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[key] : undefined;
}

function lunIdOf(o: unknown): number | undefined {
  const id = field(o, 'lun_id');
  return typeof id === 'number' ? id : undefined;
}

function keysOf(o: unknown): string[] {
  return typeof o === 'object' && o !== null ? Object.keys(o) : [];
}

/** Target portal groups: one per portal IP of the target (v11 ip_list), else per gateway. */
function tpgCount(target: unknown): number {
  const ips = field(target, 'ip_list');
  if (Array.isArray(ips) && ips.length > 0) return ips.length;
  return Math.max(1, keysOf(field(target, 'portals')).length);
}

/**
 * Disk ids a client sees: its own LUN map and its host groups' (v11), or, in a config without
 * per-client maps, every disk of the target.
 */
function clientDisks(target: ConfigView['targets'][string], iqn: string, client: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const own = field(client, 'luns');
  if (own === undefined) {
    for (const [id, ref] of Object.entries(target.disks)) out.set(id, lunIdOf(ref) ?? -1);
  } else {
    for (const id of keysOf(own)) out.set(id, lunIdOf(field(own, id)) ?? lunIdOf(target.disks[id]) ?? -1);
  }
  for (const group of Object.values(field(target, 'groups') ?? {}) as unknown[]) {
    const members = field(group, 'members');
    if (!Array.isArray(members) || !members.includes(iqn)) continue;
    const disks = field(group, 'disks');
    for (const id of keysOf(disks)) if (!out.has(id)) out.set(id, lunIdOf(field(disks, id)) ?? lunIdOf(target.disks[id]) ?? -1);
  }
  for (const [id, lun] of out) if (lun < 0) out.delete(id);
  return out;
}

/**
 * The metrics view of a running gateway. Reads the configuration the gateway runs (fields of
 * ceph-iscsi's schema v11 such as a disk's `owner`, a client's `luns`, host groups and a target's
 * `ip_list` are used when present) and the live SCSI targets and sessions.
 */
export function gatewayMetricsSource(gateway: GatewayView, gatewayName: string = os.hostname()): MetricsSource {
  return {
    gatewayName,
    ha: () => gateway.haSample?.(),
    configEpoch: () => gateway.config?.epoch,
    targets: () => Object.entries(gateway.config?.targets ?? {}).map(([name, t]) => ({ name, tpgs: tpgCount(t) })),
    luns: () => {
      const config = gateway.config;
      const out: LunSample[] = [];
      for (const [targetName, scsi] of gateway.targets()) {
        const target = config?.targets[targetName];
        const clients = target ? Object.entries(target.clients).map(([iqn, c]) => clientDisks(target, iqn, c)) : [];
        for (const lun of scsi.allLuns()) {
          const lu = scsi.logicalUnit(lun);
          if (!lu) continue;
          const owner = field(config?.disks[lu.name], 'owner');
          out.push({
            target: targetName, lun, name: lu.name, sizeBytes: lu.capacity() * lu.blockSize,
            owner: typeof owner === 'string' && owner !== '' ? owner : gatewayName,
            mapped: target?.acl_enabled === false || clients.some((c) => c.has(lu.name)),
            tasks: lu.taskSet.size, stats: lu.stats,
          });
        }
      }
      return out;
    },
    clients: () => {
      const out: ClientSample[] = [];
      for (const [targetName, target] of Object.entries(gateway.config?.targets ?? {})) {
        for (const [iqn, client] of Object.entries(target.clients)) {
          out.push({ target: targetName, iqn, luns: [...clientDisks(target, iqn, client)].map(([name, lun]) => ({ name, lun })) });
        }
      }
      return out;
    },
    sessions: () => gateway.service.sessions.all().map((s) => ({
      target: s.target.name, initiator: s.nexus.initiatorName, isid: s.nexus.isid, tsih: s.tsih, stats: s.stats,
    })),
  };
}
