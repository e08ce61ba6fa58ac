/**
 * The shared logical-unit state of the embedded deployment: one small JSON file per logical
 * unit (DATA/lu-state/<unit serial>.json) that every gateway process on the data dir reads
 * and writes. It carries the persistent and SPC-2 reservations and a short log of the unit
 * attentions one gateway's nexus established for the others.
 *
 *  - Compare-and-swap: a change is read-modify-write of the newest file under the LU's flock
 *    (<serial>.lock); the EPOCH in the file is the version every cache is validated against.
 *    The file is replaced atomically and durably (APTPL states must survive power loss).
 *  - Watchers: each process serving the LU holds an flock on its own file in
 *    <serial>.watchers/ for as long as it serves it, and writes there the epoch it has
 *    applied (its acknowledgement). A lock that can be taken marks a dead process.
 *  - Notification: fs.watch on the directory (the fast path) plus a poll of the file's
 *    identity every POLL_MS. A gateway that commits a change returns GOOD only after every
 *    live watcher acknowledged the new epoch (or ACK_TIMEOUT passed), so a command that
 *    conflicts cannot be admitted elsewhere after the PERSISTENT RESERVE OUT completed.
 *  - A watcher that could not acknowledge (its event loop stalled) may not use its cache:
 *    the data path revalidates synchronously when the last check is older than LAG_MS, which
 *    is shorter than ACK_TIMEOUT.
 *  - Power on: the first gateway to open the LU while no other is alive starts it as after a
 *    power loss: the SPC-2 reservation is gone, and the persistent reservations unless APTPL
 *    was set (SPC-4 §5.13.5). One gateway dying while another serves the LU changes nothing.
 *  - Migration: an APTPL file of DATA/pr (the single-gateway format) is taken over once.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { flock, LOCK_EX, LOCK_UN } from '../sys/native';
import { writeFileAtomic } from '../sys/durable';
import { FileLock } from '../store/locks';
import { aptplFile, loadAptplState } from '../scsi/aptpl-file';
import {
  EMPTY_LU_STATE, LuState, LuStateChange, LuStateJson, LuStateListener, LuStateStore, SharedAttention, SharedAttentionJson,
  attentionFromJson, attentionToJson, deliverAttentions, luStateFromJson, luStateToJson,
} from '../scsi/lu-state';
import { EMPTY_PR_STATE } from '../scsi/reservations';
import type { Logger } from '../util/log';
import { SerialQueue } from '../util/serial-queue';

const FORMAT = 'iscsi-gateway-lu-state-1';
/** Attentions kept in the file for gateways that have not read them yet. */
const MAX_ATTENTIONS = 64;

/** A duration (ms) from the environment (tests shorten them), else `fallback`. */
export function envMs(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** The document of one LU's state, the same in the data-dir file and the RADOS object. */
export interface LoggedAttention {
  seq: number;
  /** Instance that established it (it told its own LUs already). */
  origin: string;
  attention: SharedAttentionJson;
}

export interface LuStateDoc {
  format: string;
  wwn: string;
  epoch: number;
  /** Sequence number of the newest attention ever logged. */
  seq: number;
  state: LuStateJson;
  attentions: LoggedAttention[];
}

interface Loaded {
  readonly doc: LuStateDoc;
  readonly state: LuState;
  /** Identity of the file it was read from (inode, size, mtime). */
  readonly sig: string;
}

export class LuStateFileError extends Error {
  readonly kind = 'lu-state';
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'LuStateFileError';
  }
}

export interface FileLuStateOptions {
  /** DATA/lu-state */
  readonly dir: string;
  /** Unit serial number of the LU (its name in the directory). */
  readonly wwn: string;
  /** This process's identity among the watchers (gateway name + pid + random). */
  readonly instance: string;
  readonly log: Logger;
  /** Where single-gateway APTPL files lived (DATA/pr): taken over when the LU has no state file yet. */
  readonly legacyAptplDir?: string;
  /** How long a commit waits for the other gateways' acknowledgements (default 3000 ms). */
  readonly ackTimeoutMs?: number;
  /** Poll interval behind fs.watch (default 250 ms). */
  readonly pollMs?: number;
}

