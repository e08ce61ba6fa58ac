/**
 * REPORT LUNS (SPC-4 §6.33). Answered for any LUN, present or not; never reports a unit
 * attention, and clears REPORTED LUNS DATA HAS CHANGED for the nexus on every LU.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u32 } from './cdb';
import { invalidFieldInCdb } from './sense';

/** Single-level LUN: peripheral device addressing below 256, flat space addressing above. */
export function encodeLun(lun: number, out: Buffer, at: number): void {
  if (lun < 256) {
    out[at] = 0x00;
    out[at + 1] = lun;
  } else {
    out[at] = 0x40 | (lun >> 8);
    out[at + 1] = lun & 0xff;
  }
}

/** The REPORT LUNS parameter data for a CDB, truncated to the allocation length. */
export function reportLunsData(cdb: Buffer, luns: readonly number[]): Buffer {
  const select = cdb[2];
  const alloc = u32(cdb, 6);
  if (alloc < 16) throw invalidFieldInCdb(6, 7);
  let list: readonly number[];
  switch (select) {
    case 0x00: // all logical units but well-known ones
    case 0x02: // all logical units (there are no well-known ones)
      list = luns;
      break;
    case 0x01: // well-known logical units only
    case 0x10: // administrative logical units only
    case 0x11: // administrative LUs and their subsidiaries
    case 0x12: // subsidiary LUs of the addressed administrative LU
      list = [];
      break;
    default:
      throw invalidFieldInCdb(2, 7);
  }
  const data = Buffer.alloc(8 + 8 * list.length);
  data.writeUInt32BE(8 * list.length, 0);
  list.forEach((lun, i) => encodeLun(lun, data, 8 + 8 * i));
  return data.subarray(0, Math.min(data.length, alloc));
}

function reportLuns(lu: LogicalUnit, task: Task, ns: LuNexus): ScsiResult {
  const data = reportLunsData(task.command.cdb, lu.target.luns(ns.nexus));
  lu.target.reportedLunsDelivered(ns.nexus.key);
  return { status: ScsiStatus.Good, data };
}

export function reportLunsCommands(): CommandDefinition[] {
  return [{
    name: 'REPORT LUNS', opcode: 0xa0, flags: CommandFlag.NoUnitAttention | CommandFlag.ReservationAllowed,
    usage: [0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    handler: reportLuns,
  }];
}
