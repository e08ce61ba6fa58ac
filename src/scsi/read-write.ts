/**
 * SBC-3 medium access: READ, WRITE, WRITE AND VERIFY, VERIFY (6/10/12/16 as they exist),
 * PRE-FETCH and SYNCHRONIZE CACHE.
 *
 * The READ/WRITE path is thin on purpose: CDB fields are read straight from the Buffer,
 * one BlockDevice call per command, READ data lands in the Buffer that is transmitted and
 * WRITE data goes from the transport's Buffer to the backstore without a copy.
 *
 * Residuals (SAM-5 / RFC 7143): a WRITE whose expected data transfer length (EDTL) is
 * shorter than the CDB describes writes the whole blocks the EDTL covers and completes
 * GOOD (the transport reports the overflow); an EDTL that is not a multiple of the block
 * size is refused with INVALID FIELD IN INFORMATION UNIT before any data is taken.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag, CommandHandler } from './command-table';
import { u16, u32, u64 } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb } from './sense';
import { stopIfAborted } from './task-set';

const GOOD: ScsiResult = Object.freeze({ status: ScsiStatus.Good });

function checkTransferLength(lu: LogicalUnit, blocks: number, tlByte: number): void {
  if (blocks > lu.maxTransferBlocks) throw invalidFieldInCdb(tlByte, 7);
}

async function readBlocks(lu: LogicalUnit, task: Task, lba: number, blocks: number, fua: boolean, tlByte: number): Promise<ScsiResult> {
  checkTransferLength(lu, blocks, tlByte);
  lu.checkRange(lba, blocks);
  if (blocks === 0) return GOOD;
  const length = blocks * lu.blockSize;
  const lock = lu.orderRange(lba, blocks, false);
  try {
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    // FUA on a read: the data must come from the medium, so write back a volatile cache first.
    if (fua && lu.mode.wce && lu.settings.emulate_fua_read === 1) await lu.device.flush({ signal: task.signal });
    const into = task.command.dataInBuffer?.(length) ?? Buffer.allocUnsafe(length);
    const data = await lu.device.read(lba * lu.blockSize, length, into, { signal: task.signal });
    return { status: ScsiStatus.Good, data };
  } finally {
    lu.locks.release(lock);
  }
}

/**
 * The bytes of Data-Out to take: the whole blocks covered by min(CDB length, EDTL).
 * Sets the task's data-out transfer length (what the CDB describes) for residuals.
 */
function dataOutBytes(lu: LogicalUnit, task: Task, described: number): number {
  task.dataOutTransferLength = described;
  const expected = Math.min(described, task.command.dataOutLength);
  if (expected % lu.blockSize !== 0) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInInformationUnit);
  return expected;
}

async function writeBlocks(
  lu: LogicalUnit, task: Task, lba: number, blocks: number, fua: boolean, tlByte: number, verify?: boolean,
): Promise<ScsiResult> {
  const bs = lu.blockSize;
  task.dataOutTransferLength = blocks * bs;
  checkTransferLength(lu, blocks, tlByte);
  lu.checkRange(lba, blocks);
  lu.checkWritable();
  const bytes = dataOutBytes(lu, task, blocks * bs);
  if (bytes === 0) return { status: ScsiStatus.Good, dataOutTransferLength: blocks * bs };
  const lock = lu.orderRange(lba, bytes / bs, true);
  try {
    const data = await lu.receiveDataOut(task, bytes);
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    // WRITE AND VERIFY verifies the medium, so its data must be on the medium first.
    await lu.device.write(lba * bs, data, { fua: verify !== undefined || lu.writeFua(fua), signal: task.signal });
    if (verify !== undefined) {
      const back = await lu.device.read(lba * bs, bytes, Buffer.allocUnsafe(bytes), { signal: task.signal });
      if (verify) miscompareCheck(data, back);
    }
    return { status: ScsiStatus.Good, dataOutTransferLength: blocks * bs };
  } finally {
    lu.locks.release(lock);
  }
}

/** Offset of the first differing byte, or -1 when equal. */
export function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  const step = 4096;
  for (let at = 0; at < n; at += step) {
    const end = Math.min(n, at + step);
    if (a.compare(b, at, end, at, end) !== 0) {
      for (let i = at; i < end; i++) if (a[i] !== b[i]) return i;
    }
  }
  return n;
}

/** MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset of the first difference. */
function miscompareCheck(expected: Buffer, actual: Buffer, base = 0): void {
  const at = firstDifference(expected, actual);
  if (at >= 0) throw new SenseError(SenseKey.Miscompare, Asc.MiscompareDuringVerify, base + at);
}