const sigOf = (st: fs.BigIntStats): string => `${st.ino}:${st.size}:${st.mtimeNs}`;

function parseDoc(file: string, wwn: string, text: string): LuStateDoc {
  let doc: LuStateDoc;
  try {
    doc = JSON.parse(text) as LuStateDoc;
  } catch (e) {
    throw new LuStateFileError(file, `not valid JSON (${(e as Error).message}); the reservations it held are unknown`);
  }
  if (doc?.format !== FORMAT) throw new LuStateFileError(file, `unknown format ${JSON.stringify(doc?.format)}`);
  if (doc.wwn !== wwn) throw new LuStateFileError(file, `belongs to unit serial ${doc.wwn}, not ${wwn}`);
  if (!Number.isSafeInteger(doc.epoch) || !Number.isSafeInteger(doc.seq) || !Array.isArray(doc.attentions)) {
    throw new LuStateFileError(file, 'has no epoch or attention log');
  }
  return doc;
}

function load(file: string, wwn: string, text: string, st: fs.BigIntStats): Loaded {
  const doc = parseDoc(file, wwn, text);
  let state: LuState;
  try {
    state = luStateFromJson(doc.state);
  } catch (e) {
    throw new LuStateFileError(file, `damaged state (${(e as Error).message})`);
  }
  return { doc, state, sig: sigOf(st) };
}

/** Is the watcher file's owner alive (does it still hold the flock)? Removes a dead one's file. */
function watcherAlive(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR);
  } catch {
    return false;
  }
  try {
    if (!flock(fd, LOCK_EX)) return true;
    fs.rmSync(file, { force: true });
    flock(fd, LOCK_UN);
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** Shared fs.watch per directory, dispatching by file name. */
class DirWatch {
  private static readonly dirs = new Map<string, DirWatch>();
  private readonly subs = new Map<string, Set<() => void>>();
  private watcher: fs.FSWatcher | undefined;

  private constructor(dir: string) {
    try {
      this.watcher = fs.watch(dir, { persistent: false }, (_e, name) => {
        if (name === null) for (const s of this.subs.values()) for (const f of s) f();
        else for (const f of this.subs.get(name) ?? []) f();
      });
      // The poll keeps working; fs.watch is only the fast path.
      this.watcher.on('error', () => this.close());
    } catch {
      this.watcher = undefined;
    }
  }

  static subscribe(dir: string, name: string, fn: () => void): () => void {
    let w = DirWatch.dirs.get(dir);
    if (!w) DirWatch.dirs.set(dir, (w = new DirWatch(dir)));
    let set = w.subs.get(name);
    if (!set) w.subs.set(name, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) w.subs.delete(name);
      if (w.subs.size === 0) {
        w.close();
        DirWatch.dirs.delete(dir);
      }
    };
  }

  private close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}

export class FileLuStateStore implements LuStateStore {
  readonly file: string;
  private readonly lockFile: string;
  private readonly watchersDir: string;
  private readonly watcherFile: string;
  private readonly ackTimeoutMs: number;
  private readonly pollMs: number;
  private readonly lagMs: number;
  private loaded!: Loaded;
  /** Start of the last check that found the file as loaded (ms since epoch). */
  private verifiedAt = 0;
  private readonly listeners = new Set<LuStateListener>();
  private watcherFd = -1;
  private readonly queue = new SerialQueue();
  private checking: Promise<void> | undefined;
  private recheck = false;
  private poller: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private closed = false;
  private readonly log: Logger;

