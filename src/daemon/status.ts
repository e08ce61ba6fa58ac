/**
 * Per-gateway status documents on the peer plane (src/ha/peer-plane.ts: status/<name>.json in
 * the data dir, or the omap of <conf>.status in RADOS): each gateway publishes its heartbeat,
 * applied epoch, portals, open disks and session list every HEARTBEAT_MS and after each apply.
 * Other gateways read them to name sessions in the way of a change and to tell UP from DOWN (no
 * heartbeat for DOWN_AFTER_MS, or a clean stop).
 */
import * as path from 'node:path';
import { FilePeerPlane, PeerPlane, documentFileName } from '../ha/peer-plane';
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

export function statusFile(dataDir: string, name: string): string {
  // Gateway names are host names; anything else is encoded so it cannot leave the directory.
  return path.join(statusDir(dataDir), documentFileName(name));
}

export async function writeStatus(dataDir: string, doc: StatusDocument): Promise<void> {
  await publishStatus(new FilePeerPlane(dataDir), doc);
}

export async function publishStatus(plane: PeerPlane, doc: StatusDocument): Promise<void> {
  await plane.publish('status', doc.name, doc);
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

/** Every published gateway status in the data dir (unreadable files are skipped). */
export async function readStatuses(dataDir: string, now = Date.now()): Promise<GatewayStatus[]> {
  return readPeerStatuses(new FilePeerPlane(dataDir), now);
}

/** Every gateway status published on the plane (unreadable or malformed documents are skipped). */
export async function readPeerStatuses(plane: PeerPlane, now = Date.now()): Promise<GatewayStatus[]> {
  const out: GatewayStatus[] = [];
  for (const d of await plane.read('status')) {
    const doc = d as StatusDocument;
    if (typeof doc === 'object' && doc !== null && typeof doc.name === 'string' && typeof doc.heartbeat === 'number') out.push(toStatus(doc, now));
  }
  return out;
}

export type PeerLiveness = 'up' | 'down' | 'unknown';

/**
 * A gateway's liveness by the heartbeat rule (UP: a heartbeat within DOWN_AFTER_MS and no clean
 * stop; 'unknown': it never published), from statuses read at most `cacheMs` ago. For the lock
 * backends that must tell a dead lock holder from a live one (RBD exclusive lock on Ceph).
 */
export function peerLiveness(plane: PeerPlane, cacheMs = 250): (gateway: string) => Promise<PeerLiveness> {
  let cached: { at: number; statuses: Promise<GatewayStatus[]> } | undefined;
  return async (gateway: string) => {
    const now = Date.now();
    if (!cached || now - cached.at > cacheMs) {
      const statuses = readPeerStatuses(plane, now);
      cached = { at: now, statuses };
      statuses.catch(() => {
        if (cached?.statuses === statuses) cached = undefined;
      });
    }
    const st = (await cached.statuses).find((g) => g.name === gateway);
    return !st ? 'unknown' : st.up ? 'up' : 'down';
  };
}
