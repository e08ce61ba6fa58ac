/**
 * The CmdSN window of a session (RFC 7143 §4.2.2.1): in-order delivery of command-numbered
 * PDUs, ExpCmdSN/MaxCmdSN bookkeeping, and back-pressure: the window only reopens as delivered
 * commands complete, so at most `depth` commands are ever outstanding.
 */
import { serialAdd, serialInWindow, serialLt } from '../pdu/serial';

export class CommandWindow {
  private exp: number;
  /** Counted commands delivered and not yet completed. */
  private active = 0;
  private lastMax: number;
  private readonly waiting = new Map<number, { run: () => void; counts: boolean }>();
  private readonly abortedBeforeArrival = new Set<number>();

  constructor(
    initialCmdSN: number,
    private readonly depth: () => number,
    /** While true, MaxCmdSN does not advance (the connection's send queue is over its bound). */
    private readonly held: () => boolean = () => false,
  ) {
    this.exp = initialCmdSN >>> 0;
    this.lastMax = serialAdd(this.exp, depth() - 1);
  }

  get expCmdSN(): number {
    return this.exp;
  }

  /** Never moves backwards, even when the depth is reconfigured smaller; stays put while held. */
  get maxCmdSN(): number {
    if (this.held()) return this.lastMax;
    const candidate = this.candidate();
    if (serialLt(this.lastMax, candidate)) this.lastMax = candidate;
    return this.lastMax;
  }

  private candidate(): number {
    return serialAdd(this.exp, this.depth() - 1 - this.active);
  }

  /** Would MaxCmdSN advance if announced now? (The window reopened after being held.) */
  wouldOpen(): boolean {
    return !this.held() && serialLt(this.lastMax, this.candidate());
  }

  /**
   * Order a command-numbered PDU. Immediate PDUs run at once; others when their CmdSN becomes
   * ExpCmdSN. Out-of-window or duplicate CmdSNs are dropped (false). `counts`: the PDU occupies
   * a window slot until completed() is called for it.
   */
  order(cmdSN: number, immediate: boolean, run: () => void, counts: boolean): boolean {
    if (immediate) {
      run();
      return true;
    }
    // Checked against what was announced: a held window does not admit more than that.
    if (!serialInWindow(cmdSN, this.exp, this.lastMax) || this.waiting.has(cmdSN)) return false;
    this.waiting.set(cmdSN >>> 0, { run, counts });
    for (;;) {
      const next = this.waiting.get(this.exp);
      if (!next) break;
      this.waiting.delete(this.exp);
      const sn = this.exp;
      this.exp = serialAdd(this.exp, 1);
      if (this.abortedBeforeArrival.delete(sn)) continue;
      if (next.counts) this.active++;
      next.run();
    }
    return true;
  }

  /** A counted command has completed: its slot is free again. */
  completed(): void {
    if (this.active > 0) this.active--;
  }

  /** Is cmdSN inside the window and neither delivered nor waiting? */
  notYetArrived(cmdSN: number): boolean {
    return serialInWindow(cmdSN, this.exp, this.lastMax) && !this.waiting.has(cmdSN >>> 0);
  }

  /** Treat a not-yet-arrived command as received and aborted (ABORT TASK before arrival). */
  abortBeforeArrival(cmdSN: number): void {
    this.abortedBeforeArrival.add(cmdSN >>> 0);
  }

  clear(): void {
    this.waiting.clear();
    this.abortedBeforeArrival.clear();
  }
}
