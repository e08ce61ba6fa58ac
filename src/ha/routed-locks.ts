/**
 * One ImageLockBackend for the HaManager over several: each lock key goes to the backend of its
 * prefix (`rbd:` -> the RBD exclusive lock on Ceph), every other key to the fallback (the lease
 * lock of the data dir: `image:` embedded images, `file:` file disks). The manager's policy stays
 * the same whichever lock a disk has.
 */
import type { AcquireOutcome, FenceRecord, ImageLockBackend, LockEvents, LockHolder, LockReason, LockStatus } from './image-lock';

export interface LockRoute {
  readonly prefix: string;
  readonly backend: ImageLockBackend;
}

export class RoutedLocks implements ImageLockBackend {
  readonly kind: 'embedded' | 'ceph';
  /** The longest lease of the backends (the manager bounds transitions by it). */
  readonly leaseMs: number;
  private readonly all: ImageLockBackend[];

  constructor(private readonly routes: readonly LockRoute[], private readonly fallback: ImageLockBackend) {
    this.all = [...new Set([fallback, ...routes.map((r) => r.backend)])];
    this.kind = this.all.some((b) => b.kind === 'ceph') ? 'ceph' : 'embedded';
    this.leaseMs = Math.max(...this.all.map((b) => ('leaseMs' in b ? Number((b as { leaseMs: unknown }).leaseMs) : 5000)));
  }

  private of(key: string): ImageLockBackend {
    return this.routes.find((r) => key.startsWith(r.prefix))?.backend ?? this.fallback;
  }

  tryAcquire(key: string, reason?: LockReason): Promise<AcquireOutcome> {
    return this.of(key).tryAcquire(key, reason);
  }

  release(key: string): Promise<void> {
    return this.of(key).release(key);
  }

  status(key: string): Promise<LockStatus> {
    return this.of(key).status(key);
  }

  requestHandover(key: string, holder: LockHolder, reason?: LockReason): Promise<void> {
    return this.of(key).requestHandover(key, holder, reason);
  }

  breakWithFencing(key: string, holder: LockHolder): Promise<FenceRecord> {
    return this.of(key).breakWithFencing(key, holder);
  }

  held(key: string): boolean {
    return this.of(key).held(key);
  }

  setEvents(events: LockEvents): void {
    for (const b of this.all) b.setEvents(events);
  }

  async start(): Promise<void> {
    for (const b of this.all) await b.start();
  }

  async close(): Promise<void> {
    let first: unknown;
    for (const b of this.all) {
      try {
        await b.close();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}
