/**
 * Read-modify-write commands that must be atomic: COMPARE AND WRITE (SBC-3 §5.2, VMware ATS),
 * ORWRITE (16) (SBC-3 §5.9) and WRITE ATOMIC (16) (SBC-4 §5.48).
 *
 * Each holds an exclusive range lock for its LBAs from arrival to completion; every write of
 * every I_T nexus takes a range lock too (logical-unit.ts orderRange), so no other write can
 * land between the read and the write. Across gateways (HA) the same image needs a shared
 * lock; that is the HA milestone's concern.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16, u32, u64 } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb } from './sense';
import { firstDifference } from './read-write';
import { stopIfAborted } from './task-set';
import { BlockDeviceError } from '../block/block-device';

async function locked<T>(lu: LogicalUnit, lba: number, blocks: number, task: Task, run: () => Promise<T>): Promise<T> {
  const lock = lu.locks.acquire(lba, blocks, true);
  try {
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    return await run();
  } finally {
    lu.locks.release(lock);
  }
}

/**
 * COMPARE AND WRITE: the Data-Out buffer is N verify blocks then N write blocks, so its
 * length must be exactly 2N blocks; anything else is refused at the NUMBER OF LOGICAL BLOCKS
 * field (libiscsi CompareAndWrite.InvalidDataOutSize and the 256-block case).
 */
async function compareAndWrite(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const lba = u64(cdb, 2);
  const blocks = cdb[13];
  const fua = (cdb[1] & 0x08) !== 0;
  const bs = lu.blockSize;
  const bytes = 2 * blocks * bs;
  task.dataOutTransferLength = bytes;
  if (blocks > lu.maxCompareAndWriteBlocks) throw invalidFieldInCdb(13, 7);
  if (task.command.dataOutLength !== bytes) throw invalidFieldInCdb(13, 7);
  lu.checkRange(lba, blocks);
  lu.checkWritable();
  if (blocks === 0) return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
  const lock = lu.locks.acquire(lba, blocks, true);
  try {
    const data = await lu.receiveDataOut(task, bytes);
    if (lock.ready) await lock.ready;
    stopIfAborted(task);
    const half = blocks * bs;
    // Offloaded where the backstore can (RBD: atomic at the OSD, across gateways).
    const offloaded = await lu.device.compareAndWrite(lba * bs, data.subarray(0, half), data.subarray(half), { fua: lu.writeFua(fua), signal: task.signal })
      .catch((e: unknown) => {
        // Emulating it is only sound when no other gateway writes the medium (active/active RBD).
        if (e instanceof BlockDeviceError && e.kind === 'unsupported' && lu.device.capabilities.sharedCompareAndWriteBytes === undefined) return undefined;
        throw e;
      });
    if (offloaded !== undefined) {
      if (offloaded >= 0) throw new SenseError(SenseKey.Miscompare, Asc.MiscompareDuringVerify, offloaded);
      return { status: ScsiStatus.Good, dataOutTransferLength: bytes };
    }
    const current = await lu.device.read(lba * bs, half, Buffer.allocUnsafe(half), { signal: task.signal });
    const at = firstDifference(data.subarray(0, half), current);
    if (at >= 0) throw new SenseError(SenseKey.Miscompare, Asc.MiscompareDuringVerify, at);
    await lu.device.write(lba * bs, data.subarray(half), { fua: lu.writeFua(fua), signal: task.signal });
  } finally {
    lu.locks.release(lock);
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: bytes };
}

/** ORWRITE (16): each byte on the medium becomes (medium OR data). */
async function orWrite(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const lba = u64(cdb, 2);
  const blocks = u32(cdb, 10);
  const fua = (cdb[1] & 0x08) !== 0;
  const bs = lu.blockSize;
  task.dataOutTransferLength = blocks * bs;
  if (blocks > lu.maxTransferBlocks) throw invalidFieldInCdb(10, 7);
  lu.checkRange(lba, blocks);
  lu.checkWritable();
  const bytes = Math.min(blocks * bs, task.command.dataOutLength);
  if (bytes % bs !== 0) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInInformationUnit);
  if (bytes > 0) {
    const data = await lu.receiveDataOut(task, bytes);
    const shared = lu.device.capabilities.sharedCompareAndWriteBytes;
    await locked(lu, lba, bytes / bs, task, async () => {
      if (shared !== undefined) return orWriteShared(lu, task, lba * bs, data, shared, lu.writeFua(fua));
      // A device whose writer moves between gateways does it in one turn of ownership.
      if (lu.device.orWrite) return lu.device.orWrite(lba * bs, data, { fua: lu.writeFua(fua), signal: task.signal });
      const current = await lu.device.read(lba * bs, bytes, Buffer.allocUnsafe(bytes), { signal: task.signal });
      for (let i = 0; i < bytes; i++) current[i] |= data[i];
      await lu.device.write(lba * bs, current, { fua: lu.writeFua(fua), signal: task.signal });
    });
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: blocks * bs };
}

