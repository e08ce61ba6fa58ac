/**
 * One RADOS object, typed: whole-object read (data, xattrs and version in one atomic read),
 * write_full, stat, remove, xattrs, omap, atomic compound writes (the compare-and-swap
 * primitives: cmpxattr, assert_version, cls calls), cls advisory locks with a duration, and
 * watch/notify. Every call is asynchronous in native/src/ceph/object.cc (librados aio, or the
 * libuv pool for the lock calls librados only offers synchronously); nothing blocks the JS thread.
 */
import { objectBinding } from './object-binding';
import type { NativeIoCtx, NativeWatchHandle, NativeWriteOp } from './object-binding';

/** A librados failure: `errno` positive (ENOENT = 2), `code` its name when known. */
export class RadosError extends Error {
  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'RadosError';
  }
}

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 11: 'EAGAIN', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL',
  28: 'ENOSPC', 34: 'ERANGE', 61: 'ENODATA', 75: 'EOVERFLOW', 95: 'EOPNOTSUPP', 107: 'ENOTCONN', 108: 'ESHUTDOWN',
  110: 'ETIMEDOUT', 125: 'ECANCELED',
};

/** The RadosError of a rejection from the addon (which carries a negative or positive errno). */
export function radosError(e: unknown, what: string): RadosError {
  if (e instanceof RadosError) return e;
  const raw = (e as { errno?: unknown }).errno;
  const errno = typeof raw === 'number' ? Math.abs(raw) : 5;
  const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
  return new RadosError(`${what}: ${(e as Error).message ?? code}`, errno, code);
}

export function isErrno(e: unknown, code: string): boolean {
  return e instanceof RadosError && e.code === code;
}

export interface ObjectContent {
  readonly data: Buffer;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** The object's version when read (changes with every write to it). */
  readonly version: bigint;
}

export interface ObjectStat {
  readonly size: number;
  readonly mtimeMs: number;
}

export type XattrComparison = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte';

/** One step of an atomic compound write (all apply, or none). */
export type WriteStep =
  | { readonly op: 'create'; readonly exclusive: boolean }
  | { readonly op: 'assertExists' }
  | { readonly op: 'assertVersion'; readonly version: bigint }
  /** String comparison of an xattr (a missing xattr compares as ""); fails with ECANCELED. */
  | { readonly op: 'cmpxattr'; readonly name: string; readonly comparison: XattrComparison; readonly value: Buffer }
  | { readonly op: 'writeFull'; readonly data: Buffer }
  | { readonly op: 'setxattr'; readonly name: string; readonly value: Buffer }
  | { readonly op: 'rmxattr'; readonly name: string }
  | { readonly op: 'omapSet'; readonly entries: ReadonlyMap<string, Buffer> }
  | { readonly op: 'omapRemove'; readonly keys: readonly string[] }
  /** A cls method call (e.g. lock.assert_locked) with its encoded input. */
  | { readonly op: 'exec'; readonly cls: string; readonly method: string; readonly input: Buffer }
  | { readonly op: 'remove' };

export interface LockRequest {
  /** Lock name on the object (cls_lock keeps it in xattr "lock.<name>"). */
  readonly name: string;
  /** Identifies this holder together with the client's entity name. */
  readonly cookie: string;
  readonly description: string;
  /** The lock expires after this unless renewed (0 = never; avoid: a crashed holder blocks). */
  readonly durationMs: number;
  /** 'may': take or extend; 'must': extend only, ENOENT when no longer held. */
  readonly renew?: 'may' | 'must';
}

export interface Locker {
  /** Entity name of the holder ("client.4123"). */
  readonly client: string;
  readonly cookie: string;
  readonly address: string;
}

export interface LockInfo {
  readonly exclusive: boolean;
  readonly tag: string;
  readonly lockers: readonly Locker[];
}

export interface NotifyEvent {
  readonly payload: Buffer;
  /** The notifying client's global id. */
  readonly notifierId: bigint;
  /** This notify's id (what a manual-ack watch acks). */
  readonly notifyId: bigint;
}

export interface NotifyReply {
  /** The acking watcher's client global id and watch cookie. */
  readonly notifierId: bigint;
  readonly cookie: bigint;
  /** What the watcher replied (empty for watches that ack automatically). */
  readonly payload: Buffer;
}

export interface NotifyResult {
  /** Watchers that acknowledged. */
  readonly acks: number;
  /** Watchers that did not answer within the timeout. */
  readonly timeouts: number;
  /** Each acknowledging watcher with its reply. */
  readonly replies: readonly NotifyReply[];
}

