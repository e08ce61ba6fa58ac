/**
 * The gateway-to-gateway plane: what gateways learn about each other besides the configuration.
 *
 *   publish / read   one document per gateway and channel, replaced by each publication:
 *                    'status' (heartbeat, applied epoch, portals, sessions, served disks, HA
 *                    counters, draining: src/daemon/status.ts) and 'live' (the dashboard's
 *                    counters: src/web/live.ts). Readers get every gateway's last document.
 *   send / take      small messages to one gateway (src/ha/inbox.ts: hand-over requests,
 *                    "take this disk", drain/resume orders), kept until the addressee takes
 *                    them; `onMessage` wakes the addressee as soon as one arrives.
 *
 * Two implementations: FilePeerPlane (the data dir, shared by the gateway processes of one
 * host: status/<gw>.json, live/<gw>.json, ha/inbox/<gw>/) and RadosPeerPlane (objects in the
 * configuration's pool, for gateways on different hosts: src/ha/rados-peer-plane.ts), chosen
 * as the configuration store is (selectPeerPlane). Both apply the same bounds.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../sys/durable';
import { HaMessage, clearInbox, inboxDir, sendMessage, takeMessages, watchInbox } from './inbox';

export type PeerChannel = 'status' | 'live';

/** Largest document a gateway may publish per channel (bytes of its JSON). */
export const MAX_DOCUMENT_BYTES: Readonly<Record<PeerChannel, number>> = {
  // ~3000 sessions with their disk lists; the heartbeat of a gateway that would exceed it
  // fails loudly (logged) instead of publishing a cut session list that would let a
  // disruptive change through.
  status: 1024 * 1024,
  // per-LUN latency buckets of a few hundred LUNs
  live: 2 * 1024 * 1024,
};
/** Largest message (bytes of its JSON). */
export const MAX_MESSAGE_BYTES = 4096;
/** Messages waiting for one gateway; a send to a full inbox fails (PeerPlaneError 'full'). */
export const MAX_QUEUED_MESSAGES = 256;
/** Gateways read per channel (a cluster has a handful; this bounds a read). */
export const MAX_GATEWAYS = 256;

export class PeerPlaneError extends Error {
  constructor(message: string, readonly reason: 'too-large' | 'full' | 'unavailable') {
    super(message);
    this.name = 'PeerPlaneError';
  }
}

export interface PeerPlane {
  /** Where the plane lives ("data dir /var/lib/...", "rados:rbd/gateway.conf.*"). */
  readonly location: string;
  /** Replace `name`'s document on `channel` (PeerPlaneError 'too-large' beyond MAX_DOCUMENT_BYTES). */
  publish(channel: PeerChannel, name: string, doc: object): Promise<void>;
  /** Remove `name`'s document from `channel`. */
  withdraw(channel: PeerChannel, name: string): Promise<void>;
  /** Every gateway's last document on `channel`, parsed (unreadable or oversized ones skipped). */
  read(channel: PeerChannel): Promise<unknown[]>;
  /** Queue `msg` for gateway `to` (kept while it is briefly away; PeerPlaneError when too large or its inbox is full). */
  send(to: string, msg: HaMessage): Promise<void>;
  /** Take the messages waiting for `gateway`, oldest first (stale and malformed ones dropped). */
  take(gateway: string): Promise<HaMessage[]>;
  /** Drop everything waiting for `gateway` (a starting gateway answers only what comes later). */
  clear(gateway: string): Promise<void>;
  /** Call `listener` promptly when a message for `gateway` may have arrived; returns the unsubscriber. */
  onMessage(gateway: string, listener: () => void): () => void;
  close(): Promise<void>;
}

/** The JSON of a message, refused when larger than MAX_MESSAGE_BYTES. */
export function encodeMessage(to: string, msg: HaMessage): string {
  const text = JSON.stringify(msg);
  if (Buffer.byteLength(text) > MAX_MESSAGE_BYTES) {
    throw new PeerPlaneError(`message ${msg.kind} to ${to} is ${Buffer.byteLength(text)} bytes (at most ${MAX_MESSAGE_BYTES})`, 'too-large');
  }
  return text;
}