/** VERIFY: BYTCHK 00b medium verification, 01b compare, 11b compare one block with each. */
async function verifyBlocks(lu: LogicalUnit, task: Task, lba: number, blocks: number, bytchk: number, tlByte: number): Promise<ScsiResult> {
  const bs = lu.blockSize;
  if (bytchk === 2) throw invalidFieldInCdb(1, 2);
  const described = bytchk === 0 ? 0 : bytchk === 1 ? blocks * bs : blocks > 0 ? bs : 0;
  if (bytchk !== 0) task.dataOutTransferLength = described;
  checkTransferLength(lu, blocks, tlByte);
  lu.checkRange(lba, blocks);
  const done: ScsiResult = bytchk === 0 ? GOOD : { status: ScsiStatus.Good, dataOutTransferLength: described };
  if (blocks === 0) return done;
  let expected: Buffer | undefined;
  let count = blocks;
  const lock = lu.orderRange(lba, blocks, false);
  try {
    if (bytchk !== 0) {
      const bytes = dataOutBytes(lu, task, described);
      if (bytes === 0) return done;
      expected = await lu.receiveDataOut(task, bytes);
      if (bytchk === 1) count = bytes / bs;
    }
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    const actual = await lu.device.read(lba * bs, count * bs, Buffer.allocUnsafe(count * bs), { signal: task.signal });
    if (bytchk === 1 && expected) miscompareCheck(expected, actual);
    if (bytchk === 3 && expected) {
      for (let i = 0; i < count; i++) miscompareCheck(expected, actual.subarray(i * bs, (i + 1) * bs), i * bs);
    }
    return done;
  } finally {
    lu.locks.release(lock);
  }
}

/**
 * PRE-FETCH: the range is checked, then GOOD. This LU keeps no cache of its own, and SBC-3
 * §5.8 says a device server whose cache cannot take all of the blocks returns GOOD (CONDITION
 * MET would claim the blocks are now cached).
 */
function prefetch(lu: LogicalUnit, lba: number, blocks: number): ScsiResult {
  lu.checkRange(lba, blocks);
  return GOOD;
}

/**
 * SYNCHRONIZE CACHE: every completed write becomes durable (IMMED: status first). GOOD only
 * when no write-back failure happened since this I_T nexus last heard of one (GuardedDevice
 * flushFor): a failed IMMED flush, or one another nexus saw, is reported here.
 */
async function synchronizeCache(lu: LogicalUnit, task: Task, lba: number, blocks: number): Promise<ScsiResult> {
  lu.checkRange(lba, blocks);
  if (task.command.cdb[1] & 0x02) {
    lu.device.flush().catch((err: unknown) => lu.log.error({ err }, 'SYNCHRONIZE CACHE (IMMED) failed'));
    return GOOD;
  }
  await lu.device.flushFor(lu.writeBackObserver(task.command.nexus.key), { signal: task.signal });
  return GOOD;
}

const FUA = 0x08;

const read6: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return readBlocks(lu, task, ((c[1] & 0x1f) << 16) | u16(c, 2), c[4] === 0 ? 256 : c[4], false, 4);
};
const read10: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return readBlocks(lu, task, u32(c, 2), u16(c, 7), (c[1] & FUA) !== 0, 7);
};
const read12: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return readBlocks(lu, task, u32(c, 2), u32(c, 6), (c[1] & FUA) !== 0, 6);
};
const read16: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return readBlocks(lu, task, u64(c, 2), u32(c, 10), (c[1] & FUA) !== 0, 10);
};
const write6: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, ((c[1] & 0x1f) << 16) | u16(c, 2), c[4] === 0 ? 256 : c[4], false, 4);
};
const write10: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u32(c, 2), u16(c, 7), (c[1] & FUA) !== 0, 7);
};
const write12: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u32(c, 2), u32(c, 6), (c[1] & FUA) !== 0, 6);
};
const write16: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u64(c, 2), u32(c, 10), (c[1] & FUA) !== 0, 10);
};
const writeVerify10: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u32(c, 2), u16(c, 7), false, 7, (c[1] & 0x02) !== 0);
};
const writeVerify12: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u32(c, 2), u32(c, 6), false, 6, (c[1] & 0x02) !== 0);
};
const writeVerify16: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return writeBlocks(lu, task, u64(c, 2), u32(c, 10), false, 10, (c[1] & 0x02) !== 0);
};
const verify10: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return verifyBlocks(lu, task, u32(c, 2), u16(c, 7), (c[1] >> 1) & 0x03, 7);
};
const verify12: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return verifyBlocks(lu, task, u32(c, 2), u32(c, 6), (c[1] >> 1) & 0x03, 6);
};
const verify16: CommandHandler = (lu, task) => {
  const c = task.command.cdb;
  return verifyBlocks(lu, task, u64(c, 2), u32(c, 10), (c[1] >> 1) & 0x03, 10);
};

const medium = CommandFlag.NeedsMedium;
const READ = medium | CommandFlag.ReadClass;
const WRITE = medium | CommandFlag.MediumWrite | CommandFlag.DataOut;
const VERIFY = medium | CommandFlag.ReadClass | CommandFlag.DataOut;
const IO_TIMEOUTS: readonly [number, number] = [1, 30];