/** A registered watch; `onError` reports a broken watch (the caller re-watches). */
export class ObjectWatch {
  private closed = false;

  constructor(
    private readonly handle: NativeWatchHandle,
    readonly oid: string,
  ) {}

  /** ms since the watch was last confirmed by the OSD, or a RadosError when it is broken. */
  check(): number {
    const r = objectBinding().objWatchCheck(this.handle);
    if (r < 0) throw radosError({ errno: r, message: 'watch broken' }, `watch on ${this.oid}`);
    return r;
  }

  /**
   * Ack a notify of a manual-ack watch (RadosObject.watch with `manualAck`), with a reply the
   * notifier receives (at most 64 KiB). Queued, not waited for; false when the watch is closed.
   */
  ack(notifyId: bigint, reply: Buffer = Buffer.alloc(0)): boolean {
    if (this.closed) return false;
    const r = objectBinding().objNotifyAck(this.handle, notifyId, reply);
    if (r < 0) throw radosError({ errno: r, message: 'notify ack failed' }, `ack on ${this.oid}`);
    return true;
  }

  /** Unregister and wait until no callback of this watch can still run. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await objectBinding().objUnwatch(this.handle);
    } catch (e) {
      // A watch the OSD already dropped (disconnect) is just as gone.
      const err = radosError(e, `unwatch ${this.oid}`);
      if (err.code !== 'ENOENT' && err.code !== 'ENOTCONN') throw err;
    }
  }
}

/** A RADOS object in a pool (through an open IoCtx of the process's cluster connection). */
export class RadosObject {
  /** Read buffer first tried: the last size seen plus a margin (grown and retried if short). */
  private sizeHint = 64 * 1024;

  constructor(
    private readonly io: NativeIoCtx,
    readonly pool: string,
    readonly oid: string,
  ) {}

  /** The pool handle, for other objects of the same pool. */
  get ioCtx(): NativeIoCtx {
    return this.io;
  }

  private what(op: string): string {
    return `${op} ${this.pool}/${this.oid}`;
  }

  /** Data, xattrs and version in one atomic read; undefined when the object does not exist. */
  async read(): Promise<ObjectContent | undefined> {
    // stat and read are one atomic op: when the object is larger than the buffer offered, the
    // size says so and the read is repeated with a buffer that fits (it may grow meanwhile).
    for (let attempt = 0; attempt < 8; attempt++) {
      let r;
      try {
        r = await objectBinding().objRead(this.io, this.oid, this.sizeHint);
      } catch (e) {
        throw radosError(e, this.what('read'));
      }
      if (r === null) return undefined;
      this.sizeHint = Math.max(64 * 1024, r.size + 64 * 1024);
      if (r.data.length < r.size) continue;
      return { data: r.data, xattrs: new Map(Object.entries(r.xattrs)), version: r.version };
    }
    throw new RadosError(`read ${this.pool}/${this.oid}: the object kept growing while it was read`, 11, 'EAGAIN');
  }

  async stat(): Promise<ObjectStat | undefined> {
    try {
      const r = await objectBinding().objStat(this.io, this.oid);
      return r === null ? undefined : { size: r.size, mtimeMs: r.mtime * 1000 };
    } catch (e) {
      throw radosError(e, this.what('stat'));
    }
  }

  async writeFull(data: Buffer): Promise<void> {
    await this.operate([{ op: 'writeFull', data }]);
  }

  async remove(): Promise<void> {
    await this.operate([{ op: 'remove' }]);
  }

  /** undefined when the object or the xattr does not exist. */
  async getXattr(name: string): Promise<Buffer | undefined> {
    try {
      return (await objectBinding().objGetXattr(this.io, this.oid, name)) ?? undefined;
    } catch (e) {
      throw radosError(e, this.what(`getxattr ${name} of`));
    }
  }

  async setXattr(name: string, value: Buffer): Promise<void> {
    await this.operate([{ op: 'setxattr', name, value }]);
  }

  /** Every omap entry (or those after `startAfter`), in key order; bounded pages internally. */
  async omapGet(startAfter = '', limit = 100_000): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    let after = startAfter;
    for (;;) {
      let page;
      try {
        page = await objectBinding().objOmapGet(this.io, this.oid, after, Math.min(1000, limit - out.size));
      } catch (e) {
        const err = radosError(e, this.what('omap get of'));
        if (err.code === 'ENOENT') return out;
        throw err;
      }
      for (const [k, v] of page.entries) out.set(k, v);
      if (!page.more || page.entries.length === 0 || out.size >= limit) return out;
      after = page.entries[page.entries.length - 1][0];
    }
  }