  private constructor(private readonly o: FileLuStateOptions) {
    aptplFile(o.dir, o.wwn); // validates the serial as a file name
    this.file = path.join(o.dir, `${o.wwn}.json`);
    this.lockFile = path.join(o.dir, `${o.wwn}.lock`);
    this.watchersDir = path.join(o.dir, `${o.wwn}.watchers`);
    this.watcherFile = path.join(this.watchersDir, o.instance);
    this.ackTimeoutMs = o.ackTimeoutMs ?? envMs('ISCSI_GATEWAY_LU_STATE_ACK_MS', 3000);
    this.pollMs = o.pollMs ?? 250;
    this.lagMs = Math.max(this.pollMs * 2, Math.floor(this.ackTimeoutMs / 3));
    this.log = o.log.child({ component: 'lu-state', wwn: o.wwn });
  }

  /** Open (create, migrate, power-on) the state of one LU and start watching it. */
  static async open(o: FileLuStateOptions): Promise<FileLuStateStore> {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(o.instance)) throw new LuStateFileError(o.dir, `instance ${JSON.stringify(o.instance)} cannot name a file`);
    const s = new FileLuStateStore(o);
    await fsp.mkdir(s.watchersDir, { recursive: true, mode: 0o700 });
    let migrated: string | undefined;
    const lock = await FileLock.acquire(s.lockFile, 'exclusive', { timeoutMs: 30_000 });
    try {
      const others = fs.readdirSync(s.watchersDir).filter((n) => n !== o.instance && !n.startsWith('.'));
      const alive = others.filter((n) => watcherAlive(path.join(s.watchersDir, n)));
      let loaded = await s.read();
      let state = loaded?.state;
      let doc = loaded?.doc;
      if (!loaded && o.legacyAptplDir) {
        const legacy = aptplFile(o.legacyAptplDir, o.wwn);
        const pr = await loadAptplState(legacy, o.wwn);
        if (pr) {
          state = { pr };
          migrated = legacy;
          s.log.info({ from: legacy }, 'APTPL reservations taken over into the shared logical unit state');
        }
      }
      if (alive.length === 0) {
        // Power on (no gateway served the LU): SPC-2 reservations are gone, persistent
        // ones too unless APTPL was set.
        const prev = state ?? EMPTY_LU_STATE;
        const pr = prev.pr.aptpl ? prev.pr : EMPTY_PR_STATE;
        if (pr !== prev.pr || prev.spc2) state = { pr };
      }
      if (!loaded || state !== loaded.state) {
        const next: LuStateDoc = {
          format: FORMAT, wwn: o.wwn, epoch: (doc?.epoch ?? 0) + 1, seq: doc?.seq ?? 0,
          state: luStateToJson(state ?? EMPTY_LU_STATE), attentions: alive.length === 0 ? [] : doc?.attentions ?? [],
        };
        await writeFileAtomic(s.file, `${JSON.stringify(next)}\n`, 0o600);
        loaded = await s.read();
        if (!loaded) throw new LuStateFileError(s.file, 'vanished after it was written');
      }
      s.loaded = loaded;
      s.verifiedAt = Date.now();
      s.watcherFd = fs.openSync(s.watcherFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
      if (!flock(s.watcherFd, LOCK_EX)) throw new LuStateFileError(s.watcherFile, 'held by another process');
      s.ack();
      doc = loaded.doc;
      if (alive.length === 0 && (doc.state.pr.registrations.length > 0)) s.log.info({ registrations: doc.state.pr.registrations.length }, 'APTPL reservations restored');
    } catch (e) {
      if (s.watcherFd >= 0) fs.closeSync(s.watcherFd);
      throw e;
    } finally {
      lock.release();
    }
    if (migrated) await fsp.rm(migrated, { force: true });
    s.unwatch = DirWatch.subscribe(o.dir, path.basename(s.file), () => s.check());
    s.poller = setInterval(() => s.check(), s.pollMs);
    s.poller.unref();
    return s;
  }

