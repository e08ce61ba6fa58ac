/**
 * The copy manager: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 §6.4, §6.18),
 * VMware's "full copy" (clone) offload.
 *
 * Copy targets are named by identification descriptor target descriptors (E4h) carrying
 * an NAA designator from VPD page 83h; they are looked up among all logical units of the
 * gateway, so a copy may go from one target's LU to another's. Segments are block-to-block
 * (02h). Data moves in chunks of at most MAXIMUM TRANSFER LENGTH through the backstores,
 * under the same range locks as READ and WRITE, the next chunk read while the last is
 * written; deallocated source ranges are not moved at all (they stay holes on a thin
 * destination). The copy runs inside the command.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { ITNexus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16, u32, u64 } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError } from './sense';
import { stopIfAborted } from './task-set';

const HEADER = 16;
const TARGET_DESCRIPTOR = 32;
const BLOCK_TO_BLOCK = 0x02;
const IDENTIFICATION_DESCRIPTOR = 0xe4;
const BLOCK_SEGMENT_LENGTH = 28;

/** Copy manager limits (RECEIVE COPY RESULTS OPERATING PARAMETERS). */
export const MAX_TARGET_DESCRIPTORS = 8;
export const MAX_SEGMENT_DESCRIPTORS = 64;
export const MAX_DESCRIPTOR_LIST_LENGTH = 4096;
export const MAX_CONCURRENT_COPIES = 16;

const enum ListIdUsage { Hold = 0, Discard = 2, Disable = 3 }
const enum CopyStatus { InProgress = 0x00, Completed = 0x01, Failed = 0x02 }

/** What RECEIVE COPY RESULTS reports about one EXTENDED COPY (held per I_T nexus and list id). */
export interface CopyResult {
  status: CopyStatus;
  segmentsProcessed: number;
  bytes: number;
  sense?: Buffer;
}

/** Copy results kept for RECEIVE COPY RESULTS, per I_T nexus; the oldest are dropped. */
export class CopyResults {
  private readonly byNexus = new Map<string, Map<number, CopyResult>>();
  private static readonly PER_NEXUS = 32;

  get(nexusKey: string, listId: number): CopyResult | undefined {
    return this.byNexus.get(nexusKey)?.get(listId);
  }

  set(nexusKey: string, listId: number, r: CopyResult): void {
    let m = this.byNexus.get(nexusKey);
    if (!m) this.byNexus.set(nexusKey, (m = new Map()));
    m.delete(listId);
    m.set(listId, r);
    if (m.size > CopyResults.PER_NEXUS) m.delete(m.keys().next().value as number);
  }

  delete(nexusKey: string, listId: number): void {
    this.byNexus.get(nexusKey)?.delete(listId);
  }

  forget(nexusKey: string): void {
    this.byNexus.delete(nexusKey);
  }
}

function copyAborted(asc: Asc, segment: number): SenseError {
  return new SenseError(SenseKey.CopyAborted, asc, undefined, undefined, segment);
}

interface Segment {
  readonly type: number;
  readonly length: number;
  readonly src: number;
  readonly dst: number;
  readonly blocks: number;
  readonly srcLba: number;
  readonly dstLba: number;
  readonly destinationCount: boolean;
}

