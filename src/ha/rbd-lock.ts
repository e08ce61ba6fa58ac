/**
 * The image lock on Ceph (`user:rbd` disks, active/passive): RBD's exclusive lock, taken and kept
 * on the very image handle that then writes, as tcmu-runner does behind ceph-iscsi.
 *
 *   tryAcquire        rbd_lock_get_owners; free -> rbd_lock_acquire(EXCLUSIVE) on this key's
 *                     handle (the RbdBackstore of the owner runs on that handle, openDevice()).
 *   status            the lock owner's address, mapped to a gateway through the lock-client
 *                     registry (below); stale = its gateway stopped heartbeating for leaseMs
 *                     (liveness injected: today the status files, later RADOS), or the owner
 *                     is a previous client of its gateway, or it no longer watches the header.
 *   breakWithFencing  blocklist the owner's address (rados_blocklist_add, waits for the new
 *                     OSD map), then rbd_lock_break. Every later op of the fenced client fails
 *                     at the OSDs with EBLOCKLISTED, whatever it had queued.
 *   requestHandover   the HA inbox (injected).
 *
 * The lock and the writes use a librados client of their own (not the process's connection of
 * the configuration store and the read-only views), so that a fence stops exactly the writes. A
 * fenced gateway notices (EBLOCKLISTED on its next check or op), drops its locks (the LUs go
 * back to non-owner), shuts the blocklisted client down and connects a new one (new global id,
 * new nonce). At start a gateway removes the blocklist entries of its own previous clients, as
 * ceph-iscsi does for its IP (here by exact address: several gateways may share an IP).
 *
 * Lock-client registry: one RADOS object (`gateway.lock-clients` in the configuration's pool),
 * one omap key per gateway, written only by that gateway: its current client id and address,
 * its previous addresses (blocklist entries to clean), and per image why it last took the lock
 * (ALUA announces all but implicit transitions).
 *
 * Writes are not cached by librbd on this client (rbd_cache=false, lockClientConnector): an
 * acknowledged write is on the OSDs, so a takeover after a fence loses nothing acknowledged and
 * the other gateways' read-only views read every acknowledged write.
 */
import * as fs from 'node:fs';
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError } from '../block/block-device';
import { RbdBackstore, RbdImageHandle } from '../block/rbd-backstore';
import type { NativeIoCtx } from '../ceph/binding';
import { CephCluster, ConnectOptions, resolveConfFile } from '../ceph/cluster';
import { RadosObject } from '../ceph/rados-object';
import { RbdImage } from '../ceph/rbd-image';
import { RbdImageData } from '../images/ceph-client';
import { exportProblem } from '../images/disk-rules';
import type { ImageProvider } from '../images/provider';
import { CONNECT_TIMEOUT_S, osdOpTimeout } from '../images/select';
import type { Logger } from '../util/log';
import { AcquireOutcome, FenceRecord, ImageLockBackend, LockEvents, LockHolder, LockReason, LockStatus } from './image-lock';
import { FenceError } from './process-identity';
import { StandbyDevice } from './standby-device';

export const RBD_LOCK_PREFIX = 'rbd:';
export const REGISTRY_OBJECT = 'gateway.lock-clients';

/** The lock key of an RBD image. */
export function rbdLockKey(pool: string, image: string): string {
  return `${RBD_LOCK_PREFIX}${pool}/${image}`;
}

function parseKey(key: string): { pool: string; image: string } {
  const spec = key.startsWith(RBD_LOCK_PREFIX) ? key.slice(RBD_LOCK_PREFIX.length) : '';
  const slash = spec.indexOf('/');
  if (slash <= 0 || slash === spec.length - 1) throw new Error(`not an RBD lock key: ${key}`);
  return { pool: spec.slice(0, slash), image: spec.slice(slash + 1) };
}

/** What a writer of the image offers (the read-only view lacks discard and atomic writes). */
export function rbdWriterCapabilities(reader: BlockDeviceCapabilities): BlockDeviceCapabilities {
  return { ...reader, discard: true, atomicWriteBytes: reader.atomicWriteAlignment ?? 0 };
}

/** Liveness of a gateway as its heartbeat shows it; undefined: nothing known about it. */
export interface GatewayLiveness {
  readonly alive: boolean;
  readonly heartbeatAgoMs?: number;
}

