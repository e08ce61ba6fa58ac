/**
 * Data-path statistics: plain counters that the SCSI logical units and the iSCSI sessions
 * update inline (a few additions per command, no allocation, no library call), and read-only
 * views of them for the consumers: the Prometheus collectors (at scrape time), the REST API
 * (gwcli `info` per-LUN statistics) and the web dashboard.
 *
 * This is the one module of src/metrics/ the data path imports; it depends on nothing but the
 * SAM types.
 */
import { ScsiCommand, ScsiResult, ScsiStatus } from '../scsi/sam';
import { HistogramView, LATENCY_BUCKETS_SECONDS, LatencyHistogram, bucketIndex } from './histogram';

/** Command classes, by data direction (as LIO counts its per-LUN statistics). */
export const enum OpKind {
  /** Carries Data-In (READ, but also INQUIRY, MODE SENSE, ...). */
  Read = 0,
  /** Carries Data-Out (WRITE, but also MODE SELECT, UNMAP, ...). */
  Write = 1,
  /** No data (TEST UNIT READY, SYNCHRONIZE CACHE, ...). */
  Other = 2,
}

export const OP_NAMES = ['read', 'write', 'other'] as const;
export type OpName = (typeof OP_NAMES)[number];

/** Read-only view of the counters of one logical unit, or of one initiator on it. */
export interface IoStatsView {
  /** Commands completed, by OpKind (any status, aborted ones included). */
  readonly commands: ArrayLike<number>;
  /** Data-In bytes of commands that completed with GOOD (or CONDITION MET). */
  readonly readBytes: number;
  /** Data-Out bytes of commands that completed with GOOD: what reached the medium or the device. */
  readonly writeBytes: number;
  /** Commands that completed with any other status (CHECK CONDITION, BUSY, TASK SET FULL, ...). */
  readonly errors: number;
  /** Time from arrival at the logical unit to its result, by OpKind. */
  readonly latency: readonly HistogramView[];
}

export class IoStats implements IoStatsView {
  readonly commands = new Float64Array(3);
  readBytes = 0;
  writeBytes = 0;
  errors = 0;
  readonly latency: readonly LatencyHistogram[] = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];

  /** Count one command; `bucket` is its latency's index in LATENCY_BUCKETS_SECONDS. */
  record(kind: OpKind, ok: boolean, readBytes: number, writeBytes: number, seconds: number, bucket: number): void {
    this.commands[kind]++;
    if (ok) {
      this.readBytes += readBytes;
      this.writeBytes += writeBytes;
    } else {
      this.errors++;
    }
    this.latency[kind].observeInBucket(bucket, seconds);
  }

  /** Add another set of counters into this one (aggregation at scrape time). */
  add(other: IoStatsView): void {
    for (let k = 0; k < 3; k++) {
      this.commands[k] += other.commands[k];
      this.latency[k].add(other.latency[k]);
    }
    this.readBytes += other.readBytes;
    this.writeBytes += other.writeBytes;
    this.errors += other.errors;
  }
}

/**
 * Distinct initiators a logical unit keeps counters for. Initiators beyond it are counted
 * together under OTHER_INITIATORS, so an open target probed by many names stays bounded.
 */
export const MAX_INITIATORS_PER_LU = 256;
/** Not a valid iSCSI name (login rejects those), so it cannot collide with a real initiator. */
export const OTHER_INITIATORS = 'other';

/** Read-only view of a logical unit's statistics. */
export interface LuStatsView {
  readonly total: IoStatsView;
  /** Per initiator node name; kept while the LU exists (counters never go backwards). */
  readonly initiators: ReadonlyMap<string, IoStatsView>;
}

/** Statistics of one logical unit: its totals and, per initiator node name, the same counters. */
export class LuStats implements LuStatsView {
  readonly total = new IoStats();
  private readonly byInitiator = new Map<string, IoStats>();

  get initiators(): ReadonlyMap<string, IoStatsView> {
    return this.byInitiator;
  }

  /** Count one completed command (called by the logical unit for every command it ends). */
  record(cmd: ScsiCommand, result: ScsiResult, seconds: number): void {
    const ok = result.status === ScsiStatus.Good || result.status === ScsiStatus.ConditionMet;
    let kind = OpKind.Other;
    let readBytes = 0;
    let writeBytes = 0;
    if (cmd.dataOutLength > 0) {
      kind = OpKind.Write;
      writeBytes = Math.min(result.dataOutTransferLength ?? 0, cmd.dataOutLength);
    } else if (cmd.dataInLength > 0) {
      kind = OpKind.Read;
      readBytes = result.data ? Math.min(result.data.length, cmd.dataInLength) : 0;
    }
    const bucket = bucketIndex(LATENCY_BUCKETS_SECONDS, seconds);
    this.total.record(kind, ok, readBytes, writeBytes, seconds, bucket);
    this.initiator(cmd.nexus.initiatorName).record(kind, ok, readBytes, writeBytes, seconds, bucket);
  }