/** Parse and check the parameter list (order of checks as libiscsi ExtendedCopy expects). */
function parse(p: Buffer): { listId: number; usage: number; targets: Buffer[]; segments: Segment[] } {
  if (p.length < HEADER) throw parameterListLengthError();
  const listId = p[0];
  const usage = (p[1] >> 3) & 0x03;
  if (usage === 1) throw invalidFieldInParameterList(1, 4);
  const targetLength = u16(p, 2);
  const segmentLength = u32(p, 8);
  const inlineLength = u32(p, 12);
  if (HEADER + targetLength + segmentLength + inlineLength > p.length) throw parameterListLengthError();
  if (targetLength + segmentLength > MAX_DESCRIPTOR_LIST_LENGTH) throw parameterListLengthError();
  if (inlineLength !== 0) throw invalidFieldInParameterList(12, 7); // no inline data (limit 0)
  if (targetLength % TARGET_DESCRIPTOR !== 0) throw invalidFieldInParameterList(2, 7);
  const targetCount = targetLength / TARGET_DESCRIPTOR;
  if (targetCount > MAX_TARGET_DESCRIPTORS) throw new SenseError(SenseKey.IllegalRequest, Asc.TooManyTargetDescriptors);
  const targets: Buffer[] = [];
  for (let i = 0; i < targetCount; i++) targets.push(p.subarray(HEADER + TARGET_DESCRIPTOR * i, HEADER + TARGET_DESCRIPTOR * (i + 1)));
  const segments: Segment[] = [];
  const segEnd = HEADER + targetLength + segmentLength;
  for (let at = HEADER + targetLength; at < segEnd;) {
    if (segEnd - at < 4) throw parameterListLengthError();
    const length = 4 + u16(p, at + 2);
    if (at + length > segEnd) throw parameterListLengthError();
    if (segments.length >= MAX_SEGMENT_DESCRIPTORS) throw new SenseError(SenseKey.IllegalRequest, Asc.TooManySegmentDescriptors);
    const b2b = p[at] === BLOCK_TO_BLOCK && length === BLOCK_SEGMENT_LENGTH;
    segments.push({
      type: p[at], length, src: u16(p, at + 4), dst: u16(p, at + 6), blocks: b2b ? u16(p, at + 10) : 0,
      srcLba: b2b ? u64(p, at + 12) : 0, dstLba: b2b ? u64(p, at + 20) : 0, destinationCount: (p[at + 1] & 0x02) !== 0,
    });
    at += length;
  }
  for (const t of targets) {
    if (t[0] !== IDENTIFICATION_DESCRIPTOR) {
      throw new SenseError(SenseKey.IllegalRequest, Asc.UnsupportedTargetDescriptorTypeCode, undefined, { cdb: false, byte: HEADER + targets.indexOf(t) * TARGET_DESCRIPTOR });
    }
  }
  segments.forEach((s, i) => {
    if (s.type !== BLOCK_TO_BLOCK || s.length !== BLOCK_SEGMENT_LENGTH) {
      throw new SenseError(SenseKey.IllegalRequest, Asc.UnsupportedSegmentDescriptorTypeCode, undefined, undefined, i);
    }
  });
  return { listId, usage, targets, segments };
}

/** Resolve an identification descriptor (E4h) to a block logical unit of this gateway. */
function resolve(lu: LogicalUnit, nexus: ITNexus, t: Buffer, segment: number): LogicalUnit {
  const deviceType = t[1] & 0x1f;
  const codeSet = t[4] & 0x0f;
  const association = (t[5] >> 4) & 0x03;
  const designatorType = t[5] & 0x0f;
  const length = t[7];
  if (deviceType !== 0 || codeSet !== 1 || association !== 0 || designatorType !== 3 || length !== 8) {
    throw copyAborted(Asc.UnreachableCopyTarget, segment);
  }
  // Only LUs this initiator may access: LUN masking must not be bypassed by a copy (LIO CVE-2020-28374).
  const target = lu.target.findLogicalUnit(t.subarray(8, 16), nexus.initiatorName);
  if (!target) throw copyAborted(Asc.UnreachableCopyTarget, segment);
  const blockLength = t.readUIntBE(29, 3);
  if (blockLength !== target.blockSize) throw copyAborted(Asc.UnreachableCopyTarget, segment);
  return target;
}

/** One chunk of a segment: where it reads and writes, in blocks. */
interface Chunk {
  readonly src: number;
  readonly dst: number;
  readonly n: number;
}

/**
 * Read a chunk of the source under its range lock: the data, or `undefined` when every block
 * of it is deallocated on a source whose holes read as zeros (a thin source is copied
 * without reading or writing its holes).
 */
async function readChunk(src: LogicalUnit, c: Chunk, signal: AbortSignal): Promise<Buffer | undefined> {
  const bs = src.blockSize;
  const caps = src.device.capabilities;
  if (caps.mapStatus && caps.discardZeroes) {
    const extents = await src.device.mapStatus(c.src * bs, c.n * bs, { signal });
    if (extents.every((e) => e.state !== 'mapped')) return undefined;
  }
  return src.device.read(c.src * bs, c.n * bs, Buffer.allocUnsafe(c.n * bs), { signal });
}

/** Write a chunk to the destination: the data, or zeros (a hole where the LU is thin). */
async function writeChunk(dst: LogicalUnit, c: Chunk, data: Buffer | undefined, signal: AbortSignal): Promise<void> {
  const bs = dst.blockSize;
  if (data) {
    await dst.device.write(c.dst * bs, data, { fua: dst.writeFua(false), signal });
    return;
  }
  // Zeros: a thin destination whose holes read as zeros keeps them as holes.
  const thin = dst.device.capabilities.discard && dst.device.capabilities.discardZeroes;
  await dst.device.writeSame(c.dst * bs, c.n * bs, Buffer.alloc(bs), { deallocate: thin, fua: dst.writeFua(false), signal });
}

