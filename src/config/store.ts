/**
 * ConfigStore: where the shared configuration lives, seen by every gateway. Two
 * implementations behind one interface: the embedded file store (file-store.ts: one file in
 * the data dir shared by the gateways of one host) and, later, the RADOS object.
 *
 * Writers never overwrite each other: update() reads the document, applies the mutator to a
 * copy and commits only if the epoch is still the one it read (compare-and-swap); on a lost
 * race it re-reads and re-applies the mutator. The lock (lease with expiry) serializes longer
 * operations (create an image, then commit) without letting a crashed holder block anyone for
 * longer than its expiry.
 */
import type { GatewayConfig } from './schema';

export interface ConfigSnapshot {
  readonly config: GatewayConfig;
  /** config.epoch, for convenience: +1 per commit. */
  readonly epoch: number;
}

/**
 * Changes `draft` (a private deep copy of the current document) in place. Throw to abort: the
 * error reaches update()'s caller and nothing is committed. Called again with a fresh copy if
 * another writer committed in between, so it must be a function of `draft` only.
 */
export type ConfigMutator<T> = (draft: GatewayConfig) => T | Promise<T>;

export interface UpdateOptions {
  /** Re-apply attempts after a lost race before failing with 'conflict' (default 50). */
  readonly retries?: number;
  /** Give up waiting for another writer's lock after this long (default 30 s). */
  readonly timeoutMs?: number;
  /** A lock this writer already holds (commits while it is held by someone else wait). */
  readonly lock?: ConfigLock;
  /** Commit only if the document is still at this epoch (no re-apply: fail with 'conflict'). */
  readonly expectEpoch?: number;
}

export interface UpdateResult<T> extends ConfigSnapshot {
  /** What the mutator returned (last attempt). */
  readonly result: T;
  /** False when the mutator left the document unchanged (nothing written, epoch unchanged). */
  readonly changed: boolean;
}

export interface LockOptions {
  /** Who holds it, for messages ("gateway iscsi1 (pid 123)"). */
  readonly owner: string;
  /** Lease length; a holder that neither releases nor renews loses it after this (default 30 s). */
  readonly ttlMs?: number;
  /** Give up after this long (default 30 s). */
  readonly timeoutMs?: number;
}

export interface ConfigLock {
  readonly owner: string;
  /** When the lease ends unless renewed (ms since epoch). */
  readonly expiresAt: number;
  /** Extend the lease by ttl; fails with 'lock-lost' if it expired and someone else took it. */
  renew(): Promise<void>;
  release(): Promise<void>;
}

export type ConfigListener = (snapshot: ConfigSnapshot) => void;

export interface ConfigStore {
  /** Where it lives, for messages. */
  readonly location: string;
  /** The current document (an empty v11 document at epoch 0 when none was ever written). */
  read(): Promise<ConfigSnapshot>;
  /** Compare-and-swap update; see ConfigMutator. Validates structure and references before writing. */
  update<T>(mutator: ConfigMutator<T>, options?: UpdateOptions): Promise<UpdateResult<T>>;
  /** Take the store's lock (lease). */
  lock(options: LockOptions): Promise<ConfigLock>;
  /**
   * Call `listener` with every new committed document (at least the newest one after a burst),
   * from this and every other process sharing the store. Returns the unsubscribe function.
   */
  watch(listener: ConfigListener): () => void;
  /** Stop watching and release resources. */
  close(): Promise<void>;
}

export type ConfigStoreErrorKind = 'conflict' | 'timeout' | 'invalid' | 'corrupt' | 'lock-lost';

export class ConfigStoreError extends Error {
  constructor(
    message: string,
    readonly kind: ConfigStoreErrorKind,
  ) {
    super(message);
    this.name = 'ConfigStoreError';
  }
}
