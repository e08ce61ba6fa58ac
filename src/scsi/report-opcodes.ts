/**
 * MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35) and REPORT SUPPORTED TASK
 * MANAGEMENT FUNCTIONS (SPC-4 §6.36). Both are generated from the command table, so what
 * they report is exactly what the logical unit executes and checks.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandDescriptor, CommandFlag, CommandTable } from './command-table';
import { u16, u32 } from './cdb';
import { invalidFieldInCdb } from './sense';

const DEFAULT_TIMEOUTS: readonly [number, number] = [0, 30];

function timeoutsDescriptor(d: CommandDescriptor, out: Buffer, at: number): void {
  const [nominal, recommended] = d.timeouts ?? DEFAULT_TIMEOUTS;
  out.writeUInt16BE(0x0a, at);
  out.writeUInt32BE(nominal, at + 4);
  out.writeUInt32BE(recommended, at + 8);
}

/** All-commands parameter data (reporting options 000b). */
export function allCommands(table: CommandTable, rctd: boolean): Buffer {
  const size = rctd ? 20 : 8;
  const out = Buffer.alloc(4 + size * table.all.length);
  out.writeUInt32BE(size * table.all.length, 0);
  let at = 4;
  for (const d of table.all) {
    out[at] = d.opcode;
    out.writeUInt16BE(d.serviceAction ?? 0, at + 2);
    out[at + 5] = (rctd ? 0x02 : 0) | (d.serviceAction !== undefined ? 0x01 : 0);
    out.writeUInt16BE(d.cdbLength, at + 6);
    if (rctd) timeoutsDescriptor(d, out, at + 8);
    at += size;
  }
  return out;
}

/** One-command parameter data; SUPPORT 011b with the usage data, or 001b (not supported). */
export function oneCommand(d: CommandDescriptor | undefined, rctd: boolean): Buffer {
  if (!d) return Buffer.from([0x00, 0x01, 0x00, 0x00]);
  const out = Buffer.alloc(4 + d.cdbLength + (rctd ? 12 : 0));
  out[1] = (rctd ? 0x80 : 0) | 0x03;
  out.writeUInt16BE(d.cdbLength, 2);
  for (let i = 0; i < d.cdbLength; i++) out[4 + i] = d.usage[i];
  if (rctd) timeoutsDescriptor(d, out, 4 + d.cdbLength);
  return out;
}

function reportSupportedOperationCodes(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const rctd = (cdb[2] & 0x80) !== 0;
  const options = cdb[2] & 0x07;
  const opcode = cdb[3];
  const sa = u16(cdb, 4);
  const alloc = u32(cdb, 6);
  const table = lu.commands;
  const hasSa = table.hasServiceActions(opcode);
  let data: Buffer;
  switch (options) {
    case 0: data = allCommands(table, rctd); break;
    case 1: // by operation code, for commands without service actions
      if (hasSa === true) throw invalidFieldInCdb(2, 2);
      data = oneCommand(table.find(opcode), rctd);
      break;
    case 2: // by operation code and service action
      if (hasSa === false) throw invalidFieldInCdb(2, 2);
      data = oneCommand(sa <= 0x1f ? table.find(opcode, sa) : undefined, rctd);
      break;
    case 3: // by operation code, and service action where the command has them
      data = oneCommand(hasSa ? (sa <= 0x1f ? table.find(opcode, sa) : undefined) : table.find(opcode), rctd);
      break;
    default: throw invalidFieldInCdb(2, 2);
  }
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

/**
 * Supported TMFs: ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET, QUERY TASK,
 * TARGET RESET (warm/cold), QUERY ASYNCHRONOUS EVENT, QUERY TASK SET, I_T NEXUS RESET.
 * CLEAR ACA is not (no ACA), nor is WAKEUP.
 */
function reportSupportedTmfs(_lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const repd = (cdb[2] & 0x80) !== 0;
  const alloc = u32(cdb, 6);
  const data = Buffer.alloc(repd ? 16 : 4);
  data[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02; // ATS ATSS CTSS LURS QTS TRS
  data[1] = 0x04 | 0x02 | 0x01; // QAES QTSS ITNRS
  if (repd) data[3] = 0x0c; // ADDITIONAL DATA LENGTH; no TMF timeouts are reported (TMFTMOV=0)
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

export function reportOpcodesCommands(): CommandDefinition[] {
  // MAINTENANCE IN service actions are allowed under every reservation (SPC-4 table 63).
  const flags = CommandFlag.ReservationAllowed;
  return [
    {
      name: 'REPORT SUPPORTED OPERATION CODES', opcode: 0xa3, serviceAction: 0x0c, flags,
      usage: [0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
      handler: reportSupportedOperationCodes,
    },
    {
      name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', opcode: 0xa3, serviceAction: 0x0d, flags,
      usage: [0xa3, 0x0d, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
      handler: reportSupportedTmfs,
    },
  ];
}
