/**
 * The gateway-to-gateway plane in RADOS (gateways on different hosts share only the cluster).
 * Objects in the configuration's pool, named after the configuration object (`gateway.conf`):
 *
 *   <conf>.status          omap: gateway name -> its status document (rewritten every heartbeat)
 *   <conf>.live            omap: gateway name -> its dashboard sample (removed at stop)
 *   <conf>.inbox.<gw>      omap: "<ms>-<random>" -> one message for <gw>, a durable queue: a
 *                          message to a gateway that is briefly away (network, OSD restart)
 *                          waits there; the addressee removes what it took.
 *
 * Each send is followed by a RADOS notify on the addressee's inbox object; the addressee
 * watches its own inbox and reads it at once (milliseconds), so the inbox is read only when
 * something arrived — plus a safety read every `safetyPollMs` behind a notify that was lost
 * (watch broken and re-established). Omap writes of different gateways to one object are
 * serialized by the OSD, so no gateway overwrites another's document.
 *
 * Bounds as src/ha/peer-plane.ts: document and message size, queue length (a send to a full
 * inbox drops the stale messages first, then fails), gateways per read, notifies in flight.
 */
import { randomBytes } from 'node:crypto';
import { ObjectWatch, RadosObject } from '../ceph/rados-object';
import type { NativeIoCtx } from '../ceph/object-binding';
import { CephSettings, cephPool } from '../ceph/settings';
import type { Logger } from '../util/log';
import { HaMessage, MAX_MESSAGE_AGE_MS, validMessage } from './inbox';
import {
  FilePeerPlane,
  MAX_DOCUMENT_BYTES,
  MAX_GATEWAYS,
  MAX_MESSAGE_BYTES,
  MAX_QUEUED_MESSAGES,
  PeerChannel,
  PeerPlane,
  PeerPlaneError,
  encodeDocument,
  encodeMessage,
} from './peer-plane';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Notifies not yet answered; beyond this a send skips its notify (the safety read delivers). */
const MAX_PENDING_NOTIFIES = 64;
/** A failed inbox read is retried after this (one warning per second, not per poll). */
const RETRY_AFTER_ERROR_MS = 1000;

export interface RadosPeerPlaneOptions {
  /** Read an inbox this often even without a notify (default 1000 ms). */
  readonly safetyPollMs?: number;
  /** How long a notify waits for the addressee's ack (default 2000 ms). */
  readonly notifyTimeoutMs?: number;
  /**
   * This gateway's data dir: its own status is also written there (status/<gw>.json), for the
   * local checks that look at the data dir (one process per gateway name, local tools).
   */
  readonly mirrorDataDir?: string;
  readonly log?: Logger;
}

interface Inbox {
  readonly obj: RadosObject;
  readonly listeners: Set<() => void>;
  /** Something may be waiting (a notify came, the watch was (re-)established, the safety timer). */
  dirty: boolean;
  /** After a failed read, not before this (the caller polls every 50 ms; the cluster may be away). */
  retryAt: number;
  watch?: ObjectWatch;
  watching: boolean;
  rewatching: boolean;
}

