/**
 * The shared logical-unit state on Ceph: one RADOS object per logical unit in the pool of the
 * configuration (`gateway.lu-state.<unit serial>`), read and written by every gateway that
 * serves the LU, on any host. Its data is the same document as the data-dir store's file
 * (src/ha/lu-state-file.ts): the state, an EPOCH and a short log of unit attentions.
 *
 *  - Compare-and-swap: a change reads the object, applies the change to the newest state and
 *    writes epoch + 1 in ONE atomic compound write: cmpxattr("epoch" == the value read),
 *    write_full, setxattr("epoch"). A writer that lost the race gets ECANCELED and starts over.
 *  - Members and liveness: every gateway serving the LU holds its own cls lock
 *    ("member.<instance>") on the object with a duration, renewed every MEMBER_RENEW_MS. The
 *    OSD expires the lock of a gateway that stopped renewing (dead, cut off, hung): that is the
 *    liveness test, judged by the OSD's clock, never by comparing hosts' clocks. The lock's
 *    xattr ("lock.member.<instance>") lists the members in the object's own read.
 *  - Propagation and acknowledgements: the committer notifies the object. Each gateway's
 *    watch acks a notify only after it has read the object, applied the state and established
 *    the unit attentions (PREEMPT AND ABORT: its tasks ended); the ack's reply carries the epoch
 *    it has applied (librados acks before the handler runs, so the ack is manual). update()
 *    resolves when every live member confirmed the new epoch, or, for members that did not,
 *    once ACK_TIMEOUT has passed since the write (below).
 *  - Trust of the cache: a gateway checks each command against its cached state only while it
 *    verified that state recently: every VERIFY_MS it compares the object's epoch xattr, and
 *    the cache counts as verified from the START of the last check that confirmed it, for at
 *    most LAG_MS (< ACK_TIMEOUT), and only while its member lock is surely held. After a stall
 *    (or a failed check) the next command first waits for an asynchronous revalidation (there
 *    is no synchronous read: `ready()`). Hence a member that missed a commit at T0 verified
 *    its cache before T0 and stops trusting it before T0 + ACK_TIMEOUT, when the committer
 *    gives up waiting: no conflicting command is admitted on any gateway after GOOD.
 *  - Power on: the first gateway to open the LU while no other member is alive (under a short
 *    "open" lock, so two gateways starting together do not both skip it) clears the SPC-2
 *    reservation, the selected mode parameters, and the persistent reservations unless APTPL
 *    was set (SPC-4 §5.13.5). One gateway dying while another serves the LU changes nothing;
 *    an SPC-2 reservation held through a gateway whose member lock expired is released.
 *  - Bounds: at most MAX_REGISTRATIONS registrations and MAX_OBJECT_BYTES of document; a
 *    change beyond them fails with INSUFFICIENT REGISTRATION RESOURCES. A RADOS failure while
 *    committing fails the command (HARDWARE ERROR, LOGICAL UNIT COMMUNICATION FAILURE) and
 *    makes the cache untrusted: a change is acknowledged only after it was stored.
 */
import * as fsp from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { ObjectWatch, RadosError, RadosObject, isErrno, radosError } from '../ceph/rados-object';
import type { NotifyEvent, ObjectContent } from '../ceph/rados-object';
import { loadAptplState, aptplFile } from '../scsi/aptpl-file';
import {
  EMPTY_LU_STATE, LuState, LuStateChange, LuStateListener, LuStateStore, SharedAttention,
  attentionFromJson, attentionToJson, deliverAttentions, luStateFromJson, luStateToJson,
} from '../scsi/lu-state';
import { EMPTY_PR_STATE } from '../scsi/reservations';
import { Asc, SenseError, SenseKey } from '../scsi/sense';
import type { Logger } from '../util/log';
import { LuStateDoc, envMs } from './lu-state-file';
import { SerialQueue } from '../util/serial-queue';

