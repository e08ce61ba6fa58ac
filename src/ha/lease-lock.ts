/**
 * The exclusive lock of an image between the gateway processes of one host (embedded store): a
 * lease file per image in the shared data dir (ha/leases/<key>.json) naming the holder (gateway,
 * pid, start time, boot id) and when it last renewed. The holder's heartbeat renews every
 * leaseMs/5; a lease not renewed for leaseMs is stale and may be broken — after the holder is
 * fenced (SIGKILL, waited for), never before. Every read-modify-write of a lease runs under an
 * flock of ha/leases/<key>.lock held for one write; a holder stopped while holding that flock is
 * fenced all the same (the lease file is read without it, and its death frees the flock).
 *
 * The store's own exclusive writer lock (an flock the kernel drops when the holder dies) stays
 * underneath: the lease decides who may open the image for writing, the flock makes sure that
 * no second writer can exist even if the lease were wrong.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { FileLock } from '../store/locks';
import type { Logger } from '../util/log';
import { AcquireOutcome, FenceRecord, ImageLockBackend, LockEvents, LockHolder, LockReason, LockStatus } from './image-lock';
import { HaMessage, fileKey, haDir, sendMessage } from './inbox';
import { FenceError, ProcessIdentity, fence, liveness, sameProcess, selfIdentity } from './process-identity';

interface LeaseHolder extends LockHolder, ProcessIdentity {}

interface LeaseDoc {
  readonly key: string;
  readonly holder: LeaseHolder | null;
  /** Last renewal (ms since the epoch, this host's clock). */
  readonly renewed: number;
  /** Why the holder took it. */
  readonly reason?: LockReason;
}

export interface LeaseLockOptions {
  readonly dataDir: string;
  readonly gateway: string;
  /** A lease not renewed for this long is stale (default 5000). */
  readonly leaseMs?: number;
  readonly log: Logger;
  /** How a hand-over request reaches the holder's gateway (default: the data dir's inbox). */
  readonly send?: (to: string, msg: HaMessage) => Promise<void>;
}

export class LeaseLocks implements ImageLockBackend {
  readonly kind = 'embedded' as const;
  readonly leaseMs: number;
  private readonly dir: string;
  private readonly me: ProcessIdentity;
  private readonly client: string;
  /** Keys held, with when they were taken. */
  private readonly mine = new Map<string, number>();
  private events: LockEvents | undefined;
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;

  constructor(private readonly o: LeaseLockOptions) {
    this.leaseMs = o.leaseMs ?? 5000;
    this.dir = path.join(haDir(o.dataDir), 'leases');
    this.me = selfIdentity();
    this.client = `${o.gateway}/${this.me.pid}.${this.me.startTime}`;
  }

  private file(key: string): string {
    return path.join(this.dir, `${fileKey(key)}.json`);
  }

  private guardFile(key: string): string {
    return path.join(this.dir, `${fileKey(key)}.lock`);
  }

  setEvents(events: LockEvents): void {
    this.events = events;
  }

  async start(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.cleanStale();
    const every = Math.max(100, Math.floor(this.leaseMs / 5));
    this.timer = setInterval(() => void this.renewAll(), every);
    this.timer.unref();
  }

  /**
   * A returning gateway: leases a previous process of this gateway left behind are cleared (that
   * process is gone: it held them, nobody else can have written meanwhile without fencing it).
   */
  private async cleanStale(): Promise<void> {
    for (const f of await fsp.readdir(this.dir)) {
      if (!f.endsWith('.json')) continue;
      const doc = await this.readFile(path.join(this.dir, f));
      if (!doc?.holder || doc.holder.gateway !== this.o.gateway) continue;
      if (sameProcess(doc.holder, this.me) || liveness(doc.holder) !== 'gone') continue;
      await this.guarded(doc.key, async () => {
        const cur = await this.read(doc.key);
        if (cur?.holder && cur.holder.client === doc.holder!.client) {
          await this.write({ key: doc.key, holder: null, renewed: Date.now() });
          this.o.log.info({ disk: doc.key, stale: doc.holder!.client }, 'cleared the lease a previous process of this gateway held');
        }
      });
    }
  }

  private async readFile(file: string): Promise<LeaseDoc | undefined> {
    try {
      const doc = JSON.parse(await fsp.readFile(file, 'utf8')) as LeaseDoc;
      return typeof doc.key === 'string' && typeof doc.renewed === 'number' ? doc : undefined;
    } catch {
      return undefined;
    }
  }

  private read(key: string): Promise<LeaseDoc | undefined> {
    return this.readFile(this.file(key));
  }

  /** Replace the lease file (rename: readers never see a torn one). Not fsynced: a host crash ends every holder. */
  private async write(doc: LeaseDoc): Promise<void> {
    const f = this.file(doc.key);
    const tmp = `${f}.tmp-${this.me.pid}`;
    await fsp.writeFile(tmp, JSON.stringify(doc), { mode: 0o600 });
    await fsp.rename(tmp, f);
  }

