/**
 * The embedded ConfigStore: one JSON file in the data dir (gateway.json) that every gateway
 * daemon on the host shares.
 *
 * - Commits replace the file atomically (temp, fsync, rename, fsync dir), so each commit is a
 *   new inode: "same inode" means "same document", which makes the compare-and-swap cheap.
 * - The commit step (check epoch, write) runs under a guard: flock(2) on gateway.json.guard,
 *   held for one read-compare-write only and released by the kernel if the process dies.
 * - The store lock is a lease in gateway.json.lease ({owner, token, pid, host, expiresAt})
 *   read and written under the guard; commits by others wait while a live lease is held. A
 *   lease whose holder is gone (same host, pid not alive) or whose time ran out is free.
 * - Watchers see new commits through fs.watch on the directory plus a 1 s stat poll (fs.watch
 *   misses events on some file systems; the poll is one stat).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { writeFileAtomic } from '../sys/durable';
import { pidAlive } from '../util/pid';
import { flock, LOCK_EX, LOCK_UN } from '../sys/native';
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

interface Lease {
  readonly owner: string;
  readonly token: string;
  readonly pid: number;
  readonly host: string;
  readonly expiresAt: number;
}

interface Cached {
  /** Identity of the file version parsed: inode, ctime (ns) and size (inodes are reused). */
  readonly key: string;
  readonly snapshot: ConfigSnapshot;
}

function statKey(st: fs.BigIntStats): string {
  return `${st.ino}:${st.ctimeNs}:${st.size}`;
}

export interface FileConfigStoreOptions {
  /** Poll interval of the epoch check behind fs.watch (default 1000 ms). */
  readonly pollMs?: number;
}


export class FileConfigStore implements ConfigStore {
  private readonly guardFile: string;
  private readonly leaseFile: string;
  /** Serializes this process's guard holders (flock does not order waiters within a process). */
  private guardTail: Promise<void> = Promise.resolve();
  private cached: Cached | undefined;
  private readonly feed = new ConfigChangeFeed(() => this.read());
  private watcher: fs.FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private readonly pollMs: number;

  constructor(
    readonly location: string,
    options: FileConfigStoreOptions = {},
  ) {
    this.guardFile = `${location}.guard`;
    this.leaseFile = `${location}.lease`;
    this.pollMs = options.pollMs ?? 1000;
  }

  // ---------------------------------------------------------------- reading

  async read(): Promise<ConfigSnapshot> {
    return (await this.readWithIno()).snapshot;
  }

  /** The document, parsed documents cached per file version (see statKey). */
  private async readWithIno(): Promise<Cached> {
    let h: fsp.FileHandle;
    try {
      h = await fsp.open(this.location, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        const config = emptyConfig();
        return { key: '', snapshot: { config, epoch: config.epoch } };
      }
      throw e;
    }
    let text: string;
    let key: string;
    try {
      key = statKey(await h.stat({ bigint: true }));
      if (this.cached && this.cached.key === key) return this.cached;
      text = await h.readFile('utf8');
    } finally {
      await h.close();
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new ConfigStoreError(`${this.location}: not valid JSON: ${(e as Error).message}`, 'corrupt');
    }
    let config: GatewayConfig;
    try {
      config = documentVersion(json) === SCHEMA_VERSION ? parseConfig(json, this.location) : migrateDocument(json, this.location);
    } catch (e) {
      throw new ConfigStoreError((e as Error).message, 'corrupt');
    }
    this.cached = { key, snapshot: { config, epoch: config.epoch } };
    return this.cached;
  }

  /**
   * Epoch of the file on disk now (-1 when absent), read under the guard for the
   * compare-and-swap: the epoch only grows under the guard, so equal epoch = same document.
   */
  private async diskEpoch(): Promise<number> {
    let text: string;
    try {
      text = await fsp.readFile(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return -1;
      throw e;
    }
    try {
      const e = (JSON.parse(text) as { epoch?: unknown }).epoch;
      return typeof e === 'number' ? e : -2;
    } catch {
      return -2;
    }
  }

  // ---------------------------------------------------------------- guard and lease

  /** Run fn holding the guard (in-process FIFO, then flock polled without blocking a thread). */
  private async withGuard<T>(fn: () => Promise<T>, deadline: number): Promise<T> {
    const prev = this.guardTail;
    let releaseLocal!: () => void;
    this.guardTail = new Promise<void>((r) => (releaseLocal = r));
    await prev;
    let fd = -1;
    try {
      await fsp.mkdir(path.dirname(this.location), { recursive: true, mode: 0o700 });
      fd = fs.openSync(this.guardFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
      let wait = 1;
      while (!flock(fd, LOCK_EX)) {
        if (Date.now() > deadline) throw new ConfigStoreError(`${this.location}: timed out waiting for the configuration guard`, 'timeout');
        await sleep(wait);
        wait = Math.min(wait * 2, 10);
      }
      return await fn();
    } finally {
      if (fd >= 0) {
        flock(fd, LOCK_UN);
        fs.closeSync(fd);
      }
      releaseLocal();
    }
  }

  private async readLease(): Promise<Lease | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.leaseFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const l = JSON.parse(text) as Lease;
      if (typeof l.token !== 'string' || typeof l.expiresAt !== 'number') return undefined;
      return l;
    } catch {
      return undefined; // a torn lease cannot happen (atomic replace); an unreadable one is free
    }
  }

