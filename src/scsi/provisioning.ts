/**
 * Logical block provisioning (SBC-3 §4.7): UNMAP, WRITE SAME (10)/(16) and GET LBA STATUS.
 *
 * UNMAP exists with emulate_tpu=1 and the UNMAP bit of WRITE SAME with emulate_tpws=1, both
 * only on a backstore that can discard. Either makes the LU thin (LBPME=1). Anchored blocks
 * (ANCHOR) are not offered: ANC_SUP=0. WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 writes to
 * the end of the medium (WSNZ=0), within MAXIMUM WRITE SAME LENGTH (max_write_same_len).
 * WRITE SAME with UNMAP=1 unmaps the range (the data block is taken but not written).
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag, CommandHandler } from './command-table';
import { u16, u32, u64, writeU64 } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb, invalidFieldInParameterList, lbaOutOfRange, parameterListLengthError } from './sense';
import { provisioning } from './vpd';
import { stopIfAborted } from './task-set';

/** UNMAP (SBC-3 §5.28). */
async function unmap(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const length = u16(cdb, 7);
  task.dataOutTransferLength = length;
  if (length === 0) return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
  if (length < 8) throw parameterListLengthError();
  lu.checkWritable();
  const p = await lu.receiveDataOut(task, Math.min(length, task.command.dataOutLength));
  if (p.length < 8) throw parameterListLengthError();
  const descLength = Math.min(u16(p, 2), p.length - 8);
  const count = Math.floor(descLength / 16);
  if (count > lu.settings.max_unmap_block_desc_count) throw invalidFieldInParameterList(2, 7);
  const cap = lu.capacity();
  const ranges: [number, number][] = [];
  let total = 0;
  let lo = Infinity;
  let hi = 0;
  for (let i = 0; i < count; i++) {
    const at = 8 + 16 * i;
    const lba = u64(p, at);
    const n = u32(p, at + 8);
    if (lba + n > cap) throw lbaOutOfRange();
    total += n;
    if (n === 0) continue;
    ranges.push([lba, n]);
    lo = Math.min(lo, lba);
    hi = Math.max(hi, lba + n);
  }
  if (total > lu.settings.max_unmap_lba_count) throw invalidFieldInParameterList(8 + 8, 7);
  if (ranges.length === 0) return { status: ScsiStatus.Good, dataOutTransferLength: length };
  const lock = lu.orderRange(lo, hi - lo, true);
  try {
    if (lock.ready) await lock.ready;
    const bs = lu.blockSize;
    for (const [lba, n] of ranges) await lu.device.discard(lba * bs, n * bs, { signal: task.signal });
  } finally {
    lu.locks.release(lock);
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: length };
}

/** WRITE SAME (10)/(16) (SBC-3 §5.41, §5.42). */
async function writeSame(lu: LogicalUnit, task: Task, lba: number, blocks: number, nbByte: number): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const unmapBit = (cdb[1] & 0x08) !== 0;
  const ndob = cdb[0] === 0x93 && (cdb[1] & 0x01) !== 0;
  const bs = lu.blockSize;
  task.dataOutTransferLength = ndob ? 0 : bs;
  const cap = lu.capacity();
  if (lba >= cap) throw lbaOutOfRange();
  const n = blocks === 0 ? cap - lba : blocks;
  const max = lu.settings.max_write_same_len;
  if (max !== 0 && n > max) throw invalidFieldInCdb(nbByte, 7);
  lu.checkRange(lba, n);
  lu.checkWritable();
  // The Data-Out buffer is exactly one logical block; an unmap does not need it at all.
  const edtl = task.command.dataOutLength;
  const noData = ndob || (unmapBit && edtl === 0);
  if (!noData && edtl !== bs) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInInformationUnit);
  const lock = lu.orderRange(lba, n, true);
  try {
    const pattern = noData ? Buffer.alloc(bs) : await lu.receiveDataOut(task, bs);
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    // UNMAP=1 asks for an unmap operation whatever the block holds (SBC-4 table 237).
    if (unmapBit) await lu.device.discard(lba * bs, n * bs, { signal: task.signal });
    else await lu.device.writeSame(lba * bs, n * bs, pattern, { fua: lu.writeFua(false), signal: task.signal });
  } finally {
    lu.locks.release(lock);
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: task.dataOutTransferLength };
}