  /** Run fn under the lease's guard flock; undefined when the guard stays busy (its holder may be stopped). */
  private async guarded<T>(key: string, fn: () => Promise<T>, timeoutMs = 250): Promise<{ value: T } | undefined> {
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(this.guardFile(key), 'exclusive', { timeoutMs });
    } catch {
      return undefined;
    }
    try {
      return { value: await fn() };
    } finally {
      lock.release();
    }
  }

  private stale(doc: LeaseDoc, now = Date.now()): boolean {
    if (!doc.holder) return false;
    if (liveness(doc.holder) === 'gone') return true;
    return now - doc.renewed > this.leaseMs;
  }

  private publicHolder(h: LeaseHolder): LockHolder {
    return { gateway: h.gateway, client: h.client, since: h.since };
  }

  async tryAcquire(key: string, reason?: LockReason): Promise<AcquireOutcome> {
    const r = await this.guarded(key, async (): Promise<AcquireOutcome> => {
      const cur = await this.read(key);
      const h = cur?.holder;
      // Free, ours, or the holder process no longer exists (crashed, fenced): take it.
      if (!h || h.client === this.client || liveness(h) === 'gone') {
        const since = Date.now();
        await this.write({ key, holder: { gateway: this.o.gateway, client: this.client, since, ...this.me }, renewed: since, ...(reason ? { reason } : {}) });
        this.mine.set(key, since);
        return { kind: 'acquired' };
      }
      return { kind: 'held', holder: this.publicHolder(h), stale: this.stale(cur!) };
    });
    if (r) return r.value;
    // The guard is held (by a holder that may be stopped right in a renewal): judge from the file.
    const cur = await this.read(key);
    if (!cur?.holder) return { kind: 'held', holder: { gateway: '?', client: '?', since: 0 }, stale: false };
    return { kind: 'held', holder: this.publicHolder(cur.holder), stale: this.stale(cur) };
  }

  async release(key: string): Promise<void> {
    this.mine.delete(key);
    await this.guarded(key, async () => {
      const cur = await this.read(key);
      if (cur?.holder?.client === this.client) await this.write({ key, holder: null, renewed: Date.now() });
    }, 5000);
  }

  async status(key: string): Promise<LockStatus> {
    const cur = await this.read(key);
    if (!cur?.holder) return { stale: false };
    return { holder: this.publicHolder(cur.holder), stale: this.stale(cur), renewedAgo: Date.now() - cur.renewed, ...(cur.reason ? { reason: cur.reason } : {}) };
  }

  async requestHandover(key: string, holder: LockHolder, reason?: LockReason): Promise<void> {
    const send = this.o.send ?? ((to: string, msg: HaMessage) => sendMessage(this.o.dataDir, to, msg));
    await send(holder.gateway, { kind: 'handover', key, from: this.o.gateway, at: Date.now(), ...(reason ? { reason } : {}) });
  }

  async breakWithFencing(key: string, holder: LockHolder): Promise<FenceRecord> {
    const cur = await this.read(key);
    const h = cur?.holder;
    if (!h || h.client !== holder.client) return { holder, action: 'none (already released)', ms: 0 };
    if (!this.stale(cur)) throw new FenceError(`the lease of ${key} held by ${h.client} is live (renewed ${Date.now() - cur.renewed} ms ago): ask for a hand-over instead`);
    const ms = await fence(h, Math.max(10_000, this.leaseMs * 2));
    const r = await this.guarded(key, async () => {
      const again = await this.read(key);
      if (again?.holder?.client === h.client) await this.write({ key, holder: null, renewed: Date.now() });
    }, 5000);
    if (!r) throw new FenceError(`lease guard of ${key} still busy after fencing ${h.client}`);
    this.o.log.warn({ disk: key, fenced: h.client, pid: h.pid, ms }, 'fenced the stale lock holder (SIGKILL) and broke its lease');
    return { holder: this.publicHolder(h), action: `SIGKILL pid ${h.pid}`, ms };
  }

  held(key: string): boolean {
    return this.mine.has(key);
  }

  private async renewAll(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      for (const key of [...this.mine.keys()]) {
        const r = await this.guarded(key, async () => {
          const cur = await this.read(key);
          if (cur?.holder?.client !== this.client) return false;
          await this.write({ ...cur, renewed: Date.now() });
          return true;
        });
        // A busy guard (another gateway reading it) is retried on the next beat.
        if (r && !r.value && this.mine.has(key)) {
          this.mine.delete(key);
          this.o.log.error({ disk: key }, 'lost the lease of the image (another holder took it)');
          this.events?.onLost(key, 'lease taken over by another holder');
        }
      }
    } catch (e) {
      this.o.log.warn({ err: e }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const key of [...this.mine.keys()]) await this.release(key).catch(() => undefined);
  }
}
