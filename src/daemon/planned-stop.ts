/**
 * A planned stop (SIGTERM, rolling restart) without an I/O pause at a multipath initiator.
 *
 * Handing the disks over (drain) alone is not enough: the initiator learns that this gateway
 * goes only when its session is asked to log out (Async Message, event 1), and open-iscsi then
 * logs out and tries to log in again, holding the path's queued commands until its
 * replacement_timeout (≈ 5 s) before dm-multipath retries them elsewhere. So, before the
 * sessions go:
 *   1. this gateway's target port group becomes UNAVAILABLE for every disk that another running
 *      gateway serves, with ASYMMETRIC ACCESS STATE CHANGED on every nexus: the initiator's next
 *      command on this path reports the unit attention, it re-reads the states (REPORT TARGET
 *      PORT GROUPS) and moves to another path group (Linux scsi_dh_alua fails commands for an
 *      unavailable group at once, so dm-multipath switches without waiting); commands that
 *      still arrive get NOT READY 04/0C, which moves them too;
 *   2. the disks are handed over (drain), while commands already admitted here finish;
 *   3. it waits (bounded) until no read or write has reached those LUs here for a quiet period:
 *      the initiators have moved;
 * then the caller logs the sessions out and closes.
 */
import type { Logger } from '../util/log';
import type { ScsiTarget } from '../scsi/scsi-target';

export interface PlannedStopParts {
  /** Disks this gateway serves. */
  readonly served: readonly string[];
  /** Disks another running (not draining) gateway serves. */
  readonly servedElsewhere: () => Promise<ReadonlySet<string>>;
  /** Make this gateway's group unavailable for these disks (with the unit attention); absent without the lock-based ALUA. */
  readonly leave?: (disks: readonly string[]) => void;
  /** Hand the owned disks over. */
  readonly drain: () => Promise<{ handed: string[]; kept: string[] }>;
  readonly targets: () => ReadonlyMap<string, ScsiTarget>;
  readonly log: Logger;
  /** How long no read or write may arrive before the initiators count as moved (default 500 ms). */
  readonly quietMs?: number;
  /** Bound of the wait for the initiators (default 3 s). */
  readonly moveBoundMs?: number;
}

export interface PlannedStopResult {
  readonly left: string[];
  readonly handed: string[];
  readonly kept: string[];
  /** From the state change until the initiators were quiet here (or the bound). */
  readonly movedMs: number;
  readonly quiet: boolean;
}

/** Reads + writes and tasks of the LUs of `disks` in every target here. */
function activity(targets: ReadonlyMap<string, ScsiTarget>, disks: ReadonlySet<string>): { io: number; tasks: number } {
  let io = 0;
  let tasks = 0;
  for (const scsi of targets.values()) {
    for (const lun of scsi.allLuns()) {
      const lu = scsi.logicalUnit(lun);
      if (!lu || !disks.has(lu.name)) continue;
      const c = lu.stats.total.commands;
      io += c[0] + c[1];
      tasks += lu.taskSet.size;
    }
  }
  return { io, tasks };
}

export async function plannedStop(p: PlannedStopParts): Promise<PlannedStopResult> {
  const started = Date.now();
  // Without the lock-based ALUA nothing tells the initiators to move: no wait for them then.
  const elsewhere = p.leave ? await p.servedElsewhere() : new Set<string>();
  const left = p.served.filter((d) => elsewhere.has(d));
  if (p.leave && left.length > 0) p.leave(left);
  const { handed, kept } = await p.drain();
  const quietMs = p.quietMs ?? 500;
  const deadline = Date.now() + (p.moveBoundMs ?? 3000);
  const watched = new Set(left);
  let last = activity(p.targets(), watched);
  let quietSince = Date.now();
  let quiet = left.length === 0;
  while (!quiet && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = activity(p.targets(), watched);
    if (now.io !== last.io || now.tasks > 0) quietSince = Date.now();
    last = now;
    quiet = Date.now() - quietSince >= quietMs;
  }
  const movedMs = Date.now() - started;
  p.log.info({ left: left.length, handed: handed.length, kept: kept.length, movedMs, quiet }, 'planned stop: initiators moved to other gateways');
  return { left, handed, kept, movedMs, quiet };
}