  async omapSet(entries: ReadonlyMap<string, Buffer>): Promise<void> {
    await this.operate([{ op: 'omapSet', entries }]);
  }

  async omapRemove(keys: readonly string[]): Promise<void> {
    await this.operate([{ op: 'omapRemove', keys }]);
  }

  /** Atomic compound write; rejects with the first failing step's errno (ECANCELED: cmpxattr). */
  async operate(steps: readonly WriteStep[]): Promise<void> {
    const ops: NativeWriteOp[] = steps.map((s) => {
      switch (s.op) {
        case 'omapSet':
          return { op: 'omapSet', keys: [...s.entries.keys()], values: [...s.entries.values()] };
        case 'omapRemove':
          return { op: 'omapRemove', keys: [...s.keys] };
        case 'assertVersion':
          return { op: 'assertVersion', version: s.version };
        default:
          return s;
      }
    });
    try {
      await objectBinding().objOperate(this.io, this.oid, ops);
    } catch (e) {
      throw radosError(e, this.what(steps.map((s) => s.op).join('+')));
    }
  }

  // ------------------------------------------------------------------ cls lock

  /** rados_lock_exclusive; EBUSY when another holder has it, EEXIST when we do (no renew). */
  async lockExclusive(req: LockRequest): Promise<void> {
    const flags = req.renew === 'must' ? 2 : req.renew === 'may' ? 1 : 0;
    try {
      await objectBinding().objLockExclusive(this.io, this.oid, req.name, req.cookie, req.description, req.durationMs, flags);
    } catch (e) {
      throw radosError(e, this.what(`lock ${req.name} on`));
    }
  }

  /** rados_unlock; ENOENT when not held by this client and cookie (expired, broken). */
  async unlock(name: string, cookie: string): Promise<void> {
    try {
      await objectBinding().objUnlock(this.io, this.oid, name, cookie);
    } catch (e) {
      throw radosError(e, this.what(`unlock ${name} on`));
    }
  }

  /** The current (unexpired) holders of a lock; none when the object does not exist. */
  async lockers(name: string): Promise<LockInfo> {
    try {
      return await objectBinding().objListLockers(this.io, this.oid, name);
    } catch (e) {
      const err = radosError(e, this.what(`list lockers of ${name} on`));
      if (err.code === 'ENOENT') return { exclusive: false, tag: '', lockers: [] };
      throw err;
    }
  }

  async breakLock(name: string, client: string, cookie: string): Promise<void> {
    try {
      await objectBinding().objBreakLock(this.io, this.oid, name, client, cookie);
    } catch (e) {
      throw radosError(e, this.what(`break lock ${name} on`));
    }
  }

  // ------------------------------------------------------------------ watch / notify

  /**
   * Watch the object: `onNotify` for every notify (acknowledged at once, before it runs; with
   * `manualAck` the handler acks it itself through ObjectWatch.ack, with a reply), `onError`
   * when the watch broke (disconnect, timeout): the caller closes it and watches again.
   */
  async watch(onNotify: (e: NotifyEvent) => void, onError: (e: RadosError) => void, options: { manualAck?: boolean } = {}): Promise<ObjectWatch> {
    let handle: NativeWatchHandle;
    try {
      handle = await objectBinding().objWatch(this.io, this.oid, (kind, payload, notifierId, err, notifyId) => {
        if (kind === 'notify') onNotify({ payload: payload ?? Buffer.alloc(0), notifierId: notifierId ?? 0n, notifyId: notifyId ?? 0n });
        else onError(radosError({ errno: err ?? -5, message: 'watch error' }, this.what('watch on')));
      }, options.manualAck === true);
    } catch (e) {
      throw radosError(e, this.what('watch'));
    }
    return new ObjectWatch(handle, this.oid);
  }

  /** Notify every watcher and wait for their acks (at most timeoutMs). */
  async notify(payload: Buffer, timeoutMs: number): Promise<NotifyResult> {
    try {
      const r = await objectBinding().objNotify(this.io, this.oid, payload, timeoutMs);
      return { acks: r.acks, timeouts: r.timeouts, replies: r.replies ?? [] };
    } catch (e) {
      throw radosError(e, this.what('notify'));
    }
  }
}
