/**
 * The full-feature-phase timers of one connection (RFC 7143 leaves them to the target; names
 * from ceph-iscsi/LIO): a peer that takes no data (nopin_response_timeout without transmit
 * progress), solicited Data-Out that does not come (dataout_timeout), and the NOP-In ping on
 * an idle connection (nopin_timeout, answered within nopin_response_timeout).
 */
import { RESERVED_TAG } from '../pdu/opcodes';
import { TargetSettings } from './target-node';

/** What the connection must do now: fail with a reason, send a NOP-In ping with this TTT, or nothing. */
export type LivenessVerdict = { readonly fail: string } | { readonly ping: number } | undefined;

export class Liveness {
  private lastReceived = Date.now();
  private pingTtt = RESERVED_TAG;
  private pingSentAt = 0;
  private nextPingTtt = 1;

  /** Anything received proves the initiator alive (and answers an outstanding ping). */
  received(now = Date.now()): void {
    this.lastReceived = now;
    this.pingTtt = RESERVED_TAG;
  }

  /**
   * `stalledMs`: how long queued output has made no progress; `backlog`: bytes queued;
   * `stuckItt`: a task waiting longer than dataout_timeout for solicited Data-Out.
   */
  check(now: number, s: TargetSettings, stalledMs: number, backlog: number, stuckItt: number | undefined): LivenessVerdict {
    // A peer that stopped reading: nothing of the queued output leaves; dropping it releases
    // every buffer queued for it.
    if (stalledMs > Math.max(1, s.nopinResponseTimeout) * 1000) {
      return { fail: `initiator took no data for ${Math.round(stalledMs / 1000)} s (${backlog} bytes queued)` };
    }
    if (stuckItt !== undefined) return { fail: `no Data-Out for ITT 0x${stuckItt.toString(16)} within ${s.dataoutTimeout} s` };
    if (s.nopinTimeout <= 0) return undefined;
    if (this.pingTtt !== RESERVED_TAG) {
      return now - this.pingSentAt > s.nopinResponseTimeout * 1000 ? { fail: `NOP-In ping unanswered for ${s.nopinResponseTimeout} s` } : undefined;
    }
    if (now - this.lastReceived <= s.nopinTimeout * 1000) return undefined;
    this.pingTtt = this.nextPingTtt;
    this.nextPingTtt = (this.nextPingTtt % 0x7fffffff) + 1;
    this.pingSentAt = now;
    return { ping: this.pingTtt };
  }
}
