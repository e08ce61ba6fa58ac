/**
 * READ DEFECT DATA (10) and (12) (SBC-3 §5.18, §5.19). A virtual medium has no defects:
 * both lists are valid and empty, in whichever address format was requested.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16, u32 } from './cdb';
import { invalidFieldInCdb } from './sense';

/** Byte 1 of the header: PLISTV/GLISTV echo the requested lists; the format is echoed too. */
function listFlags(b: number, byte: number): number {
  const format = b & 0x07;
  if (format === 0x07) throw invalidFieldInCdb(byte, 2); // reserved address format
  return b & 0x1f;
}

function readDefectData10(_lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const data = Buffer.alloc(4);
  data[1] = listFlags(cdb[2], 2);
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(4, u16(cdb, 7))) };
}

function readDefectData12(_lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const data = Buffer.alloc(8);
  data[1] = listFlags(cdb[1], 1);
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(8, u32(cdb, 6))) };
}

export function defectDataCommands(): CommandDefinition[] {
  const flags = CommandFlag.NeedsMedium | CommandFlag.ReadClass;
  return [
    {
      name: 'READ DEFECT DATA(10)', opcode: 0x37, flags,
      usage: [0x37, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
      handler: readDefectData10,
    },
    {
      name: 'READ DEFECT DATA(12)', opcode: 0xb7, flags,
      usage: [0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
      handler: readDefectData12,
    },
  ];
}