/**
 * Copy one block-to-block segment in chunks of at most MAXIMUM TRANSFER LENGTH, reading the
 * next chunk while the previous one is written. Each chunk holds a shared lock on its source
 * and an exclusive one on its destination range (one exclusive lock within a single LU) from
 * its read to its write, so it is ordered like a READ followed by a WRITE.
 */
async function copySegment(lu: LogicalUnit, task: Task, nexus: ITNexus, targets: Buffer[], s: Segment, index: number, result: CopyResult): Promise<void> {
  if (s.src >= targets.length || s.dst >= targets.length) throw copyAborted(Asc.UnreachableCopyTarget, index);
  const src = resolve(lu, nexus, targets[s.src], index);
  const dst = resolve(lu, nexus, targets[s.dst], index);
  if (!src.mediumPresent || !dst.mediumPresent) throw copyAborted(Asc.CopyTargetDeviceNotReachable, index);
  if (src.reservationConflict(nexus, true) || dst.reservationConflict(nexus, false)) throw copyAborted(Asc.CopyTargetDeviceNotReachable, index);
  if (dst.writeProtected()) throw new SenseError(SenseKey.DataProtect, Asc.WriteProtected, undefined, undefined, index);
  const bs = src.blockSize;
  const blocks = s.destinationCount ? (s.blocks * dst.blockSize) / bs : s.blocks;
  const srcCap = src.capacity();
  const dstCap = dst.capacity();
  if (s.srcLba + blocks > srcCap || s.dstLba + blocks > dstCap) throw copyAborted(Asc.NoAdditionalSense, index);
  const size = Math.min(lu.maxTransferBlocks, src.maxTransferBlocks, dst.maxTransferBlocks);
  // Copy backwards when the destination overlaps the source from above (memmove).
  const same = src === dst;
  const backwards = same && s.dstLba > s.srcLba && s.dstLba < s.srcLba + blocks;
  const chunks: Chunk[] = [];
  for (let done = 0; done < blocks; done += size) {
    const n = Math.min(size, blocks - done);
    chunks.push({ src: s.srcLba + done, dst: s.dstLba + done, n });
  }
  if (backwards) chunks.reverse();

  // Both locks of a chunk are registered before waiting, so copies in opposite directions
  // cannot deadlock (grants are first come, first served); when the chunk's source and
  // destination overlap in one LU, one exclusive lock covers both.
  const lock = (c: Chunk) => {
    if (same && c.src < c.dst + c.n && c.dst < c.src + c.n) {
      const lo = Math.min(c.src, c.dst);
      return { read: dst.locks.acquire(lo, Math.max(c.src, c.dst) + c.n - lo, true), write: undefined };
    }
    return { read: src.locks.acquire(c.src, c.n, false), write: dst.locks.acquire(c.dst, c.n, true) };
  };
  const unlock = (l: ReturnType<typeof lock>) => {
    src.locks.release(l.read);
    if (l.write) dst.locks.release(l.write);
  };
  const read = async (c: Chunk) => {
    const l = lock(c);
    try {
      if (l.read.ready) await l.read.ready;
      if (l.write?.ready) await l.write.ready;
      return { l, data: await readChunk(src, c, task.signal) };
    } catch (e) {
      unlock(l);
      throw e;
    }
  };

  // Overlapping chunks of one LU must not be read ahead of the write before them.
  const pipelined = !(same && Math.abs(s.dstLba - s.srcLba) < blocks);
  let pending = chunks.length > 0 ? read(chunks[0]) : undefined;
  for (let i = 0; i < chunks.length; i++) {
    const current = await pending!;
    pending = undefined;
    try {
      stopIfAborted(task);
      if (pipelined && i + 1 < chunks.length) pending = read(chunks[i + 1]);
      await writeChunk(dst, chunks[i], current.data, task.signal);
    } catch (e) {
      // Let a read that is already under way finish and give back its locks.
      pending?.then((r) => unlock(r.l), () => undefined);
      throw e;
    } finally {
      unlock(current.l);
    }
    if (!pending && i + 1 < chunks.length) pending = read(chunks[i + 1]);
    result.bytes += chunks[i].n * bs;
  }
}