/** The JSON of a document, refused when larger than the channel's bound. */
export function encodeDocument(channel: PeerChannel, name: string, doc: object): string {
  const text = JSON.stringify(doc);
  const n = Buffer.byteLength(text);
  if (n > MAX_DOCUMENT_BYTES[channel]) {
    throw new PeerPlaneError(`the ${channel} document of gateway ${name} is ${n} bytes (at most ${MAX_DOCUMENT_BYTES[channel]})`, 'too-large');
  }
  return text;
}

const SAFE_NAME = /^[A-Za-z0-9._-]{1,255}$/;

/** A gateway name as one file name (host names as they are; anything else encoded). */
export function documentFileName(name: string): string {
  const file = SAFE_NAME.test(name) && name !== '.' && name !== '..' ? name : encodeURIComponent(name).replace(/\./g, '%2E');
  return `${file}.json`;
}

/** The data dir's plane: every gateway process of one host (one shared data dir). */
export class FilePeerPlane implements PeerPlane {
  readonly location: string;

  constructor(readonly dataDir: string) {
    this.location = `data dir ${dataDir}`;
  }

  channelDir(channel: PeerChannel): string {
    return path.join(this.dataDir, channel);
  }

  async publish(channel: PeerChannel, name: string, doc: object): Promise<void> {
    const text = encodeDocument(channel, name, doc);
    const dir = this.channelDir(channel);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, documentFileName(name));
    if (channel === 'status') {
      // Durable (a heartbeat is rare enough); the rename keeps readers from torn JSON.
      await writeFileAtomic(file, text, 0o600);
    } else {
      // A lost dashboard sample is harmless: no fsync.
      const tmp = `${file}.tmp-${process.pid}`;
      await fsp.writeFile(tmp, text, { mode: 0o600 });
      await fsp.rename(tmp, file);
    }
  }

  async withdraw(channel: PeerChannel, name: string): Promise<void> {
    await fsp.rm(path.join(this.channelDir(channel), documentFileName(name)), { force: true });
  }

  async read(channel: PeerChannel): Promise<unknown[]> {
    const dir = this.channelDir(channel);
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: unknown[] = [];
    for (const f of files) {
      if (out.length >= MAX_GATEWAYS) break;
      if (!f.endsWith('.json') || f.startsWith('.tmp-')) continue;
      const file = path.join(dir, f);
      try {
        const st = await fsp.stat(file);
        if (st.size > MAX_DOCUMENT_BYTES[channel]) continue;
        out.push(JSON.parse(await fsp.readFile(file, 'utf8')));
      } catch {
        // replaced or removed meanwhile
      }
    }
    return out;
  }

  async send(to: string, msg: HaMessage): Promise<void> {
    encodeMessage(to, msg);
    let waiting = 0;
    try {
      waiting = (await fsp.readdir(inboxDir(this.dataDir, to))).filter((n) => n.endsWith('.json') && !n.startsWith('.tmp-')).length;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    // A gateway that is down keeps its messages until it starts (and drops them then).
    if (waiting >= MAX_QUEUED_MESSAGES) throw new PeerPlaneError(`the inbox of gateway ${to} is full (${waiting} messages waiting)`, 'full');
    await sendMessage(this.dataDir, to, msg);
  }

  take(gateway: string): Promise<HaMessage[]> {
    return takeMessages(this.dataDir, gateway);
  }

  clear(gateway: string): Promise<void> {
    return clearInbox(this.dataDir, gateway);
  }

  /** inotify on the addressee's inbox directory (a hand-over request is read in a millisecond; HaManager's 50 ms poll stays as the fallback). */
  onMessage(gateway: string, listener: () => void): () => void {
    return watchInbox(this.dataDir, gateway, listener);
  }

  async close(): Promise<void> {
    // nothing held
  }
}
