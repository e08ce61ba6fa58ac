/**
 * What the metrics collectors read: a narrow view of the running gateway (targets, logical
 * units with their statistics, configured clients, sessions, config epoch). Collectors see
 * only this interface, so they can be tested without a daemon and the daemon can change shape.
 */
import * as os from 'node:os';
import type { Gateway } from '../daemon/gateway';
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

export interface MetricsSource {
  /** This gateway's name (ceph-iscsi's gw_name). */
  readonly gatewayName: string;
  /** Epoch of the configuration the gateway runs, undefined before it loaded one. */
  configEpoch(): number | undefined;
  targets(): TargetSample[];
  luns(): LunSample[];
  clients(): ClientSample[];
  sessions(): SessionSample[];
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[key] : undefined;
}

function lunIdOf(o: unknown): number | undefined {
  const id = field(o, 'lun_id');
  return typeof id === 'number' ? id : undefined;
}

/**
 * The metrics view of a running Gateway. Reads the configuration the gateway loaded (fields
 * of ceph-iscsi's schema that ours does not carry yet, such as a disk's `owner` or a client's
 * `luns`, are used when present) and the live SCSI targets and sessions.
 */
export function gatewayMetricsSource(gateway: Gateway, gatewayName: string = os.hostname()): MetricsSource {
  return {
    gatewayName,
    configEpoch: () => gateway.config?.epoch,
    targets: () => Object.entries(gateway.config?.targets ?? {}).map(([name, t]) => {
      const portals = field(t, 'portals');
      const n = typeof portals === 'object' && portals !== null ? Object.keys(portals).length : 0;
      return { name, tpgs: Math.max(1, n) };
    }),
    luns: () => {
      const config = gateway.config;
      const out: LunSample[] = [];
      for (const [targetName, scsi] of gateway.targets()) {
        const target = config?.targets[targetName];
        const clients = Object.values(target?.clients ?? {});
        for (const lun of scsi.luns()) {
          const lu = scsi.logicalUnit(lun);
          if (!lu) continue;
          const owner = field(config?.disks[lu.name], 'owner');
          const mapped = !target?.acl_enabled || clients.some((c) => {
            const luns = field(c, 'luns');
            return luns === undefined || field(luns, lu.name) !== undefined;
          });
          out.push({
            target: targetName, lun, name: lu.name, sizeBytes: lu.capacity() * lu.blockSize,
            owner: typeof owner === 'string' && owner !== '' ? owner : gatewayName,
            mapped, tasks: lu.taskSet.size, stats: lu.stats,
          });
        }
      }
      return out;
    },
    clients: () => {
      const out: ClientSample[] = [];
      for (const [targetName, target] of Object.entries(gateway.config?.targets ?? {})) {
        for (const [iqn, client] of Object.entries(target.clients)) {
          const own = field(client, 'luns');
          // ceph-iscsi v11 maps disks per client; without a per-client list a client sees every LUN.
          const luns = Object.entries(typeof own === 'object' && own !== null ? own : target.disks)
            .map(([name, m]) => ({ name, lun: lunIdOf(m) ?? lunIdOf(field(target.disks, name)) ?? -1 }))
            .filter((l) => l.lun >= 0);
          out.push({ target: targetName, iqn, luns });
        }
      }
      return out;
    },
    sessions: () => gateway.service.sessions.all().map((s) => ({
      target: s.target.name, initiator: s.nexus.initiatorName, isid: s.nexus.isid, tsih: s.tsih, stats: s.stats,
    })),
  };
}