async function extendedCopy(lu: LogicalUnit, task: Task, ns: LuNexus): Promise<ScsiResult> {
  const length = u32(task.command.cdb, 10);
  task.dataOutTransferLength = length;
  if (length === 0) return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
  if (lu.activeCopies >= MAX_CONCURRENT_COPIES) throw new SenseError(SenseKey.IllegalRequest, Asc.InsufficientResources);
  const p = await lu.receiveDataOut(task, Math.min(length, task.command.dataOutLength));
  const { listId, usage, targets, segments } = parse(p);
  const key = ns.nexus.key;
  if (usage !== ListIdUsage.Disable && lu.copyResults.get(key, listId)?.status === CopyStatus.InProgress) {
    throw new SenseError(SenseKey.IllegalRequest, Asc.OperationInProgress);
  }
  const result: CopyResult = { status: CopyStatus.InProgress, segmentsProcessed: 0, bytes: 0 };
  if (usage === ListIdUsage.Hold) lu.copyResults.set(key, listId, result);
  else if (usage === ListIdUsage.Discard) lu.copyResults.delete(key, listId);
  lu.activeCopies++;
  try {
    for (let i = 0; i < segments.length; i++) {
      await copySegment(lu, task, ns.nexus, targets, segments[i], i, result);
      result.segmentsProcessed++;
    }
    result.status = CopyStatus.Completed;
  } catch (e) {
    result.status = CopyStatus.Failed;
    if (e instanceof SenseError) result.sense = lu.checkCondition(e).sense;
    throw e;
  } finally {
    lu.activeCopies--;
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: length };
}

