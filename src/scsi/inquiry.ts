/**
 * INQUIRY (SPC-4 §6.6): standard data and the VPD pages of vpd.ts. INQUIRY neither reports
 * nor clears unit attentions. For a LUN that does not exist the target answers with
 * peripheral qualifier 011b / device type 1Fh (standardInquiryNoLun).
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16 } from './cdb';
import { invalidFieldInCdb } from './sense';
import { tpgsBits } from './alua';
import { PRODUCT_ID, PRODUCT_REVISION, VENDOR_ID, ascii, vpdPage } from './vpd';

/** Standard INQUIRY data length (SPC-4: bytes 74..95 reserved, sent as zeros). */
const STANDARD_LENGTH = 96;

/** Version descriptors (SPC-4 table 146): SAM-5, iSCSI, SPC-4, SBC-3. */
const VERSION_DESCRIPTORS = [0x00a0, 0x0960, 0x0460, 0x04c0];

function standardInquiry(lu: LogicalUnit | undefined): Buffer {
  const b = Buffer.alloc(STANDARD_LENGTH);
  if (!lu) {
    b[0] = 0x7f; // peripheral qualifier 011b, device type 1Fh: no logical unit here
  } else {
    b[0] = 0x00; // connected direct-access block device
    if (lu.removable) b[1] = 0x80; // RMB
    b[5] = lu.commands.find(0x83, 0x00) ? 0x08 : 0x00; // 3PC: EXTENDED COPY
    if (lu.alua) b[5] |= tpgsBits(lu.alua.mode) << 4; // TPGS: implicit and/or explicit ALUA
    b[7] = 0x02; // CMDQUE
  }
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
  b[4] = STANDARD_LENGTH - 5;
  ascii(VENDOR_ID, 8).copy(b, 8);
  const product = lu && lu.settings.emulate_model_alias === 1 ? lu.name : PRODUCT_ID;
  ascii(product, 16).copy(b, 16);
  ascii(PRODUCT_REVISION, 4).copy(b, 32);
  VERSION_DESCRIPTORS.forEach((v, i) => b.writeUInt16BE(v, 58 + 2 * i));
  return b;
}

/** INQUIRY addressed to a LUN without a logical unit: standard data only. */
export function inquiryNoLun(cdb: Buffer): Buffer {
  if (cdb[1] & 0x01) throw invalidFieldInCdb(1, 0);
  if (cdb[2] !== 0) throw invalidFieldInCdb(2, 7);
  const data = standardInquiry(undefined);
  return data.subarray(0, Math.min(data.length, u16(cdb, 3)));
}

function inquiry(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const evpd = (cdb[1] & 0x01) !== 0;
  const code = cdb[2];
  const alloc = u16(cdb, 3);
  let data: Buffer | undefined;
  if (!evpd) {
    if (code !== 0) throw invalidFieldInCdb(2, 7);
    data = standardInquiry(lu);
  } else {
    data = vpdPage(lu, code, task.command.nexus);
    if (!data) throw invalidFieldInCdb(2, 7);
  }
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

export function inquiryCommands(): CommandDefinition[] {
  return [{
    name: 'INQUIRY', opcode: 0x12, flags: CommandFlag.NoUnitAttention | CommandFlag.ReservationAllowed,
    usage: [0x12, 0x01, 0xff, 0xff, 0xff, 0x00],
    handler: inquiry,
  }];
}
