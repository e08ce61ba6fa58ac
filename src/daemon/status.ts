/**
 * Per-gateway status files in the data dir (status/<name>.json): each gateway publishes its
 * heartbeat, applied epoch, portals, open disks and session list every HEARTBEAT_MS and after
 * each apply. Other gateways read them to name sessions in the way of a change and to tell UP
 * from DOWN (no heartbeat for DOWN_AFTER_MS, or a clean stop).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../sys/durable';
import type { HaDiskStatus } from '../ha/manager';
import type { GatewayStatus, SessionInfo } from './running-state';

export const HEARTBEAT_MS = 2000;
export const DOWN_AFTER_MS = 3 * HEARTBEAT_MS + 1000;

export interface StatusDocument {
  readonly name: string;
  readonly pid: number;
  readonly host: string;
  readonly heartbeat: number;
  readonly stopped: boolean;
  readonly appliedEpoch: number;
  readonly portals: readonly string[];
  readonly sessions: readonly SessionInfo[];
  readonly activeDisks: readonly string[];
  readonly error?: string;
  readonly servedDisks?: readonly string[];
  readonly draining?: boolean;
  readonly drainKept?: readonly string[];
  readonly ha?: Readonly<Record<string, HaDiskStatus>>;
}

export function statusDir(dataDir: string): string {
  return path.join(dataDir, 'status');
}

const SAFE_NAME = /^[A-Za-z0-9._-]{1,255}$/;

export function statusFile(dataDir: string, name: string): string {
  // Gateway names are host names; anything else is encoded so it cannot leave the directory.
  const file = SAFE_NAME.test(name) && name !== '.' && name !== '..' ? name : encodeURIComponent(name).replace(/\./g, '%2E');
  return path.join(statusDir(dataDir), `${file}.json`);
}

export async function writeStatus(dataDir: string, doc: StatusDocument): Promise<void> {
  await fsp.mkdir(statusDir(dataDir), { recursive: true, mode: 0o700 });
  // Not fsynced per heartbeat would be cheaper, but writeFileAtomic keeps readers from torn JSON.
  await writeFileAtomic(statusFile(dataDir, doc.name), JSON.stringify(doc), 0o600);
}

function toStatus(doc: StatusDocument, now: number): GatewayStatus {
  return {
    name: doc.name,
    up: !doc.stopped && now - doc.heartbeat < DOWN_AFTER_MS,
    heartbeat: doc.heartbeat,
    appliedEpoch: doc.appliedEpoch,
    pid: doc.pid,
    host: doc.host,
    portals: doc.portals,
    sessions: doc.sessions,
    activeDisks: doc.activeDisks,
    error: doc.error,
    servedDisks: doc.servedDisks,
    draining: doc.draining,
    drainKept: doc.drainKept,
    ha: doc.ha,
  };
}

/** Every published gateway status (unreadable files are skipped). */
export async function readStatuses(dataDir: string, now = Date.now()): Promise<GatewayStatus[]> {
  let files: string[];
  try {
    files = await fsp.readdir(statusDir(dataDir));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: GatewayStatus[] = [];
  for (const f of files) {
    if (!f.endsWith('.json') || f.startsWith('.tmp-')) continue;
    try {
      const doc = JSON.parse(await fsp.readFile(path.join(statusDir(dataDir), f), 'utf8')) as StatusDocument;
      if (typeof doc.name === 'string' && typeof doc.heartbeat === 'number') out.push(toStatus(doc, now));
    } catch {
      // replaced or removed meanwhile
    }
  }
  return out;
}