/** The medium-access commands; DPO/FUA bits exist only when DPOFUA is advertised. */
export function readWriteCommands(dpofua: boolean): CommandDefinition[] {
  const df = dpofua ? 0x18 : 0x00; // DPO, FUA
  const dpo = dpofua ? 0x10 : 0x00;
  const L4 = [0xff, 0xff, 0xff, 0xff];
  const L8 = [...L4, ...L4];
  const PROTECT = [0, 0x60]; // RDPROTECT / WRPROTECT / VRPROTECT: bits 7..5 of byte 1
  return [
    { name: 'READ(6)', opcode: 0x08, flags: READ, timeouts: IO_TIMEOUTS, usage: [0x08, 0x1f, 0xff, 0xff, 0xff, 0x00], handler: read6 },
    { name: 'WRITE(6)', opcode: 0x0a, flags: WRITE, timeouts: IO_TIMEOUTS, usage: [0x0a, 0x1f, 0xff, 0xff, 0xff, 0x00], handler: write6 },
    {
      name: 'READ(10)', opcode: 0x28, flags: READ, timeouts: IO_TIMEOUTS, handler: read10,
      fields: PROTECT, usage: [0x28, df, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'WRITE(10)', opcode: 0x2a, flags: WRITE, timeouts: IO_TIMEOUTS, handler: write10,
      fields: PROTECT, usage: [0x2a, df, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'WRITE AND VERIFY(10)', opcode: 0x2e, flags: WRITE, timeouts: IO_TIMEOUTS, handler: writeVerify10,
      fields: PROTECT, usage: [0x2e, dpo | 0x02, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'VERIFY(10)', opcode: 0x2f, flags: VERIFY, timeouts: IO_TIMEOUTS, handler: verify10,
      fields: PROTECT, usage: [0x2f, dpo | 0x06, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'PRE-FETCH(10)', opcode: 0x34, flags: READ, handler: (lu, task) => prefetch(lu, u32(task.command.cdb, 2), u16(task.command.cdb, 7)),
      usage: [0x34, 0x02, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'SYNCHRONIZE CACHE(10)', opcode: 0x35, flags: medium | CommandFlag.MediumWrite, timeouts: [1, 60],
      handler: (lu, task) => synchronizeCache(lu, task, u32(task.command.cdb, 2), u16(task.command.cdb, 7)),
      usage: [0x35, 0x02, ...L4, 0x00, 0xff, 0xff, 0x00], ignored: [0, 0x04, 0, 0, 0, 0, 0x1f, 0, 0, 0],
    },
    {
      name: 'READ(16)', opcode: 0x88, flags: READ, timeouts: IO_TIMEOUTS, handler: read16,
      fields: PROTECT, usage: [0x88, df, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'WRITE(16)', opcode: 0x8a, flags: WRITE, timeouts: IO_TIMEOUTS, handler: write16,
      fields: PROTECT, usage: [0x8a, df, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'WRITE AND VERIFY(16)', opcode: 0x8e, flags: WRITE, timeouts: IO_TIMEOUTS, handler: writeVerify16,
      fields: PROTECT, usage: [0x8e, dpo | 0x02, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'VERIFY(16)', opcode: 0x8f, flags: VERIFY, timeouts: IO_TIMEOUTS, handler: verify16,
      fields: PROTECT, usage: [0x8f, dpo | 0x06, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'PRE-FETCH(16)', opcode: 0x90, flags: READ, handler: (lu, task) => prefetch(lu, u64(task.command.cdb, 2), u32(task.command.cdb, 10)),
      usage: [0x90, 0x02, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'SYNCHRONIZE CACHE(16)', opcode: 0x91, flags: medium | CommandFlag.MediumWrite, timeouts: [1, 60],
      handler: (lu, task) => synchronizeCache(lu, task, u64(task.command.cdb, 2), u32(task.command.cdb, 10)),
      usage: [0x91, 0x02, ...L8, ...L4, 0x00, 0x00], ignored: [0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'READ(12)', opcode: 0xa8, flags: READ, timeouts: IO_TIMEOUTS, handler: read12,
      fields: PROTECT, usage: [0xa8, df, ...L4, ...L4, 0x00, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'WRITE(12)', opcode: 0xaa, flags: WRITE, timeouts: IO_TIMEOUTS, handler: write12,
      fields: PROTECT, usage: [0xaa, df, ...L4, ...L4, 0x00, 0x00], ignored: [0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'WRITE AND VERIFY(12)', opcode: 0xae, flags: WRITE, timeouts: IO_TIMEOUTS, handler: writeVerify12,
      fields: PROTECT, usage: [0xae, dpo | 0x02, ...L4, ...L4, 0x00, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
    {
      name: 'VERIFY(12)', opcode: 0xaf, flags: VERIFY, timeouts: IO_TIMEOUTS, handler: verify12,
      fields: PROTECT, usage: [0xaf, dpo | 0x06, ...L4, ...L4, 0x00, 0x00], ignored: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0],
    },
  ];
}