const FORMAT = 'iscsi-gateway-lu-state-1';
export const EPOCH_XATTR = 'epoch';
const MEMBER_PREFIX = 'member.';
/** cls_lock keeps a lock named N in xattr "lock.N". */
const LOCK_XATTR_PREFIX = 'lock.';
const OPEN_LOCK = 'open';
/** Attentions kept in the object for gateways that have not read them yet. */
const MAX_ATTENTIONS = 64;
/** Registrations one LU keeps (SPC-4 lets the device server bound them). */
export const MAX_REGISTRATIONS = 512;
/** Largest document written (512 registrations with 223-byte iSCSI names fit). */
export const MAX_OBJECT_BYTES = 512 * 1024;
const MAX_CAS_ATTEMPTS = 100;
/** One notify round (librados rounds notify timeouts down to whole seconds). */
const NOTIFY_ROUND_MS = 1000;

interface Loaded {
  readonly doc: LuStateDoc;
  readonly state: LuState;
}

/** What the committer's notify carries and what a watcher's ack replies. */
interface NotifyBody {
  readonly e: number;
  readonly i: string;
}

export class LuStateRadosError extends Error {
  readonly kind = 'lu-state';
  constructor(readonly where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'LuStateRadosError';
  }
}

/** The sense of a shared state that cannot be read or written (the cluster did not answer). */
export function communicationFailure(): SenseError {
  return new SenseError(SenseKey.HardwareError, Asc.LogicalUnitCommunicationFailure);
}

function insufficientRegistrationResources(): SenseError {
  return new SenseError(SenseKey.IllegalRequest, Asc.InsufficientRegistrationResources);
}

export interface RadosLuStateOptions {
  /** The LU's object (luStateObjectName) in the configuration's pool. */
  readonly obj: RadosObject;
  readonly wwn: string;
  /** This process's identity among the members (gateway name + pid + random). */
  readonly instance: string;
  readonly log: Logger;
  /** Single-gateway APTPL files (DATA/pr): taken over when the LU has no state yet. */
  readonly legacyAptplDir?: string;
  /**
   * The data-dir state file of this LU (DATA/lu-state/<serial>.json, written by gateways that
   * kept the state in the data dir before): its APTPL reservations are taken over when the LU
   * has no state in RADOS yet.
   */
  readonly legacyStateFile?: string;
  /** How long a commit waits for the other gateways' acknowledgements (default 3000 ms). */
  readonly ackTimeoutMs?: number;
  /** How often the cache is verified against the object's epoch (default 250 ms). */
  readonly verifyMs?: number;
  /** Duration of the member lock (default 5 s, as ha_lease_secs): a dead gateway counts as live this long. */
  readonly memberLeaseMs?: number;
}

/** The object of one LU's state. */
export function luStateObjectName(wwn: string): string {
  return `gateway.lu-state.${wwn}`;
}

const pad = (epoch: number): Buffer => Buffer.from(String(epoch).padStart(20, '0'), 'utf8');

export class RadosLuStateStore implements LuStateStore {
  readonly oid: string;
  private readonly where: string;
  private readonly ackTimeoutMs: number;
  private readonly verifyMs: number;
  private readonly lagMs: number;
  private readonly leaseMs: number;
  private readonly memberLock: string;
  private loaded: Loaded | undefined;
  /** performance.now() at the start of the last check that found the cache current. */
  private verifiedAt = -Infinity;
  /** performance.now() at the start of the last successful renewal of the member lock. */
  private lockSince = -Infinity;
  private readonly listeners = new Set<LuStateListener>();
  private watch: ObjectWatch | undefined;
  private rewatching = false;
  private readonly queue = new SerialQueue();
  private checking: Promise<void> | undefined;
  private recheck = false;
  private revalidating: Promise<void> | undefined;
  /** Notifies to ack after the check that runs next (it starts after they arrived). */
  private pendingAcks: bigint[] = [];
  private verifier: NodeJS.Timeout | undefined;
  private renewer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private spc2Releasing = false;
  private closed = false;
  private readonly log: Logger;

