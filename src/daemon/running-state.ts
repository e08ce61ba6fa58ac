/**
 * Read-only view of what the gateways are doing right now, for the REST API (which runs in the
 * daemon process) and metrics: this gateway's sessions and applied epoch, every other gateway's
 * published status (heartbeat, sessions), and the check that refuses a disruptive change with a
 * message naming the sessions in the way.
 */

import type { HaDiskStatus } from '../ha/manager';

/** One logged-in iSCSI session (normal sessions only). */
export interface SessionInfo {
  /** Gateway it is logged in to. */
  readonly gateway: string;
  readonly target: string;
  readonly initiator: string;
  /** ISID as 12 hex digits, and the TSIH this gateway gave it. */
  readonly isid: string;
  readonly tsih: number;
  /** Disk ids this session can reach (the target's LUNs, after LUN masking). */
  readonly disks: readonly string[];
}

/** A gateway as seen through its status file. */
export interface GatewayStatus {
  readonly name: string;
  /** Heartbeat younger than the down timeout. */
  readonly up: boolean;
  /** Last heartbeat (ms since epoch), undefined when it never published. */
  readonly heartbeat?: number;
  /** Config epoch it has applied. */
  readonly appliedEpoch?: number;
  readonly pid?: number;
  readonly host?: string;
  /** Portal addresses it listens on ("ip:port"). */
  readonly portals: readonly string[];
  readonly sessions: readonly SessionInfo[];
  /** Disks it holds open read-write (it is their owner and has the image lock). */
  readonly activeDisks: readonly string[];
  /** Last apply problem, if the last reconcile could not apply everything. */
  readonly error?: string;
  /** Disks it serves (any access state): who can take a disk over. */
  readonly servedDisks?: readonly string[];
  /** Draining: it hands its disks over and takes none (maintenance). */
  readonly draining?: boolean;
  /** Outcome of its drain (absent while the drain runs): disks it kept because no other gateway serves them. */
  readonly drainKept?: readonly string[];
  /** Per-disk HA counters (src/ha/manager.ts HaDiskStatus). */
  readonly ha?: Readonly<Record<string, HaDiskStatus>>;
}

/** A change the API is about to commit that would break sessions. */
export type DisruptiveChange =
  /** Reconfigure (controls) of a disk, or a resize. */
  | { readonly kind: 'disk-reconfigure'; readonly disk: string }
  | { readonly kind: 'snapshot-rollback'; readonly disk: string; readonly snapshot?: string }
  /** Delete a disk, or unmap it from a target (`target` set). */
  | { readonly kind: 'disk-delete'; readonly disk: string; readonly target?: string }
  | { readonly kind: 'client-delete'; readonly target: string; readonly client: string }
  | { readonly kind: 'target-delete'; readonly target: string }
  | { readonly kind: 'gateway-delete'; readonly target: string; readonly gateway: string };

export class DisruptiveChangeError extends Error {
  constructor(
    message: string,
    readonly sessions: readonly SessionInfo[],
  ) {
    super(message);
    this.name = 'DisruptiveChangeError';
  }
}

export interface RunningState {
  /** This gateway's name (`serve --name`). */
  readonly gatewayName: string;
  /** Epoch of the last config this gateway applied completely (-1 before the first). */
  appliedEpoch(): number;
  /** Sessions logged in to this gateway now. */
  localSessions(): SessionInfo[];
  /** Status of every gateway that ever published (this one included, fresh). */
  gateways(): Promise<GatewayStatus[]>;
  /** Sessions on every gateway that is up (this one live, others from their status files). */
  allSessions(): Promise<SessionInfo[]>;
  /** Sessions a change would disrupt (empty: safe). */
  sessionsInTheWay(change: DisruptiveChange): Promise<SessionInfo[]>;
  /** Throw DisruptiveChangeError (message names the sessions) when sessionsInTheWay is not empty. */
  refuseIfDisruptive(change: DisruptiveChange): Promise<void>;
  /**
   * Resolve once this gateway, and (with `allUp`) every gateway that is up, has applied
   * `epoch`; rejects after timeoutMs naming the gateways that have not.
   */
  waitApplied(epoch: number, options?: { readonly allUp?: boolean; readonly timeoutMs?: number }): Promise<void>;
  /**
   * Ask gateway `gateway` to drain (hand its disks to the other gateways and take none) or to
   * resume; resolves when the order is delivered (watch gateways() for the result).
   */
  requestDrain?(gateway: string, drain: boolean): Promise<void>;
  /** Gateway holding a disk's image lock now (the lease, not a possibly stale heartbeat). */
  lockOwner?(disk: string): Promise<string | undefined>;
  /**
   * ALUA of a disk as this gateway reports it (REPORT TARGET PORT GROUPS): per target, the
   * mode and each target port group's gateway and state. Empty when no target here maps it.
   */
  aluaOf?(disk: string): AluaDiskView[];
}

/** One disk in one target, as GET /api/disk `status.alua` shows it. */
export interface AluaDiskView {
  readonly target: string;
  readonly mode: string;
  readonly groups: readonly { readonly id: number; readonly gateway: string; readonly state: string; readonly preferred: boolean }[];
}
