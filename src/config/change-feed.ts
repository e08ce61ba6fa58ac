/**
 * The listeners of one ConfigStore and how they hear of commits, whatever tells the store that
 * something changed (fs.watch and a poll for the file store, watch/notify and a re-read for
 * RADOS): check() re-reads and calls every listener once per new epoch. Checks coalesce: one
 * at a time, and one more after a burst.
 */
import type { ConfigListener, ConfigSnapshot } from './store';

export class ConfigChangeFeed {
  private readonly listeners = new Set<ConfigListener>();
  private lastNotified = -1;
  private checking = false;
  private recheck = false;

  constructor(private readonly read: () => Promise<ConfigSnapshot>) {}

  get size(): number {
    return this.listeners.size;
  }

  add(listener: ConfigListener): void {
    this.listeners.add(listener);
  }

  delete(listener: ConfigListener): void {
    this.listeners.delete(listener);
  }

  clear(): void {
    this.listeners.clear();
  }

  /** Read and notify if the epoch moved. */
  check(): void {
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.checking = true;
    void (async () => {
      try {
        do {
          this.recheck = false;
          let snap: ConfigSnapshot;
          try {
            snap = await this.read();
          } catch {
            continue; // unreachable, corrupt or mid-replace for now: the next event or re-read tries again
          }
          if (snap.epoch !== this.lastNotified && this.listeners.size > 0) {
            this.lastNotified = snap.epoch;
            for (const l of [...this.listeners]) {
              try {
                l(snap);
              } catch {
                // A listener's failure is its own; the others still hear about the change.
              }
            }
          }
        } while (this.recheck);
      } finally {
        this.checking = false;
      }
    })();
  }
}
