/**
 * The ConfigStore in RADOS: the JSON document in object `gateway.conf` of pool `rbd` (both from
 * [config] pool / gateway_conf, as ceph-iscsi), its epoch mirrored in xattr "epoch".
 *
 * - Compare-and-swap: a commit is one atomic compound write — cmpxattr("epoch" == the value
 *   read with the document), write_full, setxattr("epoch") — so a writer that lost a race gets
 *   ECANCELED, re-reads and re-applies its mutator; no concurrent change is ever lost.
 * - Lock: cls_lock exclusive lock "lock" on the object (ceph-iscsi's name) WITH a duration, so
 *   a crashed holder blocks others at most its lease (ceph-iscsi's never expires). Commits by
 *   others take the same lock for the commit alone (a short lease, released at once), which
 *   makes them wait while someone holds the store lock; a commit under a held lock asserts it
 *   (cls lock.assert_locked in the same atomic write) so a lease that expired cannot commit.
 * - Watch: every commit sends a RADOS notify on the object; every store watching it re-reads
 *   at once (the change reaches the other gateways in milliseconds, not ceph-iscsi's 1 s
 *   poll). A broken watch (OSD disconnect, watch timeout) is reported by librados and
 *   re-established, followed by a re-read; a slow safety re-read (default 10 s) covers the rest.
 */
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ObjectWatch, RadosError, RadosObject, isErrno } from '../ceph/rados-object';
import { CephSettings, cephPool } from '../ceph/settings';
import { ConfigChangeFeed } from './change-feed';
import { documentVersion, migrateDocument, MigratingGateway } from './migrate';
import { ConfigError, GatewayConfig, SCHEMA_VERSION, checkConfig, emptyConfig, parseConfig, timestamp } from './schema';
import {
  ConfigListener,
  ConfigLock,
  ConfigMutator,
  ConfigSnapshot,
  ConfigStore,
  ConfigStoreError,
  LockOptions,
  UpdateOptions,
  UpdateResult,
} from './store';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** ceph-iscsi's lock name on gateway.conf. */
export const LOCK_NAME = 'lock';
export const EPOCH_XATTR = 'epoch';
/** Lease of the lock a plain commit takes for itself (a commit takes milliseconds). */
const COMMIT_LEASE_MS = 10_000;

/** cls_lock_assert_op, Ceph-encoded: ENCODE_START(1,1) name, u8 type, cookie, tag. */
export function lockAssertInput(name: string, cookie: string): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return Buffer.concat([len, b]);
  };
  const body = Buffer.concat([str(name), Buffer.from([1 /* LOCK_EXCLUSIVE */]), str(cookie), str('')]);
  const head = Buffer.alloc(6);
  head.writeUInt8(1, 0);
  head.writeUInt8(1, 1);
  head.writeUInt32LE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** Cookies say who holds the lock: "<kind> <token> <owner>" (librados lists cookies, not descriptions). */
function cookieOf(kind: 'lease' | 'commit', token: string, owner: string): string {
  return `${kind} ${token} ${owner}`;
}

function holderOf(cookie: string): string {
  const parts = cookie.split(' ');
  return parts.length >= 3 ? parts.slice(2).join(' ') : cookie;
}

export interface RadosConfigStoreOptions {
  /** Safety re-read behind watch/notify (default 10 s; env ISCSI_GATEWAY_CONFIG_RESYNC_MS). */
  readonly resyncMs?: number;
  /** How long a commit's notify waits for the watchers' acks (default 3 s). */
  readonly notifyTimeoutMs?: number;
  /** Told when the watch broke ('lost', with librados' reason) and when it is registered again. */
  readonly onWatch?: (event: 'lost' | 'restored', detail: string) => void;
}

interface Raw {
  readonly snapshot: ConfigSnapshot;
  /** The epoch xattr as read with the document ("" when absent): the compare-and-swap value. */
  readonly stamp: string;
  /** Object version the snapshot was parsed from (cache key). */
  readonly version: bigint;
  /** Schema version of the stored document (undefined when empty). */
  readonly stored: number | undefined;
  readonly json: unknown;
}

export class RadosConfigStore implements ConfigStore {
  readonly location: string;
  private cached: Raw | undefined;
  /** Serializes this process's commit steps (the cls lock would only make them spin). */
  private commitTail: Promise<void> = Promise.resolve();
  private readonly feed = new ConfigChangeFeed(() => this.read());
  private watchHandle: ObjectWatch | undefined;
  private watching = false;
  private rewatching = false;
  private resync: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly resyncMs: number;
  private readonly notifyTimeoutMs: number;
  private readonly self = `${os.hostname()} pid ${process.pid}`;
  private readonly onWatch: RadosConfigStoreOptions['onWatch'];