  private constructor(private readonly o: RadosLuStateOptions) {
    this.oid = o.obj.oid;
    this.where = `rados:${o.obj.pool}/${o.obj.oid}`;
    this.ackTimeoutMs = o.ackTimeoutMs ?? envMs('ISCSI_GATEWAY_LU_STATE_ACK_MS', 3000);
    this.verifyMs = o.verifyMs ?? 250;
    this.lagMs = Math.max(this.verifyMs * 2, Math.floor(this.ackTimeoutMs / 3));
    this.leaseMs = o.memberLeaseMs ?? envMs('ISCSI_GATEWAY_LU_STATE_LEASE_MS', 5000);
    this.memberLock = `${MEMBER_PREFIX}${o.instance}`;
    this.log = o.log.child({ component: 'lu-state', wwn: o.wwn, object: this.where });
  }

  /** Open (create, migrate, power-on) the state of one LU and start watching it. */
  static async open(o: RadosLuStateOptions): Promise<RadosLuStateStore> {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(o.instance)) throw new LuStateRadosError(o.obj.oid, `instance ${JSON.stringify(o.instance)} is not a valid member name`);
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(o.wwn)) throw new LuStateRadosError(o.obj.oid, `unit serial ${JSON.stringify(o.wwn)} cannot name an object`);
    const s = new RadosLuStateStore(o);
    try {
      await s.start();
    } catch (e) {
      await s.close().catch(() => undefined);
      throw e;
    }
    return s;
  }

  private async start(): Promise<void> {
    const { obj, instance } = this.o;
    // Serialize openers: the power-on decision needs to know who else is serving.
    const openCookie = `${instance}.${Math.random().toString(36).slice(2, 10)}`;
    const deadline = Date.now() + 30_000;
    for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
      try {
        await obj.lockExclusive({ name: OPEN_LOCK, cookie: openCookie, description: instance, durationMs: 15_000 });
        break;
      } catch (e) {
        if (!isErrno(e, 'EBUSY') || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    try {
      await this.renew();
      this.watch = await obj.watch((ev) => this.onNotify(ev), (err) => this.onWatchError(err), { manualAck: true });
      const content = await obj.read();
      let doc = content ? this.parse(content) : undefined;
      let state = doc ? this.stateOf(doc) : undefined;
      let migrated = false;
      if (!doc && this.o.legacyStateFile) {
        const pr = await this.legacyFileState(this.o.legacyStateFile);
        if (pr) {
          state = { pr };
          migrated = true;
          this.log.info({ from: this.o.legacyStateFile }, 'APTPL reservations of the data-dir state taken over into RADOS');
        }
      }
      if (!state && !doc && this.o.legacyAptplDir) {
        const pr = await loadAptplState(aptplFile(this.o.legacyAptplDir, this.o.wwn), this.o.wwn);
        if (pr) {
          state = { pr };
          migrated = true;
          this.log.info({ from: this.o.legacyAptplDir }, 'APTPL reservations taken over into the shared logical unit state');
        }
      }
      const others = await this.liveMembers(content);
      if (others.length === 0) {
        // Power on: no gateway served the LU.
        const prev = state ?? EMPTY_LU_STATE;
        const pr = prev.pr.aptpl ? prev.pr : EMPTY_PR_STATE;
        if (pr !== prev.pr || prev.spc2 || prev.mode) state = { pr };
        if (prev.pr.aptpl && prev.pr.registrations.length > 0) this.log.info({ registrations: prev.pr.registrations.length }, 'APTPL reservations restored');
      }
      if (!doc || state !== this.stateOf(doc) || migrated) {
        const next: LuStateDoc = {
          format: FORMAT, wwn: this.o.wwn, epoch: (doc?.epoch ?? 0) + 1, seq: doc?.seq ?? 0,
          state: luStateToJson(state ?? EMPTY_LU_STATE), attentions: others.length === 0 ? [] : doc?.attentions ?? [],
        };
        const stamp = content?.xattrs.get(EPOCH_XATTR) ?? Buffer.alloc(0);
        // Nothing but openers (serialized here) and commits change it; a commit in between
        // means another member is alive, so re-open from the start.
        try {
          await obj.operate([
            { op: 'cmpxattr', name: EPOCH_XATTR, comparison: 'eq', value: stamp },
            { op: 'writeFull', data: Buffer.from(JSON.stringify(next), 'utf8') },
            { op: 'setxattr', name: EPOCH_XATTR, value: pad(next.epoch) },
          ]);
        } catch (e) {
          if (!isErrno(e, 'ECANCELED')) throw e;
          const again = await obj.read();
          doc = again ? this.parse(again) : undefined;
          if (!doc) throw new LuStateRadosError(this.where, 'changed while it was opened and has no state');
          this.loaded = { doc, state: this.stateOf(doc) };
          this.verifiedAt = performance.now();
          return;
        }
        doc = next;
      }
      this.loaded = { doc, state: this.stateOf(doc) };
      this.verifiedAt = performance.now();
    } finally {
      await obj.unlock(OPEN_LOCK, openCookie).catch(() => undefined);
      if (this.loaded) {
        // Notifies that arrived while opening: answer them now (check, then ack).
        if (this.pendingAcks.length > 0) this.check();
        this.verifier = setInterval(() => this.verifyTick(), this.verifyMs);
        this.verifier.unref();
        this.renewer = setInterval(() => void this.renewTick(), Math.max(200, Math.floor(this.leaseMs / 5)));
        this.renewer.unref();
      }
    }
  }

  /** The APTPL reservations of a data-dir state file (undefined: none, or no such file). */
  private async legacyFileState(file: string): Promise<LuState['pr'] | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const doc = this.parse({ data: Buffer.from(text, 'utf8'), xattrs: new Map(), version: 0n });
    if (!doc) return undefined;
    const pr = this.stateOf(doc).pr;
    return pr.aptpl ? pr : undefined;
  }

  private parse(content: ObjectContent): LuStateDoc | undefined {
    if (content.data.length === 0) return undefined;
    let doc: LuStateDoc;
    try {
      doc = JSON.parse(content.data.toString('utf8')) as LuStateDoc;
    } catch (e) {
      throw new LuStateRadosError(this.where, `not valid JSON (${(e as Error).message}); the reservations it held are unknown`);
    }
    if (doc?.format !== FORMAT) throw new LuStateRadosError(this.where, `unknown format ${JSON.stringify(doc?.format)}`);
    if (doc.wwn !== this.o.wwn) throw new LuStateRadosError(this.where, `belongs to unit serial ${doc.wwn}, not ${this.o.wwn}`);
    if (!Number.isSafeInteger(doc.epoch) || !Number.isSafeInteger(doc.seq) || !Array.isArray(doc.attentions)) {
      throw new LuStateRadosError(this.where, 'has no epoch or attention log');
    }
    const stamp = content.xattrs.get(EPOCH_XATTR);
    if (stamp && Number(stamp.toString('utf8')) !== doc.epoch) throw new LuStateRadosError(this.where, `epoch xattr ${stamp.toString('utf8')} differs from the document's ${doc.epoch}`);
    return doc;
  }

  private stateOf(doc: LuStateDoc): LuState {
    if (this.loaded && this.loaded.doc === doc) return this.loaded.state;
    try {
      return luStateFromJson(doc.state);
    } catch (e) {
      throw new LuStateRadosError(this.where, `damaged state (${(e as Error).message})`);
    }
  }

  // ------------------------------------------------------------------ members

  /** Member names (instances) whose lock xattr the object carries, without this one. */
  private memberNames(content: ObjectContent | undefined): string[] {
    const out: string[] = [];
    for (const name of content?.xattrs.keys() ?? []) {
      if (!name.startsWith(LOCK_XATTR_PREFIX + MEMBER_PREFIX)) continue;
      const inst = name.slice(LOCK_XATTR_PREFIX.length + MEMBER_PREFIX.length);
      if (inst !== this.o.instance) out.push(inst);
    }
    return out;
  }

  /** Is the member's lock held (the OSD expires it when the gateway stops renewing)? */
  private async memberAlive(inst: string): Promise<boolean> {
    const info = await this.o.obj.lockers(`${MEMBER_PREFIX}${inst}`);
    return info.lockers.length > 0;
  }

  /** The other members that are alive; a dead one's lock xattr is removed (if unchanged since read). */
  private async liveMembers(content: ObjectContent | undefined, among?: readonly string[]): Promise<string[]> {
    const names = among ?? this.memberNames(content);
    const alive = await Promise.all(names.map((n) => this.memberAlive(n)));
    const dead = names.filter((_, i) => !alive[i]);
    for (const n of dead) {
      const xattr = `${LOCK_XATTR_PREFIX}${MEMBER_PREFIX}${n}`;
      const value = content?.xattrs.get(xattr);
      if (!value) continue;
      // Only the exact value read: a member that renewed meanwhile changed it.
      void this.o.obj.operate([
        { op: 'cmpxattr', name: xattr, comparison: 'eq', value },
        { op: 'rmxattr', name: xattr },
      ]).catch(() => undefined);
    }
    return names.filter((_, i) => alive[i]);
  }

  /** Take or extend this gateway's member lock. */
  private renew(): Promise<void> {
    if (this.renewing) return this.renewing;
    const p = (async () => {
      const started = performance.now();
      const lapsed = started - this.lockSince > this.leaseMs * 0.8;
      await this.o.obj.lockExclusive({ name: this.memberLock, cookie: this.o.instance, description: 'iscsi-gateway logical unit state member', durationMs: this.leaseMs, renew: 'may' });
      // After a lapse others may have counted this gateway as gone and not waited for it:
      // the cache must be read again before it is trusted.
      if (lapsed && this.loaded) this.verifiedAt = -Infinity;
      this.lockSince = started;
    })().finally(() => {
      this.renewing = undefined;
    });
    this.renewing = p;
    return p;
  }

  private async renewTick(): Promise<void> {
    if (this.closed) return;
    try {
      await this.renew();
    } catch (e) {
      this.log.warn({ err: e }, 'cannot renew the membership lock of the shared logical unit state');
    }
    this.releaseDeadSpc2();
  }

  /** An SPC-2 reservation held through a gateway that is gone is released (its nexus is lost). */
  private releaseDeadSpc2(): void {
    const holder = this.loaded?.state.spc2?.holderInstance;
    if (!holder || holder === this.o.instance || this.closed || this.spc2Releasing) return;
    this.spc2Releasing = true;
    void (async () => {
      if (await this.memberAlive(holder)) return;
      this.log.info({ holder }, 'releasing the SPC-2 reservation of a gateway that is gone');
      await this.update((s) => ({ state: s.spc2?.holderInstance === holder ? (s.mode ? { pr: s.pr, mode: s.mode } : { pr: s.pr }) : s, result: undefined }));
    })().catch((err: unknown) => this.log.warn({ err }, 'cannot release the SPC-2 reservation'))
      .finally(() => {
        this.spc2Releasing = false;
      });
  }

  // ------------------------------------------------------------------ LuStateStore

  get state(): LuState {
    return this.loaded?.state ?? EMPTY_LU_STATE;
  }

  /** The epoch of the state applied here. */
  get epoch(): number {
    return this.loaded?.doc.epoch ?? 0;
  }

  /** The members other than this one whose lock the object lists (for status and tests). */
  async members(): Promise<string[]> {
    return this.liveMembers(await this.o.obj.read());
  }

  private trusted(): boolean {
    const now = performance.now();
    return now - this.verifiedAt <= this.lagMs && now - this.lockSince <= this.leaseMs * 0.8;
  }

  current(): LuState {
    // No synchronous read exists: ready() is what makes the command path wait.
    if (!this.trusted() && !this.closed) void this.ready()?.catch(() => undefined);
    return this.state;
  }

  /**
   * undefined while the cache may be used; otherwise a revalidation (member lock, then a fresh
   * read) the command waits for. Rejects with LOGICAL UNIT COMMUNICATION FAILURE when the
   * object cannot be read within the acknowledgement timeout.
   */
  ready(): Promise<void> | undefined {
    if (this.closed || this.trusted()) return undefined;
    if (!this.revalidating) {
      this.revalidating = (async () => {
        const deadline = performance.now() + this.ackTimeoutMs;
        for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
          try {
            if (performance.now() - this.lockSince > this.leaseMs * 0.8) await this.renew();
            await this.refresh();
            if (this.trusted()) return;
          } catch (e) {
            if (performance.now() > deadline) {
              this.log.warn({ err: e }, 'cannot revalidate the shared logical unit state');
              throw communicationFailure();
            }
          }
          if (performance.now() > deadline) throw communicationFailure();
          await new Promise((r) => setTimeout(r, wait));
        }
      })().finally(() => {
        this.revalidating = undefined;
      });
    }
    return this.revalidating;
  }

  subscribe(listener: LuStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  update<T>(change: (current: LuState) => LuStateChange<T>): Promise<T> {
    const run = () => this.commit(change);
    return this.queue.run(run);
  }

  whenSettled(): Promise<void> | undefined {
    return this.queue.settled();
  }

  private async commit<T>(change: (current: LuState) => LuStateChange<T>): Promise<T> {
    if (this.closed || !this.loaded) throw new LuStateRadosError(this.where, 'closed');
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      // Compare: the newest committed state (another gateway's commit included).
      let content: ObjectContent | undefined;
      try {
        content = await this.o.obj.read();
      } catch (e) {
        this.log.warn({ err: e }, 'cannot read the shared logical unit state');
        throw communicationFailure();
      }
      const latest = content ? this.parse(content) : undefined;
      if (!content || !latest) throw new LuStateRadosError(this.where, 'the object was removed; the reservations it held are unknown');
      await deliverAttentions(this.listeners, this.adopt(latest));
      const base = this.loaded;
      const before = base.state;
      const out = change(before);
      const own = out.attentions ?? [];
      if (out.state === before && own.length === 0) return out.result;
      let state = out.state;
      if (state.spc2 && !state.spc2.holderInstance) state = { ...state, spc2: { ...state.spc2, holderInstance: this.o.instance } };
      if (state.pr.registrations.length > MAX_REGISTRATIONS && state.pr.registrations.length > before.pr.registrations.length) {
        throw insufficientRegistrationResources();
      }
      const doc = base.doc;
      let seq = doc.seq;
      const logged = [...doc.attentions, ...own.map((a) => ({ seq: ++seq, origin: this.o.instance, attention: attentionToJson(a) }))];
      const next: LuStateDoc = {
        format: FORMAT, wwn: this.o.wwn, epoch: doc.epoch + 1, seq, state: luStateToJson(state), attentions: logged.slice(-MAX_ATTENTIONS),
      };
      const data = Buffer.from(JSON.stringify(next), 'utf8');
      if (data.length > MAX_OBJECT_BYTES) throw insufficientRegistrationResources();
      // Swap.
      try {
        await this.o.obj.operate([
          { op: 'cmpxattr', name: EPOCH_XATTR, comparison: 'eq', value: content.xattrs.get(EPOCH_XATTR) ?? Buffer.alloc(0) },
          { op: 'writeFull', data },
          { op: 'setxattr', name: EPOCH_XATTR, value: pad(next.epoch) },
        ]);
      } catch (e) {
        if (isErrno(e, 'ECANCELED')) continue;
        // The outcome is unknown (a timeout may have landed): never trust the cache unread.
        this.verifiedAt = -Infinity;
        this.log.warn({ err: e }, 'cannot write the shared logical unit state; the change is refused');
        throw communicationFailure();
      }
      const committedAt = performance.now();
      this.loaded = { doc: next, state: luStateFromJson(next.state) };
      await deliverAttentions(this.listeners, own, out.origin);
      await this.waitForAcks(next.epoch, committedAt);
      return out.result;
    }
    throw new LuStateRadosError(this.where, `gave up after ${MAX_CAS_ATTEMPTS} conflicting writers`);
  }

  /**
   * Notify until every live member confirmed `epoch`, or until ACK_TIMEOUT has passed since the
   * write (see the header). The notify is repeated in rounds of NOTIFY_ROUND_MS (the OSD counts
   * notify timeouts in whole seconds) so that the watch of a dead gateway, which the OSD keeps
   * until osd_client_watch_timeout, costs one round, not the whole timeout: after each round
   * the members that did not confirm are checked, and those whose member lock expired are gone.
   */
  private async waitForAcks(epoch: number, committedAt: number): Promise<void> {
    const confirmed = new Set<string>();
    const deadline = committedAt + this.ackTimeoutMs;
    const payload = Buffer.from(JSON.stringify({ e: epoch, i: this.o.instance } satisfies NotifyBody));
    let pending: string[];
    for (;;) {
      try {
        const r = await this.o.obj.notify(payload, NOTIFY_ROUND_MS);
        for (const reply of r.replies) {
          try {
            const b = JSON.parse(reply.payload.toString('utf8')) as NotifyBody;
            if (typeof b.i === 'string' && typeof b.e === 'number' && b.e >= epoch) confirmed.add(b.i);
          } catch {
            // Not one of ours (an empty ack): confirms nothing.
          }
        }
      } catch (e) {
        this.log.warn({ err: e }, 'cannot notify the gateways sharing the logical unit');
      }
      try {
        // Members as of now (one that joined after the write read the new state, or confirmed).
        const content = await this.o.obj.read();
        pending = this.memberNames(content).filter((n) => !confirmed.has(n));
        if (pending.length > 0) pending = await this.liveMembers(content, pending);
      } catch (e) {
        this.log.warn({ err: e }, 'cannot list the gateways sharing the logical unit');
        pending = ['(unknown)'];
      }
      if (pending.length === 0) return;
      if (performance.now() >= deadline) break;
    }
    this.log.warn({ epoch, gateways: pending, timeoutMs: this.ackTimeoutMs }, 'gateways did not acknowledge the logical unit state; they revalidate before their next command');
  }

  /** Take a newer committed version as the cached one; returns the attentions it brings. */
  private adopt(doc: LuStateDoc): SharedAttention[] {
    const cur = this.loaded;
    if (cur && doc.epoch <= cur.doc.epoch) return [];
    const seen = cur?.doc.seq ?? doc.seq;
    const news = doc.attentions.filter((a) => a.seq > seen && a.origin !== this.o.instance);
    if (doc.attentions.length > 0 && doc.attentions[0].seq > seen + 1 && doc.seq > seen) {
      this.log.warn({ missed: doc.attentions[0].seq - seen - 1 }, 'unit attentions of other gateways were dropped from the log before this gateway read them');
    }
    this.loaded = { doc, state: this.stateOf(doc) };
    return news.map((a) => attentionFromJson(a.attention));
  }

  /** Read the object, apply a newer version (attentions delivered), mark the cache verified. */
  private async refresh(): Promise<void> {
    const started = performance.now();
    const content = await this.o.obj.read();
    const doc = content ? this.parse(content) : undefined;
    if (!doc) throw new LuStateRadosError(this.where, 'the object was removed; the reservations it held are unknown');
    await deliverAttentions(this.listeners, this.adopt(doc));
    if (this.loaded && this.loaded.doc.epoch >= doc.epoch) this.verifiedAt = Math.max(this.verifiedAt, started);
  }

  /** The periodic verification: the epoch xattr alone, a full read only when it moved. */
  private verifyTick(): void {
    if (this.closed || this.checking || !this.loaded) return;
    const started = performance.now();
    const epoch = this.loaded.doc.epoch;
    this.checking = (async () => {
      try {
        const stamp = await this.o.obj.getXattr(EPOCH_XATTR);
        if (stamp && Number(stamp.toString('utf8')) === epoch) {
          if (this.loaded?.doc.epoch === epoch) this.verifiedAt = Math.max(this.verifiedAt, started);
        } else {
          await this.refresh();
        }
      } catch (e) {
        this.log.warn({ err: e }, 'cannot verify the shared logical unit state; keeping the last one until it is stale');
      }
    })().finally(() => {
      this.checking = undefined;
      if (this.recheck || this.pendingAcks.length > 0) this.check();
    });
  }

  private onNotify(ev: NotifyEvent): void {
    let body: NotifyBody | undefined;
    try {
      body = JSON.parse(ev.payload.toString('utf8')) as NotifyBody;
    } catch {
      body = undefined;
    }
    // Our own commit: applied before it was sent.
    if (body?.i === this.o.instance && this.loaded && this.loaded.doc.epoch >= body.e) {
      this.ackNotify([ev.notifyId]);
      return;
    }
    this.pendingAcks.push(ev.notifyId);
    if (this.loaded) this.check();
  }

  /** Read and apply, then ack the notifies that arrived before it started. One at a time. */
  private check(): void {
    if (this.closed) return;
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.recheck = false;
    const acks = this.pendingAcks;
    this.pendingAcks = [];
    this.checking = (async () => {
      try {
        await this.refresh();
      } catch (e) {
        this.log.warn({ err: e }, 'cannot read the shared logical unit state; keeping the last one until it is stale');
      }
      this.ackNotify(acks);
    })().finally(() => {
      this.checking = undefined;
      if (this.recheck || this.pendingAcks.length > 0) this.check();
    });
  }

  private ackNotify(ids: readonly bigint[]): void {
    if (!this.watch || ids.length === 0) return;
    const reply = Buffer.from(JSON.stringify({ e: this.epoch, i: this.o.instance } satisfies NotifyBody));
    for (const id of ids) {
      try {
        this.watch.ack(id, reply);
      } catch (e) {
        this.log.warn({ err: e }, 'cannot acknowledge a notify of the shared logical unit state');
      }
    }
  }

  /** A broken watch (disconnect, watch timeout): watch again, then read what was missed. */
  private onWatchError(err: RadosError): void {
    if (this.closed || this.rewatching) return;
    this.rewatching = true;
    this.log.warn({ err }, 'the watch on the shared logical unit state broke; watching again');
    const old = this.watch;
    this.watch = undefined;
    void (async () => {
      await old?.close().catch(() => undefined);
      for (let wait = 50; !this.closed; wait = Math.min(wait * 2, 2000)) {
        try {
          this.watch = await this.o.obj.watch((ev) => this.onNotify(ev), (e) => this.onWatchError(e), { manualAck: true });
          this.check();
          return;
        } catch (e) {
          this.log.warn({ err: radosError(e, 'watch') }, 'cannot watch the shared logical unit state');
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    })().finally(() => {
      this.rewatching = false;
    });
  }

  /** Stop watching and leave the members (the state stays for the other gateways). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.verifier) clearInterval(this.verifier);
    if (this.renewer) clearInterval(this.renewer);
    await this.queue.drain();
    await this.checking;
    await this.renewing?.catch(() => undefined);
    await this.watch?.close().catch(() => undefined);
    this.watch = undefined;
    await this.o.obj.unlock(this.memberLock, this.o.instance).catch(() => undefined);
    await this.o.obj.operate([{ op: 'rmxattr', name: `${LOCK_XATTR_PREFIX}${this.memberLock}` }]).catch(() => undefined);
  }
}