  private initiator(name: string): IoStats {
    let s = this.byInitiator.get(name);
    if (!s) {
      if (this.byInitiator.size >= MAX_INITIATORS_PER_LU) name = OTHER_INITIATORS;
      s = this.byInitiator.get(name);
      if (!s) {
        s = new IoStats();
        this.byInitiator.set(name, s);
      }
    }
    return s;
  }
}

/** Read-only view of one iSCSI session's counters. */
export interface SessionStatsView {
  /** Date.now() at login. */
  readonly loginTime: number;
  readonly commands: number;
  /** Data-In bytes sent to the initiator. */
  readonly dataInBytes: number;
  /** Data-Out bytes of commands that completed with GOOD. */
  readonly dataOutBytes: number;
  /** Commands answered with a status other than GOOD / CONDITION MET. */
  readonly errors: number;
}

export class SessionStats implements SessionStatsView {
  readonly loginTime = Date.now();
  commands = 0;
  dataInBytes = 0;
  dataOutBytes = 0;
  errors = 0;

  /** Count one command answered on the session. */
  record(status: number, dataInBytes: number, dataOutBytes: number): void {
    this.commands++;
    this.dataInBytes += dataInBytes;
    if (status === ScsiStatus.Good || status === ScsiStatus.ConditionMet) this.dataOutBytes += dataOutBytes;
    else this.errors++;
  }
}

// ---- Login failures ---------------------------------------------------------------------

/** Login status details (RFC 7143 §11.13.5) as metric label values. */
const LOGIN_FAILURE_REASONS: ReadonlyMap<number, string> = new Map([
  [0x0101, 'target_moved_temporarily'],
  [0x0102, 'target_moved_permanently'],
  [0x0200, 'initiator_error'],
  [0x0201, 'authentication_failure'],
  [0x0202, 'authorization_failure'],
  [0x0203, 'not_found'],
  [0x0204, 'target_removed'],
  [0x0205, 'unsupported_version'],
  [0x0206, 'too_many_connections'],
  [0x0207, 'missing_parameter'],
  [0x0208, 'cant_include_in_session'],
  [0x0209, 'session_type_not_supported'],
  [0x020a, 'session_does_not_exist'],
  [0x020b, 'invalid_during_login'],
  [0x0300, 'target_error'],
  [0x0301, 'service_unavailable'],
  [0x0302, 'out_of_resources'],
]);

/** The label value for a Login Response status (Status-Class << 8 | Status-Detail). */
export function loginFailureReason(status: number): string {
  return LOGIN_FAILURE_REASONS.get(status) ?? 'other';
}

/** Most distinct reasons kept; more fold into "other" (reasons are code-defined, so this is a guard). */
const MAX_LOGIN_FAILURE_REASONS = 64;

const loginFailureCounts = new Map<string, number>();

/**
 * Count a failed login. Every login that ends with a failure status passes through the
 * connection's failLogin, which counts it once with the status as reason: call this only for
 * a failure that does not end there, or a finer reason would count the login twice.
 */
export function countLoginFailure(reason: string): void {
  if (!loginFailureCounts.has(reason) && loginFailureCounts.size >= MAX_LOGIN_FAILURE_REASONS) reason = 'other';
  loginFailureCounts.set(reason, (loginFailureCounts.get(reason) ?? 0) + 1);
}

/** Failed logins of this process by reason. */
export function loginFailures(): ReadonlyMap<string, number> {
  return loginFailureCounts;
}

// ---- JSON views (REST API, dashboard) -----------------------------------------------------

export interface HistogramJson {
  /** [upper bound in seconds, cumulative count]; the last bound is "+Inf". */
  readonly buckets: [number | '+Inf', number][];
  readonly sum: number;
  readonly count: number;
}

export interface IoStatsJson {
  readonly commands: Record<OpName, number>;
  readonly read_bytes: number;
  readonly write_bytes: number;
  readonly errors: number;
  readonly latency_seconds: Record<OpName, HistogramJson>;
}

export function histogramJson(h: HistogramView): HistogramJson {
  const buckets: [number | '+Inf', number][] = [];
  let acc = 0;
  for (let i = 0; i <= h.bounds.length; i++) {
    acc += h.counts[i];
    buckets.push([i < h.bounds.length ? h.bounds[i] : '+Inf', acc]);
  }
  return { buckets, sum: h.sum, count: h.count };
}

/** A plain JSON copy of a set of counters (for `GET` routes; safe to serialise and keep). */
export function ioStatsJson(s: IoStatsView): IoStatsJson {
  return {
    commands: { read: s.commands[OpKind.Read], write: s.commands[OpKind.Write], other: s.commands[OpKind.Other] },
    read_bytes: s.readBytes,
    write_bytes: s.writeBytes,
    errors: s.errors,
    latency_seconds: {
      read: histogramJson(s.latency[OpKind.Read]),
      write: histogramJson(s.latency[OpKind.Write]),
      other: histogramJson(s.latency[OpKind.Other]),
    },
  };
}