  get state(): LuState {
    return this.loaded.state;
  }

  /** The epoch of the state applied here. */
  get epoch(): number {
    return this.loaded.doc.epoch;
  }

  current(): LuState {
    // Normally the watch and the poll keep the cache verified; after a stall of this process
    // the command path does not trust it (see the header).
    if (Date.now() - this.verifiedAt > this.lagMs && !this.closed) this.checkSync();
    return this.loaded.state;
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
    if (this.closed) throw new LuStateFileError(this.file, 'closed');
    let result: T;
    let own: readonly SharedAttention[];
    let origin: LuStateListener | undefined;
    let epoch: number;
    const lock = await FileLock.acquire(this.lockFile, 'exclusive', { timeoutMs: 10_000 });
    try {
      // Compare: the newest committed state (another gateway's commit included).
      const latest = await this.read();
      if (!latest) throw new LuStateFileError(this.file, 'missing');
      const pending = this.adopt(latest);
      await deliverAttentions(this.listeners, pending);
      const before = this.loaded.state;
      const out = change(before);
      result = out.result;
      own = out.attentions ?? [];
      origin = out.origin;
      if (out.state === before && own.length === 0) return result;
      let state = out.state;
      if (state.spc2 && !state.spc2.holderInstance) state = { ...state, spc2: { ...state.spc2, holderInstance: this.o.instance } };
      const doc = this.loaded.doc;
      let seq = doc.seq;
      const logged = [...doc.attentions, ...own.map((a) => ({ seq: ++seq, origin: this.o.instance, attention: attentionToJson(a) }))];
      const next: LuStateDoc = {
        format: FORMAT, wwn: this.o.wwn, epoch: doc.epoch + 1, seq, state: luStateToJson(state), attentions: logged.slice(-MAX_ATTENTIONS),
      };
      // Swap.
      await writeFileAtomic(this.file, `${JSON.stringify(next)}\n`, 0o600);
      const st = await fsp.stat(this.file, { bigint: true });
      this.loaded = { doc: next, state: luStateFromJson(next.state), sig: sigOf(st) };
      epoch = next.epoch;
      this.ack();
    } finally {
      lock.release();
    }
    await deliverAttentions(this.listeners, own, origin);
    await this.waitForAcks(epoch);
    return result;
  }

