/**
 * Ownership of images at run time, per gateway process: which disks this gateway writes, how it
 * takes one over (implicit/explicit ALUA transition, failback, a draining peer handing it over)
 * and gives one up (hand-over request, drain, shutdown).
 *
 *   take:     lock free / holder gone -> take it; holder live -> ask for a hand-over and wait;
 *             holder's lease lapsed (hung, stopped) -> fence it, break the lock, take it.
 *             Then open the image read-write and attach it to the LU's OwnedDevice.
 *   give up:  on request, at once when this gateway is not using the disk (nothing in flight
 *             for IDLE_MS), else once it has had its turn (the damped hold time since it took
 *             the disk): gate new commands, drain those in flight, flush, close (store lock
 *             released), release the lease. Requests are read the moment they arrive.
 *   bouncing: a disk taken back less than bounceWindowMs after it was handed away counts as a
 *             bounce and doubles the hold time (up to maxHoldMs); a quiet period resets it. Two
 *             busy gateways write in turns of the hold time (every command that queued behind
 *             a transition runs in the new owner's turn), never a stall; an initiator that
 *             alternates paths command by command pays one hand-over per switch, no hold.
 *   failback: the configured owner (config `owner`, the preferred gateway) takes its disks
 *             back once it has been up for failbackMs; a failback that is undone at once backs
 *             off exponentially.
 *   drain:    every owned disk is handed to another live gateway serving it ("take" message),
 *             and this gateway takes nothing new until resumed or restarted.
 */
import type { BlockDevice } from '../block/block-device';
import type { Logger } from '../util/log';
import { FenceRecord, ImageLockBackend, LockHolder, LockReason } from './image-lock';
import type { HaMessage } from './inbox';
import { FilePeerPlane, PeerPlane } from './peer-plane';
import { OwnedDevice } from './owned-device';

export interface HaOptions {
  readonly gateway: string;
  readonly dataDir: string;
  readonly locks: ImageLockBackend;
  /** Where messages to and from other gateways go (default: the data dir's inboxes). */
  readonly mailbox?: Pick<PeerPlane, 'send' | 'take' | 'clear' | 'onMessage'>;
  readonly log: Logger;
  /** Minimum time a gateway keeps a lock before handing it over (default 250 ms). */
  readonly minHoldMs?: number;
  /** Upper bound of the damped hold time under bouncing (default 4000 ms). */
  readonly maxHoldMs?: number;
  /** A take-back within this time of a hand-over is a bounce (default 10 s). */
  readonly bounceWindowMs?: number;
  /** The preferred owner takes a disk back after being up this long; 0: no failback (default 15 s). */
  readonly failbackMs?: number;
  /** How long a transition may take before the waiting commands fail (default 2 lease times + 10 s). */
  readonly transitionTimeoutMs?: number;
  /** How long in-flight commands get to finish at a hand-over (default 10 s). */
  readonly drainMs?: number;
  /** Other gateways that are up (for drain) with the disks they serve. */
  readonly peers: () => Promise<Array<{ readonly name: string; readonly disks: readonly string[] }>>;
}

/** Per-disk counters, as ceph-iscsi's device status (lock_lost_cnt ...) and the metrics show them. */
export interface HaDiskStatus {
  readonly owned: boolean;
  readonly preferred: boolean;
  /** Takeovers by this gateway (implicit/explicit transitions, failbacks, drain hand-overs received). */
  readonly failovers: number;
  /** Locks this gateway gave up on request or lost. */
  readonly lock_lost_cnt: number;
  /** Stale holders this gateway fenced. */
  readonly fenced: number;
  /** Take-backs within the bounce window. */
  readonly bounces: number;
  /** Duration of the last takeover (ms), and how it went. */
  readonly last_takeover_ms?: number;
  readonly last_takeover?: string;
  /** Current damped minimum hold time. */
  readonly hold_ms: number;
}

export type TransitionReason = 'initial' | 'implicit' | 'explicit' | 'failback' | 'take';

export class HaRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HaRefusal';
  }
}