  constructor(
    /** The configuration object (its pool also holds the logical units' shared state). */
    readonly obj: RadosObject,
    options: RadosConfigStoreOptions = {},
  ) {
    this.location = `rados:${obj.pool}/${obj.oid}`;
    const env = Number(process.env.ISCSI_GATEWAY_CONFIG_RESYNC_MS);
    this.resyncMs = options.resyncMs ?? (Number.isInteger(env) && env > 0 ? env : 10_000);
    this.notifyTimeoutMs = options.notifyTimeoutMs ?? 3000;
    this.onWatch = options.onWatch;
  }

  /** The store of the configured cluster: object `configObject` in pool `pool` (one connection per process). */
  static async open(ceph: CephSettings, options: RadosConfigStoreOptions = {}): Promise<RadosConfigStore> {
    return RadosConfigStore.at(ceph, ceph.pool, ceph.configObject, options);
  }

  /** A store on any pool/object of the configured cluster (tests use one object each). */
  static async at(ceph: CephSettings, pool: string, object: string, options: RadosConfigStoreOptions = {}): Promise<RadosConfigStore> {
    const io = await cephPool(ceph, pool);
    return new RadosConfigStore(new RadosObject(io, pool, object), options);
  }

  // ---------------------------------------------------------------- reading

  async read(): Promise<ConfigSnapshot> {
    return (await this.readRaw()).snapshot;
  }

  private async readRaw(): Promise<Raw> {
    let content;
    try {
      content = await this.obj.read();
    } catch (e) {
      throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
    }
    const stamp = content?.xattrs.get(EPOCH_XATTR)?.toString('utf8') ?? '';
    if (!content || content.data.length === 0) {
      const config = emptyConfig();
      return { snapshot: { config, epoch: config.epoch }, stamp, version: content?.version ?? 0n, stored: undefined, json: undefined };
    }
    if (this.cached && this.cached.version === content.version && this.cached.stamp === stamp) return this.cached;
    let json: unknown;
    try {
      json = JSON.parse(content.data.toString('utf8'));
    } catch (e) {
      throw new ConfigStoreError(`${this.location}: not valid JSON: ${(e as Error).message}`, 'corrupt');
    }
    let config: GatewayConfig;
    const stored = documentVersion(json);
    try {
      config = stored === SCHEMA_VERSION ? parseConfig(json, this.location) : migrateDocument(json, this.location);
    } catch (e) {
      throw new ConfigStoreError((e as Error).message, 'corrupt');
    }
    this.cached = { snapshot: { config, epoch: config.epoch }, stamp, version: content.version, stored, json };
    return this.cached;
  }

  // ---------------------------------------------------------------- commit