  /** Read the file (undefined when it does not exist). */
  private async read(): Promise<Loaded | undefined> {
    let h: fsp.FileHandle;
    try {
      h = await fsp.open(this.file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const st = await h.stat({ bigint: true });
      return load(this.file, this.o.wwn, await h.readFile('utf8'), st);
    } finally {
      await h.close();
    }
  }

  /** Take a newer committed version as the cached one; returns the attentions it brings. */
  private adopt(next: Loaded): SharedAttention[] {
    const cur = this.loaded;
    if (next.doc.epoch <= cur.doc.epoch) {
      if (next.doc.epoch === cur.doc.epoch) this.loaded = { ...cur, sig: next.sig };
      return [];
    }
    const seen = cur.doc.seq;
    const news = next.doc.attentions.filter((a) => a.seq > seen && a.origin !== this.o.instance);
    if (next.doc.attentions.length > 0 && next.doc.attentions[0].seq > seen + 1 && next.doc.seq > seen) {
      this.log.warn({ missed: next.doc.attentions[0].seq - seen - 1 }, 'unit attentions of other gateways were dropped from the log before this gateway read them');
    }
    this.loaded = next;
    return news.map((a) => attentionFromJson(a.attention));
  }

  /** Watch/poll: re-read if the file changed, apply, acknowledge. One check at a time. */
  private check(): void {
    if (this.closed) return;
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.checking = (async () => {
      do {
        this.recheck = false;
        const started = Date.now();
        try {
          const st = await fsp.stat(this.file, { bigint: true });
          if (sigOf(st) !== this.loaded.sig) {
            const next = await this.read();
            if (next) {
              const news = this.adopt(next);
              await deliverAttentions(this.listeners, news);
            }
          }
          this.verifiedAt = started;
          this.ack();
          this.releaseDeadSpc2();
        } catch (e) {
          this.log.warn({ err: e }, 'cannot read the shared logical unit state; keeping the last one');
        }
      } while (this.recheck && !this.closed);
    })().finally(() => {
      this.checking = undefined;
    });
  }

  /** The command path's revalidation after a stall: synchronous, delivers attentions at once. */
  private checkSync(): void {
    const started = Date.now();
    try {
      const st = fs.statSync(this.file, { bigint: true });
      if (sigOf(st) !== this.loaded.sig) {
        const next = load(this.file, this.o.wwn, fs.readFileSync(this.file, 'utf8'), st);
        const news = this.adopt(next);
        // Unit attentions are established synchronously; aborts finish on their own.
        void deliverAttentions(this.listeners, news).catch((err: unknown) => this.log.error({ err }, 'delivering unit attentions failed'));
      }
      this.verifiedAt = started;
      this.ack();
    } catch (e) {
      this.log.warn({ err: e }, 'cannot revalidate the shared logical unit state');
    }
  }

  /** Tell committers which epoch this process has applied. */
  private ack(): void {
    if (this.watcherFd < 0) return;
    try {
      fs.writeSync(this.watcherFd, String(this.loaded.doc.epoch).padStart(20, '0'), 0);
    } catch (e) {
      this.log.warn({ err: e }, 'cannot acknowledge the shared logical unit state');
    }
  }

  /** Wait until every live watcher has applied `epoch` (bounded by the ack timeout). */
  private async waitForAcks(epoch: number): Promise<void> {
    const deadline = Date.now() + this.ackTimeoutMs;
    let pending: string[];
    try {
      pending = (await fsp.readdir(this.watchersDir)).filter((n) => n !== this.o.instance && !n.startsWith('.'))
        .filter((n) => watcherAlive(path.join(this.watchersDir, n)));
    } catch (e) {
      this.log.warn({ err: e }, 'cannot list the gateways sharing the logical unit');
      return;
    }
    let wait = 1;
    while (pending.length > 0) {
      const still: string[] = [];
      for (const n of pending) {
        const text = await fsp.readFile(path.join(this.watchersDir, n), 'utf8').catch(() => '');
        if (!(Number(text) >= epoch) && text !== '') still.push(n);
      }
      pending = still;
      if (pending.length === 0) return;
      if (Date.now() >= deadline) {
        pending = pending.filter((n) => watcherAlive(path.join(this.watchersDir, n)));
        if (pending.length > 0) {
          this.log.warn({ epoch, gateways: pending, timeoutMs: this.ackTimeoutMs }, 'gateways did not acknowledge the logical unit state; they revalidate before their next command');
        }
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 10);
    }
  }

  /** An SPC-2 reservation held through a gateway that died is released (its nexus is lost). */
  private releaseDeadSpc2(): void {
    const holder = this.loaded.state.spc2?.holderInstance;
    if (!holder || holder === this.o.instance || this.closed) return;
    if (watcherAlive(path.join(this.watchersDir, holder))) return;
    this.log.info({ holder }, 'releasing the SPC-2 reservation of a gateway that is gone');
    void this.update((s) => ({ state: s.spc2?.holderInstance === holder ? { pr: s.pr } : s, result: undefined }))
      .catch((err: unknown) => this.log.warn({ err }, 'cannot release the SPC-2 reservation'));
  }

  /** Stop watching and leave the watchers (the state stays for the other gateways). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    if (this.poller) clearInterval(this.poller);
    await this.queue.drain();
    await this.checking;
    if (this.watcherFd >= 0) {
      fs.rmSync(this.watcherFile, { force: true });
      fs.closeSync(this.watcherFd);
      this.watcherFd = -1;
    }
  }
}
