/**
 * The exclusive lock of an image, between gateways: only its holder opens the image for
 * writing. Two implementations sit behind one interface:
 *
 * - embedded store (lease-lock.ts): a lease file per image in the shared data dir, renewed by
 *   the holder's heartbeat; hand-over requests travel through the gateways' inboxes; a holder
 *   whose lease lapsed is fenced (SIGKILLed, verified by pid + start time + boot id, waited for)
 *   before its lease is broken.
 * - Ceph (rbd-lock.ts, `user:rbd` disks): rbd_lock_acquire(EXCLUSIVE) on the writing handle /
 *   rbd_lock_get_owners / rados blocklist_add of the owner's address, then rbd_lock_break; a
 *   fenced gateway reconnects with a new client id (its old one stays blocklisted until it
 *   starts again). routed-locks.ts puts both behind one backend by lock key prefix.
 *
 * The policy — when to ask, when to fence, how long to hold, bouncing — lives in manager.ts and
 * is the same for both.
 */

/** Who holds a lock. */
export interface LockHolder {
  /** Gateway name (the configuration's gateways key). */
  readonly gateway: string;
  /**
   * Lock client id: changes whenever the gateway process changes, so a returning gateway never
   * inherits the identity its fenced predecessor had ("<gateway>/<pid>.<starttime>" embedded,
   * "client.<global id>" on Ceph).
   */
  readonly client: string;
  /** When it took the lock (ms since the epoch). */
  readonly since: number;
}

/** Why a gateway took a lock (ALUA announces all but implicit transitions with 2A/06). */
export type LockReason = 'implicit' | 'explicit' | 'config';

export interface LockStatus {
  readonly holder?: LockHolder;
  /** Why the holder took it, when known. */
  readonly reason?: LockReason;
  /** The holder stopped proving it is alive (lease lapsed): a breaker must fence it first. */
  readonly stale: boolean;
  /** Milliseconds since the holder last renewed, when known. */
  readonly renewedAgo?: number;
}

export type AcquireOutcome =
  | { readonly kind: 'acquired' }
  | { readonly kind: 'held'; readonly holder: LockHolder; readonly stale: boolean };

/** What fencing did: who, how, how long it took. */
export interface FenceRecord {
  readonly holder: LockHolder;
  /** "SIGKILL pid 1234" or "blocklist 10.0.0.1:0/12345". */
  readonly action: string;
  readonly ms: number;
}

export interface LockEvents {
  /** Another gateway asks for the lock: drain, flush, release (or refuse by not releasing). */
  onHandoverRequest(key: string, requester: string, reason?: LockReason): void;
  /** The lock was lost without a release (lease taken over while this process lived). */
  onLost(key: string, reason: string): void;
}

export interface ImageLockBackend {
  readonly kind: 'embedded' | 'ceph';
  /** Take the lock if it is free or its holder is gone (this process, or a previous one of this gateway). */
  tryAcquire(key: string, reason?: LockReason): Promise<AcquireOutcome>;
  /** Give the lock up (after the image is flushed and closed). */
  release(key: string): Promise<void>;
  status(key: string): Promise<LockStatus>;
  /** Ask a live holder to hand the lock over. */
  requestHandover(key: string, holder: LockHolder, reason?: LockReason): Promise<void>;
  /**
   * Fence a stale holder so that it can never write again, then break its lock. Resolves once
   * the holder is fenced; throws FenceError when it cannot be.
   */
  breakWithFencing(key: string, holder: LockHolder): Promise<FenceRecord>;
  /** Locks this process holds. */
  held(key: string): boolean;
  setEvents(events: LockEvents): void;
  /** Start the heartbeat (renewal, requests); clean what a previous process of this gateway left. */
  start(): Promise<void>;
  /** Stop the heartbeat; locks still held are released. */
  close(): Promise<void>;
}