interface ManagedDisk {
  readonly id: string;
  readonly key: string;
  readonly device: OwnedDevice;
  readonly openRw: () => Promise<BlockDevice>;
  preferred: boolean;
  acquiredAt: number;
  /** When it last handed the lock away (bounce detection). */
  releasedAt: number;
  /** The gateway it was last handed to (on request), until that one took it. */
  handedTo?: string;
  holdMs: number;
  activating?: Promise<void>;
  releasing?: Promise<void>;
  failbackAt: number;
  failbackBackoffMs: number;
  lastFailback: number;
  failovers: number;
  lockLost: number;
  fenced: number;
  bounces: number;
  lastTakeoverMs?: number;
  lastTakeover?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** ALUA's view of a transition: I/O-driven moves are 'implicit' (not announced), admin moves 'config'. */
function lockReason(r: TransitionReason): LockReason {
  return r === 'implicit' ? 'implicit' : r === 'explicit' ? 'explicit' : 'config';
}
/** How often a gateway re-reads who holds the disks it does not hold. */
const HOLDER_POLL_MS = 200;
/**
 * An owner with nothing in flight for this long is not using the disk: it hands it over without
 * waiting for its hold time. Longer than an initiator needs to send its next command on a busy
 * path (a round trip plus scheduling on a loaded host); an initiator that switched paths has
 * usually been away longer than this by the time its request arrives, so it costs little.
 */
const IDLE_MS = 10;
/** How long a gateway that handed a disk over leaves the free lock to the one that asked for it. */
const HANDOFF_MS = 2000;

export class HaManager {
  private readonly disks = new Map<string, ManagedDisk>();
  private readonly byKey = new Map<string, ManagedDisk>();
  private readonly listeners = new Set<(disk: string, owned: boolean) => void>();
  private readonly statusListeners = new Set<() => void>();
  private readonly lockLostListeners = new Set<(disk: string, reason: string) => void>();
  private readonly holderListeners = new Set<(disk: string, holder: string | undefined, reason: LockReason) => void>();
  /** Gateway holding each managed disk's lock, as last read from the lock (every gateway sees the same). */
  private readonly holders = new Map<string, string | undefined>();
  private lastHolderPoll = 0;
  private timer: NodeJS.Timeout | undefined;
  private failbackTimer: NodeJS.Timeout | undefined;
  private polling = false;
  /** A message arrived while a poll ran: poll again right after it. */
  private wakeAgain = false;
  private startedAt = Date.now();
  private draining = false;
  /** Outcome of the last drain (undefined while one runs or before any). */
  private drained: { handed: string[]; kept: string[] } | undefined;
  private stopped = false;
  private readonly mailbox: Pick<PeerPlane, 'send' | 'take' | 'clear' | 'onMessage'>;
  private unsubscribe: (() => void) | undefined;
  readonly minHoldMs: number;
  readonly maxHoldMs: number;
  readonly bounceWindowMs: number;
  readonly failbackMs: number;
  readonly transitionTimeoutMs: number;
  readonly drainMs: number;

