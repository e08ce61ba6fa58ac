/** READ CAPACITY (10) and (16) (SBC-3 §5.15, §5.16). */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u32, writeU64 } from './cdb';
import { invalidFieldInCdb } from './sense';
import { provisioning } from './vpd';

function readCapacity10(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  if (!(cdb[8] & 0x01) && u32(cdb, 2) !== 0) throw invalidFieldInCdb(2, 7); // LBA needs PMI
  const data = Buffer.alloc(8);
  // A capacity beyond 32 bits reports FFFFFFFFh: use READ CAPACITY (16).
  data.writeUInt32BE(Math.min(Math.max(lu.capacity() - 1, 0), 0xffffffff), 0);
  data.writeUInt32BE(lu.blockSize, 4);
  return { status: ScsiStatus.Good, data };
}

function readCapacity16(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  if (!(cdb[14] & 0x01) && (u32(cdb, 2) !== 0 || u32(cdb, 6) !== 0)) throw invalidFieldInCdb(2, 7);
  const alloc = u32(cdb, 10);
  const data = Buffer.alloc(32);
  writeU64(data, Math.max(lu.capacity() - 1, 0), 0);
  data.writeUInt32BE(lu.blockSize, 8);
  // PROT_EN=0, P_I_EXPONENT=0, LOWEST ALIGNED LBA=0
  data[13] = lu.physicalBlockExponent;
  const tp = provisioning(lu);
  data[14] = (tp.lbpme ? 0x80 : 0) | (tp.lbprz ? 0x40 : 0);
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(32, alloc)) };
}

export function capacityCommands(): CommandDefinition[] {
  const flags = CommandFlag.NeedsMedium | CommandFlag.ReservationAllowed;
  return [
    {
      name: 'READ CAPACITY(10)', opcode: 0x25, flags,
      usage: [0x25, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00],
      handler: readCapacity10,
    },
    {
      name: 'READ CAPACITY(16)', opcode: 0x9e, serviceAction: 0x10, flags,
      usage: [0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00],
      handler: readCapacity16,
    },
  ];
}