/** RECEIVE COPY RESULTS: COPY STATUS, RECEIVE DATA, OPERATING PARAMETERS, FAILED SEGMENT DETAILS. */
function receiveCopyResults(lu: LogicalUnit, task: Task, ns: LuNexus): ScsiResult {
  const cdb = task.command.cdb;
  const sa = cdb[1] & 0x1f;
  const listId = cdb[2];
  const alloc = u32(cdb, 10);
  let data: Buffer;
  if (sa === 0x03) {
    const types = [BLOCK_TO_BLOCK, IDENTIFICATION_DESCRIPTOR];
    data = Buffer.alloc(44 + types.length);
    data.writeUInt32BE(data.length - 4, 0);
    data[4] = 0x01; // SNLID: LIST ID USAGE 11b is supported
    data.writeUInt16BE(MAX_TARGET_DESCRIPTORS, 8);
    data.writeUInt16BE(MAX_SEGMENT_DESCRIPTORS, 10);
    data.writeUInt32BE(MAX_DESCRIPTOR_LIST_LENGTH, 12);
    data.writeUInt32BE(0xffff * lu.blockSize, 16); // MAXIMUM SEGMENT LENGTH (bytes)
    data.writeUInt16BE(MAX_CONCURRENT_COPIES, 34); // TOTAL CONCURRENT COPIES
    data[36] = MAX_CONCURRENT_COPIES; // MAXIMUM CONCURRENT COPIES
    data[37] = lu.blockShift; // DATA SEGMENT GRANULARITY (log2 bytes)
    data[43] = types.length;
    Buffer.from(types).copy(data, 44);
  } else {
    const r = lu.copyResults.get(ns.nexus.key, listId);
    if (!r) throw invalidFieldInCdb(2, 7);
    if (sa === 0x00) {
      data = Buffer.alloc(12);
      data.writeUInt32BE(8, 0);
      data[4] = r.status;
      data.writeUInt16BE(r.segmentsProcessed & 0xffff, 5);
      data[7] = 0x01; // TRANSFER COUNT UNITS: KiB
      data.writeUInt32BE(Math.floor(r.bytes / 1024) >>> 0, 8);
    } else if (sa === 0x01) {
      data = Buffer.alloc(4); // no held data: no segment descriptor asks the copy manager to hold any
    } else if (sa === 0x04) {
      const sense = r.status === CopyStatus.Failed ? r.sense ?? Buffer.alloc(0) : Buffer.alloc(0);
      data = Buffer.alloc(r.status === CopyStatus.Failed ? 60 + sense.length : 4);
      if (r.status === CopyStatus.Failed) {
        data.writeUInt32BE(data.length - 4, 0);
        data[56] = ScsiStatus.CheckCondition; // COPY COMMAND STATUS
        data.writeUInt16BE(sense.length, 58);
        sense.copy(data, 60);
      }
    } else {
      throw invalidFieldInCdb(1, 4);
    }
    if (r.status !== CopyStatus.InProgress && sa !== 0x00) lu.copyResults.delete(ns.nexus.key, listId);
  }
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

export function extendedCopyCommands(): CommandDefinition[] {
  const L4 = [0xff, 0xff, 0xff, 0xff];
  const rcr = (sa: number, name: string): CommandDefinition => ({
    name: `RECEIVE COPY RESULTS (${name})`, opcode: 0x84, serviceAction: sa, flags: CommandFlag.ReadClass,
    usage: [0x84, sa, sa === 0x03 ? 0x00 : 0xff, 0, 0, 0, 0, 0, 0, 0, ...L4, 0x00, 0x00],
    handler: receiveCopyResults,
  });
  return [
    {
      name: 'EXTENDED COPY(LID1)', opcode: 0x83, serviceAction: 0x00,
      flags: CommandFlag.DataOut | CommandFlag.MediumWrite, timeouts: [5, 120],
      usage: [0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, ...L4, 0x00, 0x00],
      handler: extendedCopy,
    },
    rcr(0x00, 'COPY STATUS'),
    rcr(0x01, 'RECEIVE DATA'),
    rcr(0x03, 'OPERATING PARAMETERS'),
    rcr(0x04, 'FAILED SEGMENT DETAILS'),
  ];
}

/** One third-party copy descriptor: type, length, body padded to a multiple of 4 bytes. */
function tpcDescriptor(type: number, body: Buffer): Buffer {
  const padded = Math.ceil(body.length / 4) * 4;
  const d = Buffer.alloc(4 + padded);
  d.writeUInt16BE(type, 0);
  d.writeUInt16BE(padded, 2);
  body.copy(d, 4);
  return d;
}

/**
 * The descriptors of the Third-party Copy VPD page (8Fh, SPC-4 §7.8.17) for this copy
 * manager: supported commands, parameter data, supported descriptors, supported CSCD IDs
 * (none above 07FFh) and general copy operations.
 */
export function thirdPartyCopyDescriptors(lu: LogicalUnit): Buffer {
  // SUPPORTED COMMANDS: each command's opcode, service action count and service actions.
  const byOpcode = new Map<number, number[]>();
  for (const op of [0x83, 0x84]) {
    for (let sa = 0; sa < 0x20; sa++) if (lu.commands.find(op, sa)) byOpcode.set(op, [...(byOpcode.get(op) ?? []), sa]);
  }
  const commandList = Buffer.concat([...byOpcode].map(([op, sas]) => Buffer.from([op, sas.length, ...sas])));
  const supportedCommands = Buffer.concat([Buffer.from([commandList.length]), commandList]);

  const parameterData = Buffer.alloc(28);
  parameterData.writeUInt16BE(MAX_TARGET_DESCRIPTORS, 4); // MAXIMUM CSCD DESCRIPTOR COUNT
  parameterData.writeUInt16BE(MAX_SEGMENT_DESCRIPTORS, 6); // MAXIMUM SEGMENT DESCRIPTOR COUNT
  parameterData.writeUInt32BE(MAX_DESCRIPTOR_LIST_LENGTH, 8); // MAXIMUM DESCRIPTOR LIST LENGTH
  parameterData.writeUInt32BE(0, 12); // MAXIMUM INLINE DATA LENGTH: no inline data

  const types = [BLOCK_TO_BLOCK, IDENTIFICATION_DESCRIPTOR];
  const supportedDescriptors = Buffer.from([types.length, ...types]);

  const supportedCscdIds = Buffer.alloc(2); // LIST LENGTH 0: only CSCD list indexes

  const general = Buffer.alloc(32);
  general.writeUInt32BE(MAX_CONCURRENT_COPIES, 0); // TOTAL CONCURRENT COPIES
  general.writeUInt32BE(MAX_CONCURRENT_COPIES, 4); // MAXIMUM IDENTIFIED CONCURRENT COPIES
  general.writeUInt32BE(0xffff * lu.blockSize, 8); // MAXIMUM SEGMENT LENGTH (bytes)
  general[12] = lu.blockShift; // DATA SEGMENT GRANULARITY (log2 bytes)
  general[13] = 0; // INLINE DATA GRANULARITY

  return Buffer.concat([
    tpcDescriptor(0x0001, supportedCommands),
    tpcDescriptor(0x0004, parameterData),
    tpcDescriptor(0x0008, supportedDescriptors),
    tpcDescriptor(0x000c, supportedCscdIds),
    tpcDescriptor(0x8001, general),
  ]);
}