/** Largest range one GET LBA STATUS looks at (keeps a backstore's map query bounded). */
const LBA_STATUS_WINDOW_BYTES = 1 << 30;

/** GET LBA STATUS (SBC-3 §5.7). A fully provisioned LU reports every block mapped. */
async function getLbaStatus(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const start = u64(cdb, 2);
  const alloc = u32(cdb, 10);
  const cap = lu.capacity();
  if (start >= cap) throw lbaOutOfRange();
  const bs = lu.blockSize;
  const maxDescriptors = Math.max(1, Math.floor((Math.min(alloc, 0x10000) - 8) / 16));
  const span = Math.min(cap - start, Math.floor(LBA_STATUS_WINDOW_BYTES / bs));
  const extents = provisioning(lu).lbpme && lu.device.capabilities.mapStatus
    ? await lu.device.mapStatus(start * bs, span * bs, { signal: task.signal })
    : [{ offset: start * bs, length: span * bs, state: 'mapped' as const }];
  const out: Buffer[] = [];
  for (const e of extents) {
    let lba = e.offset / bs;
    let left = e.length / bs;
    while (left > 0 && out.length < maxDescriptors) {
      const n = Math.min(left, 0xffffffff);
      const d = Buffer.alloc(16);
      writeU64(d, lba, 0);
      d.writeUInt32BE(n, 8);
      d[12] = e.state === 'mapped' ? 0 : e.state === 'deallocated' ? 1 : 2;
      out.push(d);
      lba += n;
      left -= n;
    }
    if (out.length >= maxDescriptors) break;
  }
  const data = Buffer.concat([Buffer.alloc(8), ...out]);
  data.writeUInt32BE(data.length - 4, 0);
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

const writeSame10: CommandHandler = (lu, task) => writeSame(lu, task, u32(task.command.cdb, 2), u16(task.command.cdb, 7), 7);
const writeSame16: CommandHandler = (lu, task) => writeSame(lu, task, u64(task.command.cdb, 2), u32(task.command.cdb, 10), 10);

export function provisioningCommands(unmapSupported: boolean, writeSameUnmap: boolean): CommandDefinition[] {
  const medium = CommandFlag.NeedsMedium;
  const ws = writeSameUnmap ? 0x08 : 0x00; // UNMAP bit
  const L4 = [0xff, 0xff, 0xff, 0xff];
  const PROTECT = [0, 0x60];
  const defs: CommandDefinition[] = [
    {
      name: 'WRITE SAME(10)', opcode: 0x41, flags: medium | CommandFlag.MediumWrite | CommandFlag.DataOut, timeouts: [1, 60],
      usage: [0x41, ws, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0], fields: PROTECT,
      handler: writeSame10,
    },
    {
      name: 'WRITE SAME(16)', opcode: 0x93, flags: medium | CommandFlag.MediumWrite | CommandFlag.DataOut, timeouts: [1, 60],
      usage: [0x93, ws | 0x01, ...L4, ...L4, ...L4, 0x00, 0x00], fields: PROTECT,
      ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
      handler: writeSame16,
    },
    {
      name: 'GET LBA STATUS', opcode: 0x9e, serviceAction: 0x12, flags: medium | CommandFlag.ReadClass,
      usage: [0x9e, 0x12, ...L4, ...L4, ...L4, 0x00, 0x00],
      handler: getLbaStatus,
    },
  ];
  if (unmapSupported) {
    defs.push({
      name: 'UNMAP', opcode: 0x42, flags: medium | CommandFlag.MediumWrite | CommandFlag.DataOut, timeouts: [1, 60],
      usage: [0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0],
      handler: unmap,
    });
  }
  return defs;
}