export interface RbdLockOptions {
  readonly gateway: string;
  /** A new librados client (called at start and after this gateway was fenced). */
  readonly connect: () => Promise<CephCluster>;
  /** Pool of the lock-client registry object (the configuration's pool). */
  readonly registryPool: string;
  readonly liveness: (gateway: string) => Promise<GatewayLiveness | undefined>;
  /** Ask `gateway` to hand `key` over (the HA inbox). */
  readonly sendHandover: (gateway: string, key: string, reason?: LockReason) => Promise<void>;
  /** A holder whose gateway has not heartbeated for this long is fenced (default 5000). */
  readonly leaseMs?: number;
  /** Blocklist entries expire after this (0: the cluster's default, 1 h). */
  readonly blocklistSecs?: number;
  readonly log: Logger;
  readonly queueDepth?: number;
}

interface ClientAddress {
  readonly client: string;
  readonly address: string;
}

interface ClientRecord extends ClientAddress {
  readonly gateway: string;
  readonly since: number;
  /** Clients of earlier processes (or fenced connections) of this gateway. */
  readonly previous: readonly ClientAddress[];
  /** Why this gateway last took each lock (set before it takes it). */
  readonly intents: Readonly<Record<string, { readonly reason?: LockReason; readonly at: number }>>;
}

interface Connection {
  readonly cluster: CephCluster;
  readonly io: NativeIoCtx;
  readonly registry: RadosObject;
  readonly client: string;
  readonly address: string;
  readonly since: number;
  readonly handles: Map<string, Promise<RbdImage>>;
}

interface Owner {
  readonly holder: LockHolder;
  /** The owner is the gateway's current client (else a previous, dead or fenced one). */
  readonly current: boolean;
  readonly known: boolean;
  readonly reason?: LockReason;
}

const EBLOCKLISTED = 108;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const errnoOf = (e: unknown): number | undefined => {
  const n = (e as { errno?: unknown } | undefined)?.errno;
  return typeof n === 'number' ? Math.abs(n) : undefined;
};

function parseRecord(v: Buffer): ClientRecord | undefined {
  try {
    const r = JSON.parse(v.toString('utf8')) as ClientRecord;
    if (typeof r.gateway !== 'string' || typeof r.address !== 'string' || typeof r.client !== 'string') return undefined;
    return { ...r, previous: Array.isArray(r.previous) ? r.previous : [], intents: typeof r.intents === 'object' && r.intents !== null ? r.intents : {} };
  } catch {
    return undefined;
  }
}

/** `ceph osd blocklist ls` entries (Pacific appends the range blocklist as a second JSON array). */
export function parseBlocklist(text: string): string[] {
  const end = text.indexOf(']');
  if (end < 0) return [];
  try {
    const list = JSON.parse(text.slice(0, end + 1)) as Array<{ addr?: unknown }>;
    return list.map((e) => e.addr).filter((a): a is string => typeof a === 'string');
  } catch {
    return [];
  }
}

/** An image handle lent to the owner's RbdBackstore: closing the device leaves the handle (and the lock) to the lock backend. */
class LockedHandle extends RbdImageData implements RbdImageHandle {
  async close(): Promise<void> {
    // The device flushed before; the handle keeps the lock until the backend releases it.
  }
}

/**
 * A connector for the lock clients: the provider's cluster settings, librbd's cache off (see the
 * file comment), the provider's OSD/mon timeouts.
 */
export function lockClientConnector(o: ConnectOptions): () => Promise<CephCluster> {
  const conf = resolveConfFile(o);
  return () => {
    if (!fs.existsSync(conf)) return Promise.reject(new Error(`${conf} does not exist`));
    return CephCluster.connect({
      ...o,
      confFile: conf,
      osdOpTimeout: o.osdOpTimeout ?? osdOpTimeout(conf),
      monOpTimeout: o.monOpTimeout ?? CONNECT_TIMEOUT_S,
      conf: { ...(o.conf ?? {}), rbd_cache: 'false' },
    });
  };
}

export class RbdLocks implements ImageLockBackend {
  readonly kind = 'ceph' as const;
  readonly leaseMs: number;
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** Set while the fenced client is replaced. */
  private replacing: Promise<void> | undefined;
  private readonly mine = new Map<string, { since: number; reason?: LockReason }>();
  /** Keys served here (their handles stay open while served). */
  private readonly used = new Set<string>();
  private intents: Record<string, { reason?: LockReason; at: number }> = {};
  private previous: ClientAddress[] = [];
  private registryCache: { at: number; records: ClientRecord[] } | undefined;
  private writing: Promise<void> = Promise.resolve();
  private events: LockEvents | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private closed = false;
  /** Clients this process replaced after being fenced (for tests and the log). */
  reconnects = 0;