  /** A lease that still blocks others: not expired and its holder alive (when on this host). */
  private static live(l: Lease | undefined, now: number): l is Lease {
    if (!l || l.expiresAt <= now) return false;
    if (l.host === os.hostname() && !pidAlive(l.pid)) return false;
    return true;
  }

  async lock(options: LockOptions): Promise<ConfigLock> {
    const ttl = options.ttlMs ?? 30_000;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    const token = randomBytes(12).toString('hex');
    let wait = 5;
    for (;;) {
      const got = await this.withGuard(async () => {
        const now = Date.now();
        const cur = await this.readLease();
        if (FileConfigStore.live(cur, now)) return cur;
        const lease: Lease = { owner: options.owner, token, pid: process.pid, host: os.hostname(), expiresAt: now + ttl };
        await writeFileAtomic(this.leaseFile, JSON.stringify(lease), 0o600);
        return lease;
      }, deadline);
      if (got.token === token) return this.lockHandle(got, ttl);
      if (Date.now() > deadline) {
        throw new ConfigStoreError(`timed out waiting for the configuration lock held by ${got.owner} (expires in ${Math.max(0, Math.ceil((got.expiresAt - Date.now()) / 1000))} s)`, 'timeout');
      }
      await sleep(Math.min(wait, Math.max(1, got.expiresAt - Date.now())));
      wait = Math.min(wait * 2, 100);
    }
  }

  private lockHandle(initial: Lease, ttl: number): ConfigLock {
    return new FileConfigLock(initial, ttl, {
      withGuard: (fn) => this.withGuard(fn, Date.now() + 30_000),
      readLease: () => this.readLease(),
      writeLease: (l) => writeFileAtomic(this.leaseFile, JSON.stringify(l), 0o600),
      removeLease: () => fsp.rm(this.leaseFile, { force: true }),
    });
  }

  // ---------------------------------------------------------------- update

  async update<T>(mutator: ConfigMutator<T>, options: UpdateOptions = {}): Promise<UpdateResult<T>> {
    const retries = options.retries ?? 50;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    if (options.lock && !(options.lock instanceof FileConfigLock)) throw new ConfigStoreError('the lock was not taken from this store', 'lock-lost');
    const myToken = options.lock?.token;
    let attempt = 0;
    let wait = 1;
    for (;;) {
      const { snapshot: base, key: baseKey } = await this.readWithIno();
      // -1: no file yet (the empty document is not on disk).
      const baseEpoch = baseKey === '' ? -1 : base.epoch;
      if (options.expectEpoch !== undefined && base.epoch !== options.expectEpoch) {
        throw new ConfigStoreError(`the configuration changed (epoch ${base.epoch}, expected ${options.expectEpoch})`, 'conflict');
      }
      const draft = structuredClone(base.config) as GatewayConfig;
      const result = await mutator(draft);
      if (isDeepStrictEqual(draft, base.config)) return { ...base, result, changed: false };
      draft.version = SCHEMA_VERSION;
      draft.epoch = base.epoch + 1;
      draft.updated = timestamp();
      let next: GatewayConfig;
      try {
        next = parseConfig(draft, 'configuration');
      } catch (e) {
        throw new ConfigStoreError((e as ConfigError).message, 'invalid');
      }
      const problems = checkConfig(next);
      if (problems.length > 0) throw new ConfigStoreError(`invalid configuration: ${problems.join('; ')}`, 'invalid');
      const outcome = await this.withGuard(async (): Promise<'ok' | 'conflict' | Lease> => {
        const lease = await this.readLease();
        if (myToken !== undefined) {
          if (!lease || lease.token !== myToken || lease.expiresAt <= Date.now()) {
            throw new ConfigStoreError('the configuration lock expired before the change was committed', 'lock-lost');
          }
        } else if (FileConfigStore.live(lease, Date.now())) {
          return lease;
        }
        if ((await this.diskEpoch()) !== baseEpoch) return 'conflict';
        await writeFileAtomic(this.location, `${JSON.stringify(next, null, 4)}\n`, 0o600);
        return 'ok';
      }, deadline);
      if (outcome === 'ok') {
        const snapshot = { config: next, epoch: next.epoch };
        this.cached = undefined;
        return { ...snapshot, result, changed: true };
      }
      if (outcome === 'conflict') {
        if (options.expectEpoch !== undefined) {
          throw new ConfigStoreError(`the configuration changed while this change was prepared (epoch ${base.epoch})`, 'conflict');
        }
        if (++attempt > retries) throw new ConfigStoreError(`gave up after ${retries} conflicting writers`, 'conflict');
        continue;
      }
      // Locked by someone else: wait (bounded by the lease's expiry and our deadline).
      if (Date.now() > deadline) {
        throw new ConfigStoreError(`timed out waiting for the configuration lock held by ${outcome.owner}`, 'timeout');
      }
      await sleep(Math.min(wait, Math.max(1, outcome.expiresAt - Date.now())));
      wait = Math.min(wait * 2, 50);
    }
  }