export class RadosPeerPlane implements PeerPlane {
  readonly location: string;
  private readonly docs: Record<PeerChannel, RadosObject>;
  private readonly inboxes = new Map<string, Inbox>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly safetyPollMs: number;
  private readonly notifyTimeoutMs: number;
  private readonly mirror: FilePeerPlane | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly io: NativeIoCtx,
    readonly pool: string,
    /** Object name prefix: the configuration object's name. */
    readonly prefix: string,
    private readonly options: RadosPeerPlaneOptions = {},
  ) {
    this.location = `rados:${pool}/${prefix}.{status,live,inbox.*}`;
    this.docs = { status: new RadosObject(io, pool, `${prefix}.status`), live: new RadosObject(io, pool, `${prefix}.live`) };
    this.safetyPollMs = options.safetyPollMs ?? 1000;
    this.notifyTimeoutMs = options.notifyTimeoutMs ?? 2000;
    this.mirror = options.mirrorDataDir ? new FilePeerPlane(options.mirrorDataDir) : undefined;
  }

  /** The plane beside the configured cluster's configuration object (the process's one connection). */
  static async open(ceph: CephSettings, options: RadosPeerPlaneOptions = {}): Promise<RadosPeerPlane> {
    return new RadosPeerPlane(await cephPool(ceph, ceph.pool), ceph.pool, ceph.configObject, options);
  }

  // ---------------------------------------------------------------- documents

  async publish(channel: PeerChannel, name: string, doc: object): Promise<void> {
    const text = encodeDocument(channel, name, doc);
    await this.docs[channel].omapSet(new Map([[name, Buffer.from(text, 'utf8')]]));
    if (channel === 'status' && this.mirror) {
      await this.mirror.publish(channel, name, doc).catch((e: unknown) => this.options.log?.warn({ err: e }, 'cannot mirror the gateway status into the data dir'));
    }
  }

  async withdraw(channel: PeerChannel, name: string): Promise<void> {
    await this.docs[channel].omapRemove([name]);
  }

  async read(channel: PeerChannel): Promise<unknown[]> {
    const entries = await this.docs[channel].omapGet('', MAX_GATEWAYS);
    const out: unknown[] = [];
    for (const value of entries.values()) {
      if (value.length > MAX_DOCUMENT_BYTES[channel]) continue;
      try {
        out.push(JSON.parse(value.toString('utf8')));
      } catch {
        // a damaged entry: skipped, as an unreadable status file
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- messages

  private inboxObject(gateway: string): RadosObject {
    return new RadosObject(this.io, this.pool, `${this.prefix}.inbox.${encodeURIComponent(gateway)}`);
  }

  private inbox(gateway: string): Inbox {
    let b = this.inboxes.get(gateway);
    if (!b) {
      b = { obj: this.inboxObject(gateway), listeners: new Set(), dirty: true, retryAt: 0, watching: false, rewatching: false };
      this.inboxes.set(gateway, b);
    }
    return b;
  }

  async send(to: string, msg: HaMessage): Promise<void> {
    const text = encodeMessage(to, msg);
    const obj = this.inboxes.get(to)?.obj ?? this.inboxObject(to);
    const waiting = await obj.omapGet('', MAX_QUEUED_MESSAGES);
    if (waiting.size >= MAX_QUEUED_MESSAGES) {
      // A gateway that stayed away: its stale messages would be dropped unread anyway.
      const cutoff = Date.now() - MAX_MESSAGE_AGE_MS;
      const stale = [...waiting.keys()].filter((k) => Number(k.split('-')[0]) < cutoff);
      if (stale.length > 0) await obj.omapRemove(stale);
      if (waiting.size - stale.length >= MAX_QUEUED_MESSAGES) {
        throw new PeerPlaneError(`the inbox of gateway ${to} is full (${waiting.size - stale.length} messages waiting)`, 'full');
      }
    }
    const key = `${Date.now().toString().padStart(15, '0')}-${randomBytes(4).toString('hex')}`;
    await obj.omapSet(new Map([[key, Buffer.from(text, 'utf8')]]));
    // The message is stored; the notify only makes the addressee read it now.
    if (this.pending.size >= MAX_PENDING_NOTIFIES) return;
    const p = obj.notify(Buffer.from(key, 'utf8'), this.notifyTimeoutMs)
      .catch(() => undefined) // addressee away: it reads the queue when back
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async take(gateway: string): Promise<HaMessage[]> {
    const b = this.inbox(gateway);
    if ((!b.dirty && b.watch) || Date.now() < b.retryAt) return [];
    b.dirty = false;
    let entries: Map<string, Buffer>;
    try {
      entries = await b.obj.omapGet('', MAX_QUEUED_MESSAGES);
      // Removed before they are acted on: a message is taken once (a failed removal leaves
      // them all queued for the next read).
      if (entries.size > 0) await b.obj.omapRemove([...entries.keys()]);
    } catch (e) {
      b.dirty = true;
      b.retryAt = Date.now() + RETRY_AFTER_ERROR_MS;
      throw e;
    }
    if (entries.size === 0) return [];
    // More than one page waiting: read again at once.
    if (entries.size >= MAX_QUEUED_MESSAGES) b.dirty = true;
    const now = Date.now();
    const out: HaMessage[] = [];
    for (const value of entries.values()) {
      let m: unknown;
      try {
        m = value.length <= MAX_MESSAGE_BYTES ? JSON.parse(value.toString('utf8')) : undefined;
      } catch {
        m = undefined;
      }
      if (validMessage(m) && now - m.at < MAX_MESSAGE_AGE_MS) out.push(m);
    }
    return out;
  }

  async clear(gateway: string): Promise<void> {
    const obj = this.inbox(gateway).obj;
    // Bounded: a queue is at most MAX_QUEUED_MESSAGES (plus what races in meanwhile).
    for (let i = 0; i < 8; i++) {
      const keys = [...(await obj.omapGet('', 1000)).keys()];
      if (keys.length === 0) return;
      await obj.omapRemove(keys);
    }
  }

  onMessage(gateway: string, listener: () => void): () => void {
    const b = this.inbox(gateway);
    b.listeners.add(listener);
    if (!b.watching) {
      b.watching = true;
      void this.establish(gateway, b);
    }
    if (!this.timer) {
      this.timer = setInterval(() => this.safetyTick(), this.safetyPollMs);
      this.timer.unref();
    }
    return () => {
      b.listeners.delete(listener);
      if (b.listeners.size === 0) void this.unwatch(b);
    };
  }

  private wake(b: Inbox): void {
    b.dirty = true;
    for (const l of b.listeners) {
      try {
        l();
      } catch (e) {
        this.options.log?.error({ err: e }, 'inbox listener failed');
      }
    }
  }

  private safetyTick(): void {
    for (const b of this.inboxes.values()) {
      if (!b.watching) continue;
      if (b.watch) {
        try {
          b.watch.check();
        } catch {
          this.rewatch(b);
        }
      }
      this.wake(b);
    }
  }

  /** Watch the inbox (retrying with back-off while the cluster is unreachable), then read it. */
  private async establish(gateway: string, b: Inbox, again = false): Promise<void> {
    let wait = 100;
    while (b.watching && !this.closed) {
      try {
        // The watch needs the object; creating it (not exclusively) keeps what is queued.
        await b.obj.operate([{ op: 'create', exclusive: false }]);
        const w = await b.obj.watch(() => this.wake(b), () => {
          if (b.watch === w) this.rewatch(b);
        });
        if (!b.watching || this.closed) {
          await w.close().catch(() => undefined);
          return;
        }
        b.watch = w;
        if (again) this.options.log?.info({ gateway }, 'watching the gateway inbox again');
        // Messages sent before the watch existed were not notified to us.
        this.wake(b);
        return;
      } catch {
        await sleep(wait);
        wait = Math.min(wait * 2, 5000);
      }
    }
  }

  private rewatch(b: Inbox): void {
    if (b.rewatching || !b.watching) return;
    b.rewatching = true;
    const old = b.watch;
    b.watch = undefined;
    this.options.log?.warn({ inbox: b.obj.oid }, 'gateway inbox watch lost; re-watching');
    void (async () => {
      try {
        await old?.close().catch(() => undefined);
        await this.establish(b.obj.oid, b, true);
      } finally {
        b.rewatching = false;
      }
    })();
  }

  private async unwatch(b: Inbox): Promise<void> {
    b.watching = false;
    const w = b.watch;
    b.watch = undefined;
    await w?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const b of this.inboxes.values()) {
      b.listeners.clear();
      await this.unwatch(b);
    }
    // Let the last notifies reach the others (bounded by their timeout).
    if (this.pending.size > 0) await Promise.race([Promise.all([...this.pending]), sleep(this.notifyTimeoutMs)]);
  }
}