  constructor(private readonly o: RbdLockOptions) {
    this.leaseMs = o.leaseMs ?? 5000;
  }

  setEvents(events: LockEvents): void {
    this.events = events;
  }

  /** This gateway's current lock client ("client.<id>", address), when connected. */
  get identity(): ClientAddress | undefined {
    return this.conn ? { client: this.conn.client, address: this.conn.address } : undefined;
  }

  async start(): Promise<void> {
    await this.connection();
    const every = Math.max(100, Math.floor(this.leaseMs / 5));
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  // ------------------------------------------------------------------ connection and registry

  private connection(): Promise<Connection> {
    if (this.closed) return Promise.reject(new BlockDeviceError(`the RBD lock client of ${this.o.gateway} is closed`, 'closed'));
    if (this.conn) return Promise.resolve(this.conn);
    if (this.replacing) return this.replacing.then(() => this.connection());
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<Connection> {
    const cluster = await this.o.connect();
    let io: NativeIoCtx | undefined;
    try {
      io = await cluster.openIoCtx(this.o.registryPool);
      const registry = new RadosObject(io, this.o.registryPool, REGISTRY_OBJECT);
      const conn: Connection = { cluster, io, registry, client: `client.${cluster.instanceId()}`, address: cluster.address().replace(/^v[12]:/, ''), since: Date.now(), handles: new Map() };
      // What earlier processes of this gateway left: their clients may still be blocklisted.
      const old = (await this.records(conn, true)).find((r) => r.gateway === this.o.gateway);
      const earlier = [...this.previous, ...(old ? [{ client: old.client, address: old.address }, ...old.previous] : [])].filter((p) => p.address !== conn.address);
      this.previous = [...new Map(earlier.map((p) => [p.address, p])).values()];
      this.intents = {};
      this.conn = conn;
      await this.cleanBlocklist(conn);
      await this.publish();
      this.o.log.info({ client: conn.client, address: conn.address }, 'RBD lock client connected');
      return conn;
    } catch (e) {
      if (this.conn?.cluster === cluster) this.conn = undefined;
      io?.close();
      await cluster.shutdown().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Remove the blocklist entries of this gateway's previous clients (their processes are gone:
   * one process per gateway name; a client of this process that was fenced is shut down).
   */
  private async cleanBlocklist(conn: Connection): Promise<void> {
    if (this.previous.length === 0) return;
    const listed = new Set(parseBlocklist((await conn.cluster.monCommand({ prefix: 'osd blocklist ls', format: 'json' })).output.toString('utf8')));
    const keep: ClientAddress[] = [];
    for (const p of this.previous) {
      if (!listed.has(p.address)) continue;
      try {
        await conn.cluster.monCommand({ prefix: 'osd blocklist', blocklistop: 'rm', addr: p.address });
        this.o.log.info({ client: p.client, address: p.address }, 'removed the blocklist entry of a previous lock client of this gateway');
      } catch (e) {
        keep.push(p);
        this.o.log.warn({ err: e, address: p.address }, 'cannot remove a stale blocklist entry of this gateway');
      }
    }
    this.previous = keep;
  }

  /** Write this gateway's registry record (serialized: one writer per record). */
  private publish(): Promise<void> {
    const run = async () => {
      const c = this.conn;
      if (!c) return;
      const rec: ClientRecord = { gateway: this.o.gateway, client: c.client, address: c.address, since: c.since, previous: this.previous, intents: this.intents };
      try {
        await c.registry.omapSet(new Map([[this.o.gateway, Buffer.from(JSON.stringify(rec))]]));
      } catch (e) {
        if (errnoOf(e) === EBLOCKLISTED) void this.fenced(c);
        throw e;
      }
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }

  private async records(conn: Connection, fresh = false): Promise<ClientRecord[]> {
    const now = Date.now();
    if (!fresh && this.registryCache && now - this.registryCache.at < 500) return this.registryCache.records;
    const map = await conn.registry.omapGet();
    const records = [...map.values()].map(parseRecord).filter((r): r is ClientRecord => r !== undefined);
    this.registryCache = { at: now, records };
    return records;
  }

  /** The handle of `key` on this client (opened read-write once; it takes the lock only when asked). */
  private handle(conn: Connection, key: string): Promise<RbdImage> {
    let h = conn.handles.get(key);
    if (!h) {
      const { pool, image } = parseKey(key);
      h = RbdImage.open(conn.cluster, pool, image);
      conn.handles.set(key, h);
      h.catch(() => conn.handles.delete(key));
    }
    return h;
  }

  /** Run a call on the client; EBLOCKLISTED means this gateway was fenced: replace the client. */
  private async guard<T>(conn: Connection, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (errnoOf(e) === EBLOCKLISTED) void this.fenced(conn);
      throw e;
    }
  }

  private async ownerAddress(conn: Connection, key: string): Promise<string | undefined> {
    const h = await this.handle(conn, key);
    return (await this.guard(conn, () => h.lockOwners())).owners[0];
  }

  private async owner(conn: Connection, key: string, address: string): Promise<Owner> {
    const find = (records: ClientRecord[]): Owner | undefined => {
      for (const r of records) {
        if (r.address === address) {
          const intent = r.intents[key];
          return { holder: { gateway: r.gateway, client: r.client, since: intent?.at ?? r.since }, current: true, known: true, ...(intent?.reason ? { reason: intent.reason } : {}) };
        }
        const p = r.previous.find((x) => x.address === address);
        if (p) return { holder: { gateway: r.gateway, client: p.client, since: r.since }, current: false, known: true };
      }
      return undefined;
    };
    const found = find(await this.records(conn)) ?? find(await this.records(conn, true));
    // Not a gateway's client (an `rbd` tool, a VM): named by its address and never fenced.
    return found ?? { holder: { gateway: `(client ${address})`, client: address, since: 0 }, current: false, known: false };
  }

  /**
   * Stale: a previous client of its gateway, or a gateway that stopped heartbeating, or (nothing
   * known of the gateway: its status lives elsewhere) a client without a watch on the header,
   * which is librbd's own rule for a dead lock owner.
   */
  private async staleness(conn: Connection, key: string, o: Owner, address: string): Promise<{ stale: boolean; renewedAgo?: number }> {
    if (!o.known) return { stale: false };
    if (!o.current) return { stale: true };
    const l = await this.o.liveness(o.holder.gateway);
    if (l) return { stale: !l.alive || (l.heartbeatAgoMs ?? 0) > this.leaseMs, ...(l.heartbeatAgoMs !== undefined ? { renewedAgo: l.heartbeatAgoMs } : {}) };
    const h = await this.handle(conn, key);
    const watchers = await this.guard(conn, () => h.watchers());
    return { stale: !watchers.some((w) => w.address.replace(/^v[12]:/, '') === address) };
  }

  // ------------------------------------------------------------------ ImageLockBackend

  async tryAcquire(key: string, reason?: LockReason): Promise<AcquireOutcome> {
    const c = await this.connection();
    const held = async (address: string): Promise<AcquireOutcome> => {
      const o = await this.owner(c, key, address);
      return { kind: 'held', holder: o.holder, stale: (await this.staleness(c, key, o, address)).stale };
    };
    const cur = await this.ownerAddress(c, key);
    if (cur !== undefined && cur !== c.address) return held(cur);
    if (cur === undefined) {
      // Say why before taking it: a reader that sees this client as the owner finds the reason.
      this.intents = { ...this.intents, [key]: { ...(reason ? { reason } : {}), at: Date.now() } };
      await this.publish();
      const h = await this.handle(c, key);
      try {
        await this.guard(c, () => h.lockAcquire());
      } catch (e) {
        const n = errnoOf(e);
        // Another client was quicker (EROFS: it owns it now; EBUSY/EAGAIN: taking it).
        if (n === 30 || n === 16 || n === 11) {
          const now = await this.ownerAddress(c, key);
          if (now !== undefined && now !== c.address) return held(now);
          return { kind: 'held', holder: { gateway: '', client: '', since: 0 }, stale: false };
        }
        throw e;
      }
    }
    if (!this.mine.has(key)) this.mine.set(key, { since: Date.now(), ...(reason ? { reason } : {}) });
    return { kind: 'acquired' };
  }

  async release(key: string): Promise<void> {
    const had = this.mine.delete(key);
    const c = this.conn;
    if (!c) return;
    const h = c.handles.get(key);
    if (had && h) {
      const img = await h.catch(() => undefined);
      const failed = await img?.lockRelease().then(() => false, (e: unknown) => {
        if (errnoOf(e) !== EBLOCKLISTED) this.o.log.warn({ err: e, disk: key }, 'releasing the RBD exclusive lock failed: closing the image instead');
        return true;
      });
      // Never keep a lock this gateway no longer serves: rbd_close releases it (or the client is fenced).
      if (failed) await this.closeHandle(c, key);
    }
    if (this.intents[key]) {
      const { [key]: _gone, ...rest } = this.intents;
      this.intents = rest;
      await this.publish().catch(() => undefined);
    }
    if (!this.used.has(key)) await this.closeHandle(c, key);
  }

  async status(key: string): Promise<LockStatus> {
    const c = await this.connection();
    const address = await this.ownerAddress(c, key);
    if (address === undefined) return { stale: false };
    if (address === c.address) {
      const m = this.mine.get(key);
      return { holder: { gateway: this.o.gateway, client: c.client, since: m?.since ?? c.since }, stale: false, ...(m?.reason ? { reason: m.reason } : {}) };
    }
    const o = await this.owner(c, key, address);
    const s = await this.staleness(c, key, o, address);
    return { holder: o.holder, ...s, ...(o.reason ? { reason: o.reason } : {}) };
  }

  async requestHandover(key: string, holder: LockHolder, reason?: LockReason): Promise<void> {
    if (holder.gateway === '' || holder.gateway.startsWith('(')) return; // not a gateway: nobody to ask
    await this.o.sendHandover(holder.gateway, key, reason);
  }

  async breakWithFencing(key: string, holder: LockHolder): Promise<FenceRecord> {
    const c = await this.connection();
    const address = await this.ownerAddress(c, key);
    if (address === undefined) return { holder, action: 'none (already released)', ms: 0 };
    const o = await this.owner(c, key, address);
    if (o.holder.client !== holder.client) return { holder, action: 'none (the lock moved meanwhile)', ms: 0 };
    if (!o.known) throw new FenceError(`the lock of ${key} is held by ${address}, which is not a gateway's client: not fencing it`);
    const s = await this.staleness(c, key, o, address);
    if (!s.stale) throw new FenceError(`the lock of ${key} is held by ${holder.gateway} (${holder.client}), which is alive: ask for a hand-over instead`);
    const started = Date.now();
    // Blocklist first (the call returns once this client has the OSD map with the entry), so no
    // op of the fenced client lands after the break; rbd_lock_break would blocklist it too.
    await this.guard(c, () => c.cluster.blocklistAdd(address, this.o.blocklistSecs ?? 0));
    const h = await this.handle(c, key);
    await this.guard(c, () => h.lockBreak(address)).catch((e: unknown) => {
      // ENOENT: released (or broken by another gateway) meanwhile; the client is fenced anyway.
      if (errnoOf(e) !== 2 && errnoOf(e) !== 16) throw e;
    });
    const ms = Date.now() - started;
    this.o.log.warn({ disk: key, fenced: holder.gateway, client: holder.client, address, ms }, 'fenced the stale RBD lock owner (blocklisted) and broke its lock');
    return { holder, action: `blocklist ${address}`, ms };
  }

  held(key: string): boolean {
    return this.mine.has(key);
  }

  // ------------------------------------------------------------------ serving

  /** A disk on `key` is served here: its handle stays open (status, lock). */
  use(key: string): void {
    this.used.add(key);
  }

  /** Not served here any more: the handle closes once the lock is released (an open handle keeps `rbd rm` busy). */
  async drop(key: string): Promise<void> {
    this.used.delete(key);
    if (!this.mine.has(key) && this.conn) await this.closeHandle(this.conn, key);
  }

  /**
   * What the HaManager needs to serve a `user:rbd` disk: the lock key, a read-only view of the
   * image (size, capabilities as the owner's, reads: no lock needed, and every acknowledged
   * write is on the OSDs) and the owner's device on the lock's handle.
   */
  async managedParts(id: string, backstore: 'user:rbd' | 'rbd', pool: string, image: string, provider: ImageProvider): Promise<{ key: string; view: BlockDevice; openRw: () => Promise<BlockDevice>; viewReads: boolean }> {
    const problem = exportProblem(backstore, await provider.info(pool, image));
    if (problem) throw new BlockDeviceError(problem, 'unsupported');
    const key = rbdLockKey(pool, image);
    const reader = await provider.open(pool, image, { readOnly: true });
    this.use(key);
    const closeReader = reader.close.bind(reader);
    // The view closes when the disk is no longer served here: the lock's handle goes with it.
    reader.close = async () => {
      try {
        await closeReader();
      } finally {
        await this.drop(key);
      }
    };
    return { key, view: new StandbyDevice(id, reader, true, rbdWriterCapabilities(reader.capabilities)), openRw: () => this.openDevice(key), viewReads: true };
  }

  /** The owner's device: an RbdBackstore on the handle that holds the lock. */
  async openDevice(key: string): Promise<BlockDevice> {
    const c = await this.connection();
    const h = c.handles.get(key);
    if (!this.mine.has(key) || !h) throw new BlockDeviceError(`${key}: this gateway does not hold the RBD exclusive lock`, 'io');
    const img = await h;
    const info = await this.guard(c, () => img.info());
    const { pool, image } = parseKey(key);
    return RbdBackstore.open(new LockedHandle(img), {
      name: `${pool}/${image}`, readOnly: false, objectSize: info.objectSize, stripeUnit: info.stripeUnit, stripeCount: info.stripeCount,
      ...(this.o.queueDepth !== undefined ? { queueDepth: this.o.queueDepth } : {}),
      onError: (what, e) => this.o.log.warn({ err: e, disk: key }, `rbd: ${what} failed`),
    });
  }

  private async closeHandle(c: Connection, key: string): Promise<void> {
    const h = c.handles.get(key);
    if (!h) return;
    c.handles.delete(key);
    await h.then((i) => i.close()).catch(() => undefined);
  }

  // ------------------------------------------------------------------ fencing of this gateway

  /** Verify every held lock (a broken lock, or this client blocklisted, ends ownership at once). */
  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      const c = this.conn;
      if (!c) {
        if (!this.replacing) await this.connection().catch((e: unknown) => this.o.log.warn({ err: e }, 'RBD lock client not connected'));
        return;
      }
      for (const key of [...this.mine.keys()]) {
        let owner: string | undefined;
        try {
          owner = await this.ownerAddress(c, key);
        } catch (e) {
          if (errnoOf(e) === EBLOCKLISTED) return;
          this.o.log.warn({ err: e, disk: key }, 'cannot verify the RBD exclusive lock');
          continue;
        }
        if (owner !== c.address && this.mine.delete(key)) {
          this.o.log.error({ disk: key, owner }, 'lost the RBD exclusive lock (broken by another client)');
          this.events?.onLost(key, `RBD exclusive lock broken (now ${owner ?? 'free'})`);
        }
      }
    } finally {
      this.checking = false;
    }
  }

  /**
   * This client was blocklisted: every lock is lost (the LUs stop writing at once), the client
   * is shut down and a new one connects; the old address stays blocklisted until this gateway
   * starts again (or the entry expires).
   */
  private fenced(c: Connection): Promise<void> {
    if (this.conn !== c) return this.replacing ?? Promise.resolve();
    this.conn = undefined;
    this.replacing = (async () => {
      this.o.log.error({ client: c.client, address: c.address }, 'this gateway was fenced (its RBD lock client is blocklisted): giving up its locks and connecting a new client');
      for (const key of [...this.mine.keys()]) {
        this.mine.delete(key);
        this.events?.onLost(key, 'fenced: this gateway\'s RBD client was blocklisted');
      }
      this.previous = [...this.previous.filter((p) => p.address !== c.address), { client: c.client, address: c.address }];
      for (const key of [...c.handles.keys()]) await this.closeHandle(c, key);
      c.io.close();
      await c.cluster.shutdown().catch((e: unknown) => this.o.log.warn({ err: e }, 'shutting the fenced RBD client down failed'));
      for (let attempt = 0; !this.closed; attempt++) {
        try {
          await this.connect();
          this.reconnects++;
          return;
        } catch (e) {
          this.o.log.warn({ err: e, attempt }, 'cannot connect a new RBD lock client; retrying');
          await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)));
        }
      }
    })().finally(() => {
      this.replacing = undefined;
    });
    return this.replacing;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.replacing?.catch(() => undefined);
    await this.connecting?.catch(() => undefined);
    const c = this.conn;
    if (!c) return;
    for (const key of [...this.mine.keys()]) await this.release(key).catch(() => undefined);
    this.intents = {};
    await this.publish().catch(() => undefined);
    for (const key of [...c.handles.keys()]) await this.closeHandle(c, key);
    this.conn = undefined;
    c.io.close();
    await c.cluster.shutdown().catch(() => undefined);
  }
}
