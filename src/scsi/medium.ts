/**
 * Medium state: TEST UNIT READY, START STOP UNIT (SBC-3 §5.25) and PREVENT ALLOW MEDIUM
 * REMOVAL (SBC-3 §5.14).
 *
 * A gateway disk is not removable by default (RMB=0): Windows failover clusters and VMware
 * refuse removable disks, so advertising a medium that can be ejected would be a lie that
 * costs users. A logical unit configured `removable` models its image as the medium:
 * START STOP UNIT with LOEJ ejects and loads it, PREVENT (per I_T nexus) stops that.
 * There is no motor: START/STOP only makes cached data durable (unless NO_FLUSH) and
 * power conditions have nothing to change.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { Asc, SenseError, SenseKey, invalidFieldInCdb } from './sense';

const GOOD: ScsiResult = Object.freeze({ status: ScsiStatus.Good });

async function startStopUnit(lu: LogicalUnit, task: Task, ns: LuNexus): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const powerCondition = cdb[4] >> 4;
  const noFlush = (cdb[4] & 0x04) !== 0;
  const loej = (cdb[4] & 0x02) !== 0;
  const start = (cdb[4] & 0x01) !== 0;
  if (powerCondition !== 0) return GOOD; // START and LOEJ are ignored; no power states to enter
  if (loej && lu.removalPrevented()) throw new SenseError(SenseKey.IllegalRequest, Asc.MediumRemovalPrevented);
  if (!start && !noFlush && lu.mediumPresent) await lu.device.flush({ signal: task.signal });
  if (!loej) return GOOD;
  if (start && !lu.mediumPresent) {
    lu.mediumPresent = true;
    lu.establishUnitAttention(Asc.NotReadyToReadyChange, ns.nexus.key);
    lu.log.info('medium loaded');
  } else if (!start && lu.mediumPresent) {
    lu.mediumPresent = false;
    lu.log.info('medium ejected');
  }
  return GOOD;
}

function preventAllow(_lu: LogicalUnit, task: Task, ns: LuNexus): ScsiResult {
  const prevent = task.command.cdb[4] & 0x03;
  if (prevent > 1) throw invalidFieldInCdb(4, 1); // 10b/11b are for medium changers
  ns.prevent = prevent === 1;
  return GOOD;
}

export function mediumCommands(removable: boolean): CommandDefinition[] {
  return [
    {
      name: 'TEST UNIT READY', opcode: 0x00, flags: CommandFlag.NeedsMedium | CommandFlag.ReservationAllowed,
      usage: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
      handler: () => GOOD,
    },
    {
      name: 'START STOP UNIT', opcode: 0x1b, flags: CommandFlag.None, timeouts: [1, 60],
      // SBC-3: START=1 with POWER CONDITION 0h is allowed under any reservation.
      reservationAllowed: (cdb) => (cdb[4] & 0xf1) === 0x01,
      // LOEJ is evaluated only where there is a medium to eject.
      usage: [0x1b, 0x01, 0x00, 0x0f, 0xf5 | (removable ? 0x02 : 0x00), 0x00],
      handler: startStopUnit,
    },
    {
      name: 'PREVENT ALLOW MEDIUM REMOVAL', opcode: 0x1e, flags: CommandFlag.None,
      // SBC-3: allowing removal (PREVENT 00b) is allowed under any reservation.
      reservationAllowed: (cdb) => (cdb[4] & 0x03) === 0,
      usage: [0x1e, 0x00, 0x00, 0x00, 0x03, 0x00],
      handler: preventAllow,
    },
  ];
}