/** Attempts of one sector's OR against writes of other gateways before giving up (retryable). */
const OR_RETRIES = 64;
/** Sectors ORed at once (the backstore bounds what is inside librbd anyway). */
const OR_PARALLEL = 32;

/**
 * ORWRITE on a medium other gateways write too (active/active RBD): a read and a write under
 * this gateway's range lock could overwrite a block another gateway wrote in between (an
 * acknowledged write lost). OR is bytewise, so each sector is ORed on its own with the
 * backstore's atomic COMPARE AND WRITE (the OSD's), in parallel, and a sector that changed
 * since it was read is re-read and retried.
 */
async function orWriteShared(lu: LogicalUnit, task: Task, offset: number, data: Buffer, unit: number, fua: boolean): Promise<void> {
  const device = lu.device;
  if (unit <= 0 || !device.compareAndWrite || data.length % unit !== 0) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidCommandOperationCode);
  const first = await device.read(offset, data.length, Buffer.allocUnsafe(data.length), { signal: task.signal });
  const sectors = data.length / unit;
  const orSector = async (k: number): Promise<void> => {
    let current = first.subarray(k * unit, (k + 1) * unit);
    for (let attempt = 0; ; attempt++) {
      stopIfAborted(task);
      const next = Buffer.from(current);
      for (let i = 0; i < unit; i++) next[i] |= data[k * unit + i];
      if (next.equals(current)) return;
      if ((await device.compareAndWrite!(offset + k * unit, current, next, { fua, signal: task.signal })) < 0) return;
      if (attempt >= OR_RETRIES) throw new SenseError(SenseKey.AbortedCommand, Asc.NoAdditionalSense);
      current = await device.read(offset + k * unit, unit, Buffer.allocUnsafe(unit), { signal: task.signal });
    }
  };
  let taken = 0;
  const worker = async (): Promise<void> => {
    while (taken < sectors) await orSector(taken++);
  };
  await Promise.all(Array.from({ length: Math.min(OR_PARALLEL, sectors) }, worker));
}

/**
 * WRITE ATOMIC (16): one backstore write flagged atomic, which the backstore makes
 * all-or-nothing within its limits
 * (Block Limits VPD: MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT, ATOMIC TRANSFER LENGTH
 * GRANULARITY). The range is checked first, then the atomic limits (SBC-4 §5.48).
 */
async function writeAtomic(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const lba = u64(cdb, 2);
  const blocks = u16(cdb, 12);
  const fua = (cdb[1] & 0x08) !== 0;
  const bs = lu.blockSize;
  task.dataOutTransferLength = blocks * bs;
  lu.checkRange(lba, blocks);
  const unit = lu.atomicAlignmentBlocks;
  if (blocks > lu.maxAtomicTransferBlocks || blocks % unit !== 0) throw invalidFieldInCdb(12, 7);
  if (lba % unit !== 0) throw invalidFieldInCdb(2, 7);
  lu.checkWritable();
  // Partial atomic writes make no sense: the EDTL must cover the whole transfer.
  if (task.command.dataOutLength !== blocks * bs) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInInformationUnit);
  if (blocks > 0) {
    const data = await lu.receiveDataOut(task, blocks * bs);
    await locked(lu, lba, blocks, task, () => lu.device.write(lba * bs, data, { fua: lu.writeFua(fua), atomic: true, signal: task.signal }));
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: blocks * bs };
}

export function atomicWriteCommands(options: { compareAndWrite: boolean; writeAtomic: boolean; dpofua: boolean }): CommandDefinition[] {
  const flags = CommandFlag.NeedsMedium | CommandFlag.MediumWrite | CommandFlag.DataOut;
  const df = options.dpofua ? 0x18 : 0x00;
  const L4 = [0xff, 0xff, 0xff, 0xff];
  const PROTECT = [0, 0x60];
  const GROUP16 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0];
  const defs: CommandDefinition[] = [{
    name: 'ORWRITE(16)', opcode: 0x8b, flags, timeouts: [1, 30], fields: PROTECT,
    usage: [0x8b, df, ...L4, ...L4, ...L4, 0x00, 0x00], ignored: [0, 0x02, ...GROUP16.slice(2)],
    handler: orWrite,
  }];
  if (options.compareAndWrite) {
    defs.push({
      name: 'COMPARE AND WRITE', opcode: 0x89, flags, timeouts: [1, 30], fields: PROTECT,
      usage: [0x89, df, ...L4, ...L4, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00], ignored: [0, 0x02, ...GROUP16.slice(2)],
      handler: compareAndWrite,
    });
  }
  if (options.writeAtomic) {
    defs.push({
      name: 'WRITE ATOMIC(16)', opcode: 0x9c, flags, timeouts: [1, 30], fields: PROTECT,
      usage: [0x9c, df, ...L4, ...L4, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00], ignored: GROUP16,
      handler: writeAtomic,
    });
  }
  return defs;
}
