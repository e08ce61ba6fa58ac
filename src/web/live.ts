/**
 * Every gateway daemon publishes its live counters for the web dashboard on the peer plane
 * (src/ha/peer-plane.ts): live/<name>.json in the shared data dir (atomic rename, no fsync: a
 * lost sample is harmless), or an omap entry of <conf>.live in RADOS, rewritten every
 * PUBLISH_MS. The dashboard, served by any one gateway's API, reads every gateway's sample and
 * turns successive samples into rates (history.ts), just as the status documents carry the
 * heartbeats. Counters are cumulative (since the logical unit or session exists).
 */
import * as path from 'node:path';
import { FilePeerPlane, PeerPlane, documentFileName } from '../ha/peer-plane';
import type { Session } from '../iscsi/session';
import { ConnectionInfo, DigestName, formatHostPort } from '../iscsi/connection-info';
import { LATENCY_BUCKETS_SECONDS } from '../metrics/histogram';
import type { GatewayView, MetricsSource } from '../metrics/source';
import { OpKind, loginFailures } from '../metrics/stats';
import type { Logger } from '../util/log';

export const PUBLISH_MS = 2000;

export interface LiveLun {
  readonly target: string;
  readonly lun: number;
  /** Disk id "pool/image". */
  readonly disk: string;
  readonly owner: string;
  readonly tasks: number;
  /** Commands by data direction: read, write, other. */
  readonly commands: [number, number, number];
  readonly read_bytes: number;
  readonly write_bytes: number;
  readonly errors: number;
  /** Per-bucket (not cumulative) latency counts of reads and writes; bounds in LiveDocument. */
  readonly latency: { readonly read: number[]; readonly write: number[] };
}

export interface LiveSession {
  readonly target: string;
  readonly initiator: string;
  readonly alias: string;
  readonly isid: string;
  readonly tsih: number;
  readonly target_portal_group: number;
  readonly login_time: number;
  readonly commands: number;
  readonly data_in_bytes: number;
  readonly data_out_bytes: number;
  readonly errors: number;
  /** Session-wide operational parameters as negotiated at login (RFC 7143 §13). */
  readonly parameters: Record<string, string | number | boolean>;
  /** Its connection (one per session); absent when the connection is already gone. */
  readonly connection?: LiveConnection;
}

export interface LiveConnection {
  readonly cid: number;
  /** The initiator's IP address, and its "address:port" ("[v6]:port"). */
  readonly ip_address: string;
  readonly initiator: string;
  /** The portal ("address:port") the initiator connected to. */
  readonly portal: string;
  readonly header_digest: DigestName;
  readonly data_digest: DigestName;
}

export function liveConnection(c: ConnectionInfo): LiveConnection {
  return {
    cid: c.cid,
    ip_address: c.initiatorAddress,
    initiator: formatHostPort(c.initiatorAddress, c.initiatorPort),
    portal: formatHostPort(c.portal.host, c.portal.port),
    header_digest: c.headerDigest,
    data_digest: c.dataDigest,
  };
}

export interface LiveDocument {
  readonly name: string;
  readonly pid: number;
  /** Date.now() of the sample. */
  readonly at: number;
  readonly bounds: readonly number[];
  readonly luns: LiveLun[];
  readonly sessions: LiveSession[];
  /** Failed iSCSI logins of this gateway since it started, by reason. */
  readonly login_failures: Record<string, number>;
}

export function liveDir(dataDir: string): string {
  return path.join(dataDir, 'live');
}

export function liveFile(dataDir: string, name: string): string {
  return path.join(liveDir(dataDir), documentFileName(name));
}

function sessionParameters(s: Session): Record<string, string | number | boolean> {
  const p = s.params;
  return {
    MaxConnections: p.maxConnections,
    InitialR2T: p.initialR2T,
    ImmediateData: p.immediateData,
    MaxBurstLength: p.maxBurstLength,
    FirstBurstLength: p.firstBurstLength,
    DefaultTime2Wait: p.defaultTime2Wait,
    DefaultTime2Retain: p.defaultTime2Retain,
    MaxOutstandingR2T: p.maxOutstandingR2T,
    DataPDUInOrder: p.dataPDUInOrder,
    DataSequenceInOrder: p.dataSequenceInOrder,
    ErrorRecoveryLevel: p.errorRecoveryLevel,
  };
}

function withConnection(c: ConnectionInfo | undefined): { connection?: LiveConnection } {
  return c ? { connection: liveConnection(c) } : {};
}

/** One sample of this gateway (synchronous: a consistent snapshot of the counters). */
export function liveSample(name: string, source: MetricsSource, gateway: GatewayView): LiveDocument {
  const luns: LiveLun[] = source.luns().map((l) => {
    const t = l.stats.total;
    return {
      target: l.target, lun: l.lun, disk: l.name, owner: l.owner, tasks: l.tasks,
      commands: [t.commands[OpKind.Read], t.commands[OpKind.Write], t.commands[OpKind.Other]],
      read_bytes: t.readBytes, write_bytes: t.writeBytes, errors: t.errors,
      latency: { read: Array.from(t.latency[OpKind.Read].counts), write: Array.from(t.latency[OpKind.Write].counts) },
    };
  });
  const sessions: LiveSession[] = gateway.service.sessions.all()
    .filter((s) => s.params.sessionType === 'Normal')
    .map((s) => ({
      target: s.target.name, initiator: s.nexus.initiatorName, alias: s.params.initiatorAlias, isid: s.nexus.isid, tsih: s.tsih,
      target_portal_group: s.nexus.targetPortGroup, login_time: s.stats.loginTime, commands: s.stats.commands,
      data_in_bytes: s.stats.dataInBytes, data_out_bytes: s.stats.dataOutBytes, errors: s.stats.errors, parameters: sessionParameters(s),
      ...withConnection(s.connection),
    }));
  return { name, pid: process.pid, at: Date.now(), bounds: LATENCY_BUCKETS_SECONDS, luns, sessions, login_failures: Object.fromEntries(loginFailures()) };
}

export interface LivePublisher {
  stop(): Promise<void>;
}

/** A data dir (its live/ directory) or the gateways' peer plane (RADOS on Ceph). */
export type LiveWhere = string | PeerPlane;

function planeOf(where: LiveWhere): PeerPlane {
  return typeof where === 'string' ? new FilePeerPlane(where) : where;
}

/** Publish this gateway's sample every PUBLISH_MS until stopped; the document is removed at stop. */
export function startLivePublisher(where: LiveWhere, name: string, source: MetricsSource, gateway: GatewayView, log: Logger, periodMs = PUBLISH_MS): LivePublisher {
  const plane = planeOf(where);
  let running: Promise<void> = Promise.resolve();
  let warned = false;
  const publish = async (): Promise<void> => {
    try {
      await plane.publish('live', name, liveSample(name, source, gateway));
      warned = false;
    } catch (err) {
      if (!warned) log.warn({ err, at: plane.location }, 'cannot publish live statistics for the dashboard');
      warned = true;
    }
  };
  running = publish();
  const timer = setInterval(() => {
    running = running.then(publish);
  }, periodMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
      await plane.withdraw('live', name);
    },
  };
}

/** Every gateway's last published sample (unreadable or half-written documents are skipped). */
export async function readLive(where: LiveWhere): Promise<LiveDocument[]> {
  const out: LiveDocument[] = [];
  for (const d of await planeOf(where).read('live')) {
    const doc = d as LiveDocument;
    if (typeof doc === 'object' && doc !== null && typeof doc.name === 'string' && typeof doc.at === 'number' && Array.isArray(doc.luns)) out.push(doc);
  }
  return out;
}
