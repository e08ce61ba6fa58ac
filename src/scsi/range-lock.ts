/**
 * LBA range locks in arrival order. Used for the control mode page's restricted reordering
 * (QUEUE ALGORITHM MODIFIER 0: overlapping commands take effect in the order received) and
 * for atomic read-compare-write. Readers share, writers are exclusive; a request waits for
 * every older conflicting request, granted or not, so the order of arrival is kept.
 * With nothing in flight, acquire and release are O(1).
 */

export class RangeLock {
  /** Resolves when the lock is granted; undefined when granted at once. */
  ready?: Promise<void>;
  granted = false;
  private grant?: () => void;

  constructor(readonly start: number, readonly end: number, readonly exclusive: boolean) {}

  /** @internal */
  wait(): void {
    this.ready = new Promise((resolve) => (this.grant = resolve));
  }

  /** @internal */
  give(): void {
    this.granted = true;
    const g = this.grant;
    this.grant = undefined;
    g?.();
  }
}

export class RangeLocks {
  private readonly locks: RangeLock[] = [];

  get active(): number {
    return this.locks.length;
  }

  /** Request [lba, lba+count); an empty range still orders behind conflicting writers. */
  acquire(lba: number, count: number, exclusive: boolean): RangeLock {
    const lock = new RangeLock(lba, lba + Math.max(count, 1), exclusive);
    if (this.conflicts(lock, this.locks.length)) lock.wait();
    else lock.give();
    this.locks.push(lock);
    return lock;
  }

  release(lock: RangeLock): void {
    const i = this.locks.indexOf(lock);
    if (i < 0) return;
    this.locks.splice(i, 1);
    for (let j = i; j < this.locks.length; j++) {
      const l = this.locks[j];
      if (!l.granted && !this.conflicts(l, j)) l.give();
    }
  }

  private conflicts(lock: RangeLock, before: number): boolean {
    for (let j = 0; j < before; j++) {
      const o = this.locks[j];
      if ((o.exclusive || lock.exclusive) && o.start < lock.end && lock.start < o.end) return true;
    }
    return false;
  }
}
