/**
 * Every gateway daemon publishes its live counters for the web dashboard: live/<name>.json in
 * the shared data dir, rewritten every PUBLISH_MS (atomic rename, no fsync: a lost sample is
 * harmless). The dashboard, served by any one gateway's API, reads every gateway's file and
 * turns successive samples into rates (history.ts), just as status/<name>.json carries the
 * heartbeats. Counters are cumulative (since the logical unit or session exists).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
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

const SAFE_NAME = /^[A-Za-z0-9._-]{1,255}$/;

export function liveFile(dataDir: string, name: string): string {
  const file = SAFE_NAME.test(name) && name !== '.' && name !== '..' ? name : encodeURIComponent(name).replace(/\./g, '%2E');
  return path.join(liveDir(dataDir), `${file}.json`);
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

/** Publish this gateway's sample every PUBLISH_MS until stopped; the file is removed at stop. */
export function startLivePublisher(dataDir: string, name: string, source: MetricsSource, gateway: GatewayView, log: Logger, periodMs = PUBLISH_MS): LivePublisher {
  const file = liveFile(dataDir, name);
  let running: Promise<void> = Promise.resolve();
  let warned = false;
  const publish = async (): Promise<void> => {
    try {
      await fsp.mkdir(liveDir(dataDir), { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp-${process.pid}`;
      await fsp.writeFile(tmp, JSON.stringify(liveSample(name, source, gateway)), { mode: 0o600 });
      await fsp.rename(tmp, file);
      warned = false;
    } catch (err) {
      if (!warned) log.warn({ err, file }, 'cannot publish live statistics for the dashboard');
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
      await fsp.rm(file, { force: true });
    },
  };
}

/** Every gateway's last published sample (unreadable or half-written files are skipped). */
export async function readLive(dataDir: string): Promise<LiveDocument[]> {
  let files: string[];
  try {
    files = await fsp.readdir(liveDir(dataDir));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: LiveDocument[] = [];
  for (const f of files.slice(0, 256)) {
    if (!f.endsWith('.json')) continue;
    try {
      const doc = JSON.parse(await fsp.readFile(path.join(liveDir(dataDir), f), 'utf8')) as LiveDocument;
      if (typeof doc.name === 'string' && typeof doc.at === 'number' && Array.isArray(doc.luns)) out.push(doc);
    } catch {
      // replaced meanwhile
    }
  }
  return out;
}