  /** Run fn as this process's only commit step (FIFO); waiting for others happens outside. */
  private async serialized<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.commitTail;
    let done!: () => void;
    this.commitTail = new Promise<void>((r) => (done = r));
    await prev;
    try {
      return await fn();
    } finally {
      done();
    }
  }

  /** Who holds the lock now ("" when nobody). */
  private async holder(): Promise<string> {
    try {
      const info = await this.obj.lockers(LOCK_NAME);
      return info.lockers.map((l) => `${holderOf(l.cookie)} (${l.client})`).join(', ');
    } catch {
      return '';
    }
  }

  /**
   * One compare-and-swap write of `text` over the document stamped `stamp`. With `lease` the
   * caller's lock is asserted in the same write; without, the lock is taken for the commit.
   */
  private async commit(stamp: string, epoch: number, text: string, lease: RadosConfigLock | undefined): Promise<'ok' | 'conflict' | { readonly busy: string }> {
    return this.serialized(async () => {
      let cookie: string;
      if (lease) {
        cookie = lease.cookie;
      } else {
        cookie = cookieOf('commit', randomBytes(8).toString('hex'), this.self);
        try {
          await this.obj.lockExclusive({ name: LOCK_NAME, cookie, description: this.self, durationMs: COMMIT_LEASE_MS });
        } catch (e) {
          if (isErrno(e, 'EBUSY')) return { busy: await this.holder() };
          throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
        }
      }
      try {
        await this.obj.operate([
          { op: 'exec', cls: 'lock', method: 'assert_locked', input: lockAssertInput(LOCK_NAME, cookie) },
          { op: 'cmpxattr', name: EPOCH_XATTR, comparison: 'eq', value: Buffer.from(stamp, 'utf8') },
          { op: 'writeFull', data: Buffer.from(text, 'utf8') },
          { op: 'setxattr', name: EPOCH_XATTR, value: Buffer.from(String(epoch), 'utf8') },
        ]);
        return 'ok';
      } catch (e) {
        if (isErrno(e, 'ECANCELED')) return 'conflict';
        if (isErrno(e, 'EBUSY') || isErrno(e, 'ENOENT')) {
          if (lease) throw new ConfigStoreError('the configuration lock expired before the change was committed', 'lock-lost');
          return { busy: await this.holder() };
        }
        throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
      } finally {
        if (!lease) await this.obj.unlock(LOCK_NAME, cookie).catch(() => undefined);
      }
    });
  }

  async update<T>(mutator: ConfigMutator<T>, options: UpdateOptions = {}): Promise<UpdateResult<T>> {
    const retries = options.retries ?? 50;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    let lease: RadosConfigLock | undefined;
    if (options.lock) {
      if (!(options.lock instanceof RadosConfigLock) || options.lock.location !== this.location) {
        throw new ConfigStoreError('the lock was not taken from this store', 'lock-lost');
      }
      lease = options.lock;
    }
    let attempt = 0;
    let wait = 2;
    for (;;) {
      const base = await this.readRaw();
      if (options.expectEpoch !== undefined && base.snapshot.epoch !== options.expectEpoch) {
        throw new ConfigStoreError(`the configuration changed (epoch ${base.snapshot.epoch}, expected ${options.expectEpoch})`, 'conflict');
      }
      const draft = structuredClone(base.snapshot.config) as GatewayConfig;
      const result = await mutator(draft);
      if (isDeepStrictEqual(draft, base.snapshot.config)) return { ...base.snapshot, result, changed: false };
      draft.version = SCHEMA_VERSION;
      draft.epoch = base.snapshot.epoch + 1;
      draft.updated = timestamp();
      let next: GatewayConfig;
      try {
        next = parseConfig(draft, 'configuration');
      } catch (e) {
        throw new ConfigStoreError((e as ConfigError).message, 'invalid');
      }
      const problems = checkConfig(next);
      if (problems.length > 0) throw new ConfigStoreError(`invalid configuration: ${problems.join('; ')}`, 'invalid');
      const outcome = await this.commit(base.stamp, next.epoch, `${JSON.stringify(next, null, 4)}\n`, lease);
      if (outcome === 'ok') {
        this.cached = undefined;
        this.announce(next.epoch);
        return { config: next, epoch: next.epoch, result, changed: true };
      }
      if (outcome === 'conflict') {
        if (options.expectEpoch !== undefined) {
          throw new ConfigStoreError(`the configuration changed while this change was prepared (epoch ${base.snapshot.epoch})`, 'conflict');
        }
        if (++attempt > retries) throw new ConfigStoreError(`gave up after ${retries} conflicting writers`, 'conflict');
        continue;
      }
      // Locked by someone else: wait (the lease expires by itself if its holder died).
      if (Date.now() > deadline) {
        throw new ConfigStoreError(`timed out waiting for the configuration lock held by ${outcome.busy || 'another gateway'}`, 'timeout');
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 100);
    }
  }

  /** Tell every watcher (and this process's listeners) about a new commit; never delays the writer. */
  private announce(epoch: number): void {
    const p = this.obj
      .notify(Buffer.from(String(epoch), 'utf8'), this.notifyTimeoutMs)
      .catch(() => undefined) // a dead watcher times out; the others were told
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
    if (this.feed.size > 0) this.feed.check();
  }

  async lock(options: LockOptions): Promise<ConfigLock> {
    const ttl = options.ttlMs ?? 30_000;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    const cookie = cookieOf('lease', randomBytes(12).toString('hex'), options.owner);
    let wait = 5;
    for (;;) {
      const startedAt = Date.now();
      try {
        await this.obj.lockExclusive({ name: LOCK_NAME, cookie, description: options.owner, durationMs: ttl });
        return new RadosConfigLock(this.obj, this.location, options.owner, cookie, ttl, startedAt + ttl);
      } catch (e) {
        if (!isErrno(e, 'EBUSY')) throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
      }
      if (Date.now() > deadline) {
        throw new ConfigStoreError(`timed out waiting for the configuration lock held by ${(await this.holder()) || 'another gateway'}`, 'timeout');
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 100);
    }
  }

  /**
   * Bring an older document (v1) in the object to v11, keeping the original beside it (object
   * `<name>.v<N>.bak`). Returns true when it migrated.
   */
  async migrate(gateway: MigratingGateway): Promise<boolean> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const raw = await this.readRaw();
      if (raw.stored === undefined || raw.stored === SCHEMA_VERSION) return false;
      let next: GatewayConfig;
      try {
        next = migrateDocument(raw.json, this.location, gateway);
      } catch (e) {
        throw new ConfigStoreError((e as Error).message, 'corrupt');
      }
      next.epoch += 1;
      next.updated = timestamp();
      const problems = checkConfig(next);
      if (problems.length > 0) throw new ConfigStoreError(`${this.location}: cannot migrate: ${problems.join('; ')}`, 'corrupt');
      const backup = new RadosObject(this.obj.ioCtx, this.obj.pool, `${this.obj.oid}.v${String(raw.stored)}.bak`);
      await backup.writeFull(Buffer.from(JSON.stringify(raw.json), 'utf8'));
      const outcome = await this.commit(raw.stamp, next.epoch, `${JSON.stringify(next, null, 4)}\n`, undefined);
      if (outcome === 'ok') {
        this.cached = undefined;
        this.announce(next.epoch);
        return true;
      }
      if (Date.now() > deadline) throw new ConfigStoreError(`${this.location}: timed out migrating the configuration`, 'timeout');
      await sleep(20);
    }
  }

  // ---------------------------------------------------------------- watching

  watch(listener: ConfigListener): () => void {
    this.feed.add(listener);
    if (!this.watching) this.startWatching();
    return () => {
      this.feed.delete(listener);
      if (this.feed.size === 0) void this.stopWatching();
    };
  }

  private startWatching(): void {
    this.watching = true;
    void this.establish();
    this.resync = setInterval(() => {
      // A watch librados silently lost shows here; the re-read covers anything missed.
      if (this.watchHandle) {
        try {
          this.watchHandle.check();
        } catch {
          this.rewatch();
        }
      }
      this.feed.check();
    }, this.resyncMs);
    this.resync.unref();
  }

  /** Register the watch (retrying with back-off while the cluster is unreachable), then re-read. */
  private async establish(again = false): Promise<void> {
    let wait = 100;
    while (this.watching) {
      try {
        const w = await this.obj.watch(() => this.feed.check(), (e: RadosError) => {
          if (this.watchHandle === w) this.rewatch(e);
        });
        if (!this.watching) {
          await w.close().catch(() => undefined);
          return;
        }
        this.watchHandle = w;
        if (again) this.onWatch?.('restored', `watching ${this.location} again`);
        // Commits between the caller's read and this registration were not notified to us.
        this.feed.check();
        return;
      } catch {
        await sleep(wait);
        wait = Math.min(wait * 2, 5000);
      }
    }
  }

  private rewatch(error?: RadosError): void {
    if (this.rewatching || !this.watching) return;
    this.rewatching = true;
    this.onWatch?.('lost', error ? error.message : 'the watch no longer answers');
    const old = this.watchHandle;
    this.watchHandle = undefined;
    void (async () => {
      try {
        await old?.close().catch(() => undefined);
        await this.establish(true);
      } finally {
        this.rewatching = false;
      }
    })();
  }

  private async stopWatching(): Promise<void> {
    this.watching = false;
    if (this.resync) clearInterval(this.resync);
    this.resync = undefined;
    const w = this.watchHandle;
    this.watchHandle = undefined;
    await w?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.feed.clear();
    await this.stopWatching();
    // Let the last notifies reach the others (bounded: a dead watcher only costs the timeout).
    if (this.pending.size > 0) {
      await Promise.race([Promise.all([...this.pending]), sleep(this.notifyTimeoutMs)]);
    }
  }
}

/** A held lease of the RADOS store: the cls lock with a duration, renewed with MUST_RENEW. */
export class RadosConfigLock implements ConfigLock {
  private until: number;

  constructor(
    /** The configuration object (its pool also holds the logical units' shared state). */
    readonly obj: RadosObject,
    readonly location: string,
    readonly owner: string,
    readonly cookie: string,
    private readonly ttl: number,
    expiresAt: number,
  ) {
    this.until = expiresAt;
  }

  get expiresAt(): number {
    return this.until;
  }

  async renew(): Promise<void> {
    const startedAt = Date.now();
    try {
      await this.obj.lockExclusive({ name: LOCK_NAME, cookie: this.cookie, description: this.owner, durationMs: this.ttl, renew: 'must' });
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'EBUSY')) {
        throw new ConfigStoreError(`the configuration lock of ${this.owner} expired and was taken over`, 'lock-lost');
      }
      throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
    }
    this.until = startedAt + this.ttl;
  }

  async release(): Promise<void> {
    try {
      await this.obj.unlock(LOCK_NAME, this.cookie);
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw new ConfigStoreError(`${this.location}: ${(e as Error).message}`, 'timeout');
    }
  }
}