  /**
   * Bring an older document (v1) to v11 on disk, keeping the original beside it
   * (gateway.json.v<N>.bak). Returns true when it migrated.
   */
  async migrate(gateway: MigratingGateway): Promise<boolean> {
    return this.withGuard(async () => {
      let text: string;
      try {
        text = await fsp.readFile(this.location, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new ConfigStoreError(`${this.location}: not valid JSON: ${(e as Error).message}`, 'corrupt');
      }
      const version = documentVersion(json);
      if (version === SCHEMA_VERSION) return false;
      let next: GatewayConfig;
      try {
        next = migrateDocument(json, this.location, gateway);
      } catch (e) {
        throw new ConfigStoreError((e as Error).message, 'corrupt');
      }
      next.epoch += 1;
      next.updated = timestamp();
      const problems = checkConfig(next);
      if (problems.length > 0) throw new ConfigStoreError(`${this.location}: cannot migrate: ${problems.join('; ')}`, 'corrupt');
      await writeFileAtomic(`${this.location}.v${String(version)}.bak`, text, 0o600);
      await writeFileAtomic(this.location, `${JSON.stringify(next, null, 4)}\n`, 0o600);
      this.cached = undefined;
      return true;
    }, Date.now() + 30_000);
  }

  // ---------------------------------------------------------------- watching

  watch(listener: ConfigListener): () => void {
    this.feed.add(listener);
    if (!this.poller) this.startWatching();
    return () => {
      this.feed.delete(listener);
      if (this.feed.size === 0) this.stopWatching();
    };
  }

  private startWatching(): void {
    const dir = path.dirname(this.location);
    const base = path.basename(this.location);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.watcher = fs.watch(dir, { persistent: false }, (_event, file) => {
        if (file === null || file === base) this.feed.check();
      });
      this.watcher.on('error', () => {
        // The poll keeps working; fs.watch is only the fast path.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined;
    }
    this.poller = setInterval(() => this.feed.check(), this.pollMs);
    this.poller.unref();
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  async close(): Promise<void> {
    this.feed.clear();
    this.stopWatching();
  }
}

interface LeaseIo {
  withGuard<T>(fn: () => Promise<T>): Promise<T>;
  readLease(): Promise<Lease | undefined>;
  writeLease(l: Lease): Promise<void>;
  removeLease(): Promise<void>;
}

/** A held lease of the file store. */
class FileConfigLock implements ConfigLock {
  private lease: Lease;

  constructor(
    initial: Lease,
    private readonly ttl: number,
    private readonly io: LeaseIo,
  ) {
    this.lease = initial;
  }

  get owner(): string {
    return this.lease.owner;
  }

  get expiresAt(): number {
    return this.lease.expiresAt;
  }

  /** Identifies the lease in update(). */
  get token(): string {
    return this.lease.token;
  }

  async renew(): Promise<void> {
    this.lease = await this.io.withGuard(async () => {
      const cur = await this.io.readLease();
      if (!cur || cur.token !== this.lease.token) {
        throw new ConfigStoreError(`the configuration lock of ${this.lease.owner} expired and was taken over`, 'lock-lost');
      }
      const next = { ...cur, expiresAt: Date.now() + this.ttl };
      await this.io.writeLease(next);
      return next;
    });
  }

  async release(): Promise<void> {
    await this.io.withGuard(async () => {
      const cur = await this.io.readLease();
      if (cur && cur.token === this.lease.token) await this.io.removeLease();
    });
  }
}
