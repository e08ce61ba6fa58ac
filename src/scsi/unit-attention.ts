/**
 * Unit attention conditions of one I_T nexus for one logical unit (SPC-4 §5.14, SAM-5 §5.14).
 * Reported oldest first; a reset-class condition (ASC 29h) makes every older pending
 * condition moot and replaces it, and a condition already pending is not queued twice.
 */
import { Asc } from './sense';

export class UnitAttentions {
  private queue: Asc[] = [];

  get pending(): boolean {
    return this.queue.length > 0;
  }

  establish(asc: Asc): void {
    if ((asc >> 8) === 0x29) {
      this.queue = [asc];
      return;
    }
    if (!this.queue.includes(asc)) this.queue.push(asc);
  }

  /** The condition to report next, without clearing it. */
  peek(): Asc | undefined {
    return this.queue[0];
  }

  /** Report-and-clear (REQUEST SENSE, or CHECK CONDITION with UA_INTLCK_CTRL=00b). */
  take(): Asc | undefined {
    return this.queue.shift();
  }

  has(asc: Asc): boolean {
    return this.queue.includes(asc);
  }

  clear(asc: Asc): void {
    this.queue = this.queue.filter((a) => a !== asc);
  }

  clearAll(): void {
    this.queue = [];
  }

  list(): readonly Asc[] {
    return this.queue;
  }
}