  constructor(private readonly o: HaOptions) {
    this.minHoldMs = o.minHoldMs ?? 250;
    this.maxHoldMs = o.maxHoldMs ?? 4000;
    this.bounceWindowMs = o.bounceWindowMs ?? 10_000;
    this.failbackMs = o.failbackMs ?? 15_000;
    const lease = 'leaseMs' in o.locks ? Number((o.locks as { leaseMs: number }).leaseMs) : 5000;
    this.transitionTimeoutMs = o.transitionTimeoutMs ?? 2 * lease + 10_000;
    this.drainMs = o.drainMs ?? 10_000;
    this.mailbox = o.mailbox ?? new FilePeerPlane(o.dataDir);
    o.locks.setEvents({
      onHandoverRequest: (key, requester, reason) => void this.handoverRequested(key, requester, reason),
      onLost: (key, reason) => this.lost(key, reason),
    });
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** The last drain's outcome while draining (undefined while it still runs). */
  get drainResult(): { handed: string[]; kept: string[] } | undefined {
    return this.draining ? this.drained : undefined;
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    await this.mailbox.clear(this.o.gateway);
    // A message that arrives is read at once, not at the next poll.
    this.unsubscribe = this.mailbox.onMessage(this.o.gateway, () => this.wake());
    await this.o.locks.start();
    this.timer = setInterval(() => void this.poll(), 50);
    this.timer.unref();
    if (this.failbackMs > 0) {
      this.failbackTimer = setInterval(() => this.failbackTick(), 1000);
      this.failbackTimer.unref();
    }
  }

  /** Called with (disk id, owned) whenever this gateway takes or gives up a disk (ALUA state change). */
  onChange(listener: (disk: string, owned: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Called synchronously when this gateway loses a lock without giving it up (fenced, or its
   * lease taken over): another gateway judged it dead, so whatever reached it meanwhile is suspect.
   */
  onLockLost(listener: (disk: string, reason: string) => void): () => void {
    this.lockLostListeners.add(listener);
    return () => this.lockLostListeners.delete(listener);
  }

  /** Called whenever anything status() or isDraining report changed (to publish it). */
  onStatus(listener: () => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private emitStatus(): void {
    for (const l of this.statusListeners) l();
  }

  private emit(disk: string, owned: boolean): void {
    this.emitStatus();
    for (const l of this.listeners) {
      try {
        l(disk, owned);
      } catch (e) {
        this.o.log.error({ err: e, disk }, 'ownership listener failed');
      }
    }
  }

  /**
   * Serve `id` (lock key `key`) through an OwnedDevice. The preferred owner takes the lock now
   * if nobody holds it; throws when it took the lock but cannot open the image for writing
   * (another process, not a gateway, writes it).
   */
  async manage(id: string, key: string, view: BlockDevice, openRw: () => Promise<BlockDevice>, preferred: boolean, viewReads = false): Promise<OwnedDevice> {
    if (this.disks.has(id)) throw new Error(`disk ${id} is already managed`);
    const d: ManagedDisk = {
      id, key, openRw, preferred,
      device: new OwnedDevice(id, view, () => this.activate(id, 'implicit'), viewReads),
      acquiredAt: 0, releasedAt: 0, holdMs: this.minHoldMs, failbackAt: Date.now() + this.failbackMs, failbackBackoffMs: this.failbackMs,
      lastFailback: 0, failovers: 0, lockLost: 0, fenced: 0, bounces: 0,
    };
    this.disks.set(id, d);
    this.byKey.set(key, d);
    if (preferred && !this.draining) {
      const r = await this.o.locks.tryAcquire(key);
      if (r.kind === 'acquired') {
        try {
          d.device.attach(await openRw());
          d.acquiredAt = Date.now();
          this.holders.set(id, this.o.gateway);
          this.o.log.info({ disk: id }, 'took the image lock (preferred owner)');
        } catch (e) {
          await this.o.locks.release(key);
          this.disks.delete(id);
          this.byKey.delete(key);
          await view.close().catch(() => undefined);
          throw e;
        }
      } else {
        this.o.log.info({ disk: id, holder: r.holder.gateway }, 'another gateway holds the image lock: serving it as non-owner until failback');
      }
    }
    if (!this.holders.has(id)) {
      const st = await this.o.locks.status(key);
      this.holders.set(id, st.holder && !st.stale ? st.holder.gateway : undefined);
    }
    return d.device;
  }

  /**
   * The configured owner changed. An administrator who names this gateway the owner wants the
   * disk here now: take it (announced as a configuration change, 2A/06 on every path).
   */
  setPreferred(id: string, preferred: boolean): Promise<void> {
    const d = this.disks.get(id);
    if (d && d.preferred !== preferred) {
      d.preferred = preferred;
      d.failbackAt = Date.now() + this.failbackMs;
      if (preferred && !d.device.active && !this.draining) {
        return this.activate(id, 'take').catch((e) => this.o.log.warn({ err: e, disk: id }, 'cannot take the disk the configuration names this gateway the owner of'));
      }
    }
    return Promise.resolve();
  }

  /** Stop serving a disk: hand the image back (flush, close, release). The caller drops the LU first. */
  async unmanage(id: string): Promise<void> {
    const d = this.disks.get(id);
    if (!d) return;
    this.disks.delete(id);
    this.byKey.delete(d.key);
    this.holders.delete(id);
    await d.activating?.catch(() => undefined);
    const wasOwner = d.device.active;
    try {
      await d.device.close();
    } finally {
      if (wasOwner || this.o.locks.held(d.key)) await this.o.locks.release(d.key);
    }
  }

  owned(id: string): boolean {
    return this.disks.get(id)?.device.active ?? false;
  }

  ownedDisks(): string[] {
    return [...this.disks.values()].filter((d) => d.device.active).map((d) => d.id);
  }

  managed(id: string): boolean {
    return this.disks.has(id);
  }

  status(): Record<string, HaDiskStatus> {
    const out: Record<string, HaDiskStatus> = {};
    for (const d of this.disks.values()) {
      out[d.id] = {
        owned: d.device.active, preferred: d.preferred, failovers: d.failovers, lock_lost_cnt: d.lockLost, fenced: d.fenced,
        bounces: d.bounces, hold_ms: d.holdMs,
        ...(d.lastTakeoverMs !== undefined ? { last_takeover_ms: d.lastTakeoverMs, last_takeover: d.lastTakeover } : {}),
      };
    }
    return out;
  }

  /** Holder of a disk's lock as the lock backend sees it (for the API's lock_owner). */
  async lockHolder(id: string): Promise<LockHolder | undefined> {
    const d = this.disks.get(id);
    return d ? (await this.o.locks.status(d.key)).holder : undefined;
  }

  /**
   * Make this gateway the owner of `id` (one transition at a time per disk). Resolves once the
   * LU's device writes the image here; rejects (HaRefusal) when draining or the transition
   * does not complete within transitionTimeoutMs.
   */
  activate(id: string, reason: TransitionReason): Promise<void> {
    const d = this.disks.get(id);
    if (!d) return Promise.reject(new HaRefusal(`disk ${id} is not served here`));
    if (d.device.active) return Promise.resolve();
    if (this.draining && reason !== 'take') return Promise.reject(new HaRefusal(`gateway ${this.o.gateway} is draining: it takes no disk over`));
    if (this.stopped) return Promise.reject(new HaRefusal(`gateway ${this.o.gateway} is stopping`));
    if (!d.activating) {
      d.activating = this.takeOver(d, reason).finally(() => {
        d.activating = undefined;
      });
    }
    return d.activating;
  }

  private async takeOver(d: ManagedDisk, reason: TransitionReason): Promise<void> {
    await d.releasing?.catch(() => undefined);
    if (d.device.active) return;
    const started = Date.now();
    const deadline = started + this.transitionTimeoutMs;
    let how = 'free';
    let fenced: FenceRecord | undefined;
    let from: LockHolder | undefined;
    let lastAsk = 0;
    // Just handed over: let the gateway that asked take the free lock first (commands that
    // queued here during the hand-over must not snatch it back before it could). Once it has
    // taken it, this gateway asks like anyone else, and a free lock is free to take.
    let deferring = d.handedTo !== undefined && Date.now() - d.releasedAt < HANDOFF_MS;
    for (;;) {
      if (this.stopped) throw new HaRefusal(`gateway ${this.o.gateway} is stopping`);
      if (deferring) {
        if (Date.now() - d.releasedAt < HANDOFF_MS && !(await this.o.locks.status(d.key)).holder) {
          await sleep(5);
          continue;
        }
        deferring = false;
      }
      const r = await this.o.locks.tryAcquire(d.key, lockReason(reason));
      if (r.kind === 'acquired') break;
      from = r.holder;
      if (r.stale) {
        fenced = await this.o.locks.breakWithFencing(d.key, r.holder);
        d.fenced++;
        how = `fenced ${r.holder.gateway} (${fenced.action}, ${fenced.ms} ms)`;
        continue;
      }
      if (Date.now() - lastAsk > 500) {
        await this.o.locks.requestHandover(d.key, r.holder, lockReason(reason));
        lastAsk = Date.now();
        how = `hand-over from ${r.holder.gateway}`;
      }
      if (Date.now() > deadline) throw new HaRefusal(`disk ${d.id}: ${r.holder.gateway} did not hand the lock over within ${this.transitionTimeoutMs} ms`);
      await sleep(10);
    }
    // The previous holder closed the image (or died): the store's writer lock is free or frees
    // within moments (a fenced process's flock goes with it).
    const locked = Date.now();
    let rw: BlockDevice | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        rw = await d.openRw();
        break;
      } catch (e) {
        if (attempt >= 100 || Date.now() > deadline) {
          await this.o.locks.release(d.key);
          throw new HaRefusal(`disk ${d.id}: took the lock but cannot open the image for writing: ${(e as Error).message}`);
        }
        await sleep(20);
      }
    }
    if (this.stopped || !this.disks.has(d.id)) {
      await rw.close();
      await this.o.locks.release(d.key);
      throw new HaRefusal(`disk ${d.id} is no longer served here`);
    }
    d.device.attach(rw);
    const now = Date.now();
    d.acquiredAt = now;
    d.handedTo = undefined;
    if (from && d.releasedAt > 0 && now - d.releasedAt < this.bounceWindowMs) {
      d.bounces++;
      d.holdMs = Math.min(this.maxHoldMs, d.holdMs * 2);
    }
    d.failovers++;
    d.lastTakeoverMs = now - started;
    d.lastTakeover = `${reason}: ${how}`;
    this.o.log.info({ disk: d.id, reason, how, ms: d.lastTakeoverMs, lockMs: locked - started, openMs: now - locked, holdMs: d.holdMs }, 'took over the disk');
    this.setHolder(d.id, this.o.gateway, lockReason(reason));
    this.emit(d.id, true);
  }

  /** Another gateway asks for the lock of `key` (`askedAt`: when it sent the request). */
  private async handoverRequested(key: string, requester: string, reason: LockReason = 'config', askedAt?: number): Promise<void> {
    const d = this.byKey.get(key);
    if (!d) return;
    // Asked while still taking it (lock bouncing): answer once the takeover is done.
    if (d.activating) {
      void d.activating.then(() => this.handoverRequested(key, requester, reason, askedAt), () => undefined);
      return;
    }
    if (!d.device.active || d.releasing) return;
    d.releasing = (async () => {
      try {
        // Bouncing damper: a busy owner keeps the lock for its turn (the damped hold time);
        // an idle one hands it over at once, holding it would only stall the requester. Not
        // when draining: then the point is to get rid of it.
        const received = Date.now();
        if (!this.draining && !this.stopped) {
          if (received - d.acquiredAt > this.bounceWindowMs) d.holdMs = this.minHoldMs;
          await d.device.settle(IDLE_MS, d.acquiredAt + d.holdMs);
        }
        const timing = { requestMs: askedAt !== undefined ? received - askedAt : undefined, turnMs: Date.now() - received };
        await this.giveUp(d, `hand-over to ${requester}`, requester, this.draining ? 'config' : reason, timing);
      } catch (e) {
        this.o.log.error({ err: e, disk: d.id, requester }, 'hand-over failed: keeping the disk');
      } finally {
        d.releasing = undefined;
      }
    })();
    await d.releasing;
  }

  /** `to`: the gateway taking it (ALUA moves the active/optimized group there at once). */
  private async giveUp(d: ManagedDisk, why: string, to?: string, reason: LockReason = 'config', timing?: { requestMs?: number; turnMs: number }): Promise<void> {
    if (!d.device.active) return;
    const started = Date.now();
    const rw = await d.device.detach(this.drainMs);
    const detached = Date.now();
    if (rw) await rw.close();
    const closed = Date.now();
    await this.o.locks.release(d.key);
    d.releasedAt = Date.now();
    d.handedTo = to;
    d.lockLost++;
    // Where a hand-over's time goes: the request's way here, the rest of this gateway's turn,
    // drain + flush, image close, lease release.
    this.o.log.info({ disk: d.id, why, ...timing, ms: d.releasedAt - started, drainFlushMs: detached - started, closeMs: closed - detached, releaseMs: d.releasedAt - closed }, 'handed the disk over');
    this.setHolder(d.id, to, reason);
    this.emit(d.id, false);
  }

  /** The lease was taken from under a living holder: stop writing at once. */
  private lost(key: string, reason: string): void {
    const d = this.byKey.get(key);
    if (!d) return;
    const rw = d.device.forget();
    for (const l of this.lockLostListeners) {
      try {
        l(d.id, reason);
      } catch (e) {
        this.o.log.error({ err: e, disk: d.id }, 'lock-lost listener failed');
      }
    }
    d.lockLost++;
    d.releasedAt = Date.now();
    // Fenced (hung, cut off): settle for the failback time before taking the disk back.
    d.failbackAt = Date.now() + this.failbackMs;
    if (rw) void rw.close().catch(() => undefined);
    this.o.log.error({ disk: d.id, reason }, 'lost the image lock');
    this.setHolder(d.id, undefined);
    this.emit(d.id, false);
    // Lost, not handed to anyone: a takeover need not leave the free lock to another gateway.
    d.handedTo = undefined;
  }

  /**
   * Gateway holding the lock of `id` (undefined: nobody, or not served here). Kept current by the
   * heartbeat (every HOLDER_POLL_MS) and at once for this gateway's own transitions.
   */
  holder(id: string): string | undefined {
    return this.holders.get(id);
  }

  /** A takeover of `id` by this gateway is under way. */
  transitioning(id: string): boolean {
    return this.disks.get(id)?.activating !== undefined;
  }

  /**
   * Make another gateway the owner (explicit ALUA: SET TARGET PORT GROUPS naming its group):
   * it is asked to take the disk and this resolves once it holds the lock.
   */
  async moveTo(id: string, gateway: string, timeoutMs = this.transitionTimeoutMs): Promise<void> {
    if (gateway === this.o.gateway) return this.activate(id, 'explicit');
    const d = this.disks.get(id);
    if (!d) throw new HaRefusal(`disk ${id} is not served here`);
    await this.mailbox.send(gateway, { kind: 'take', disk: id, from: this.o.gateway, at: Date.now() });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.o.locks.status(d.key);
      if (st.holder?.gateway === gateway && !st.stale) {
        this.setHolder(id, gateway);
        return;
      }
      if (Date.now() > deadline) throw new HaRefusal(`disk ${id}: ${gateway} did not take it over within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Called when the holder of a disk changes (ALUA: the active/optimized group moves). */
  onHolderChange(listener: (disk: string, holder: string | undefined, reason: LockReason) => void): () => void {
    this.holderListeners.add(listener);
    return () => this.holderListeners.delete(listener);
  }

  private setHolder(id: string, holder: string | undefined, reason: LockReason = 'config'): void {
    if (this.holders.has(id) && this.holders.get(id) === holder) return;
    this.holders.set(id, holder);
    for (const l of this.holderListeners) {
      try {
        l(id, holder, reason);
      } catch (e) {
        this.o.log.error({ err: e, disk: id }, 'holder listener failed');
      }
    }
  }

  private async pollHolders(): Promise<void> {
    for (const d of [...this.disks.values()]) {
      if (d.activating || d.releasing) continue;
      if (d.device.active) {
        this.setHolder(d.id, this.o.gateway);
        continue;
      }
      const st = await this.o.locks.status(d.key);
      // A dead holder no longer serves the disk: nobody does until someone takes it.
      // Nobody holding it (between a hand-over's release and the take, a dead holder) is not
      // announced: the next I/O settles it, and initiators would only see spurious 2A/06.
      if (!d.activating && !d.device.active) {
        const live = st.holder && !st.stale ? st.holder.gateway : undefined;
        this.setHolder(d.id, live, live ? st.reason ?? 'config' : 'implicit');
      }
    }
  }

  /** A message arrived: read it now (or right after the poll under way). */
  private wake(): void {
    if (this.polling) this.wakeAgain = true;
    else void this.poll();
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      for (const m of await this.mailbox.take(this.o.gateway)) this.dispatch(m);
      if (Date.now() - this.lastHolderPoll >= HOLDER_POLL_MS) {
        this.lastHolderPoll = Date.now();
        await this.pollHolders();
      }
    } catch (e) {
      this.o.log.warn({ err: e }, 'cannot read the HA inbox');
    } finally {
      this.polling = false;
      if (this.wakeAgain) {
        this.wakeAgain = false;
        void this.poll();
      }
    }
  }

  private dispatch(m: HaMessage): void {
    switch (m.kind) {
      case 'handover':
        void this.handoverRequested(m.key, m.from, m.reason, m.at);
        return;
      case 'take':
        if (this.disks.has(m.disk)) {
          this.activate(m.disk, 'take').catch((e) => this.o.log.warn({ err: e, disk: m.disk, from: m.from }, 'cannot take the disk a draining gateway handed over'));
        }
        return;
      case 'drain':
        void this.drain().then(() => this.emitStatus()).catch((e) => this.o.log.error({ err: e }, 'drain failed'));
        return;
      case 'resume':
        this.resume();
        this.emitStatus();
        return;
    }
  }

  private failbackTick(): void {
    if (this.draining || this.stopped || Date.now() - this.startedAt < this.failbackMs) return;
    for (const d of this.disks.values()) {
      if (!d.preferred || d.device.active || d.activating || Date.now() < d.failbackAt) continue;
      // A failback that is undone quickly (the initiator keeps using the other path) backs off.
      if (d.lastFailback > 0 && d.releasedAt > d.lastFailback && d.releasedAt - d.lastFailback < this.failbackMs) {
        d.failbackBackoffMs = Math.min(d.failbackBackoffMs * 2, 600_000);
      } else {
        d.failbackBackoffMs = this.failbackMs;
      }
      d.failbackAt = Date.now() + d.failbackBackoffMs;
      d.lastFailback = Date.now();
      this.activate(d.id, 'failback').catch((e) => this.o.log.warn({ err: e, disk: d.id }, 'failback did not complete'));
    }
  }

  /**
   * Hand every owned disk to another live gateway that serves it (the preferred owner first,
   * then the one owning the fewest). Resolves when every disk that had a taker is handed over;
   * returns the disks kept (no other gateway serves them, or the taker did not take them).
   */
  async drain(timeoutMs = this.transitionTimeoutMs): Promise<{ handed: string[]; kept: string[] }> {
    this.draining = true;
    this.drained = undefined;
    const peers = await this.o.peers();
    const handed: string[] = [];
    const kept: string[] = [];
    const load = new Map(peers.map((p) => [p.name, 0]));
    for (const d of this.disks.values()) {
      if (!d.device.active) continue;
      const takers = peers.filter((p) => p.disks.includes(d.id)).sort((a, b) => (load.get(a.name)! - load.get(b.name)!));
      const taker = takers[0];
      if (!taker) {
        kept.push(d.id);
        continue;
      }
      load.set(taker.name, load.get(taker.name)! + 1);
      await this.mailbox.send(taker.name, { kind: 'take', disk: d.id, from: this.o.gateway, at: Date.now() });
      handed.push(d.id);
    }
    const deadline = Date.now() + timeoutMs;
    while (handed.some((id) => this.disks.get(id)?.device.active) && Date.now() < deadline) await sleep(20);
    const stuck = handed.filter((id) => this.disks.get(id)?.device.active);
    const result = { handed: handed.filter((id) => !stuck.includes(id)), kept: [...kept, ...stuck] };
    this.o.log.info(result, 'drained');
    if (this.draining) this.drained = result;
    return result;
  }

  resume(): void {
    if (!this.draining) return;
    this.draining = false;
    this.o.log.info('drain ended: taking disks over again');
  }

  /** Stop: give every disk up (flushed, released) and stop the heartbeat. */
  async close(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    if (this.failbackTimer) clearInterval(this.failbackTimer);
    for (const id of [...this.disks.keys()]) await this.unmanage(id).catch((e) => this.o.log.error({ err: e, disk: id }, 'closing a managed disk failed'));
    await this.o.locks.close();
  }
}
