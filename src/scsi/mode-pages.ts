/**
 * Mode pages (SPC-4 §7.5, SBC-3 §6.4) and MODE SENSE / MODE SELECT (6) and (10).
 * Pages: read-write error recovery (01h), caching (08h), control (0Ah), informational
 * exceptions control (1Ch), and 3Fh "return all". Mode parameters are shared by all I_T
 * nexuses; a change by MODE SELECT raises MODE PARAMETERS CHANGED on every other nexus.
 * Nothing can be saved (PC=11b and SP=1 are refused).
 */
import type { ScsiResult } from './sam';
import { ScsiStatus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16, writeU64, highestBit } from './cdb';
import {
  Asc, SenseError, SenseKey, illegalRequest, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError,
} from './sense';

/** The changeable mode parameters (current values of one logical unit). */
export interface ModeParameters {
  /** Caching page WCE: writes may be acknowledged before they are durable. */
  readonly wce: boolean;
  /** Control page D_SENSE: descriptor-format sense data. */
  readonly dSense: boolean;
  /** Control page SWP: software write protect. */
  readonly swp: boolean;
  /** Control page TAS: TASK ABORTED status for tasks aborted by another nexus. */
  readonly tas: boolean;
  /** Control page UA_INTLCK_CTRL field value: 0 (00b), 2 (10b) or 3 (11b). */
  readonly uaIntlckCtrl: number;
  /** Control page QUEUE ALGORITHM MODIFIER: 0 restricted reordering, 1 unrestricted. */
  readonly qam: number;
}

export const enum PageControl {
  Current = 0,
  Changeable = 1,
  Default = 2,
  Saved = 3,
}

interface ModePage {
  readonly code: number;
  /** Page length (bytes after the 2-byte page header). */
  readonly length: number;
  /** Page bytes (with header) for the given values. */
  render(p: ModeParameters, out: Buffer): void;
  /** Page bytes (with header) marking changeable bits. */
  changeable(out: Buffer): void;
  /** New values from a MODE SELECT page (already checked against the changeable mask). */
  apply(page: Buffer, p: ModeParameters, at: number): ModeParameters;
}

const readWriteErrorRecovery: ModePage = {
  code: 0x01,
  length: 0x0a,
  render() { /* no error recovery parameters: the backstore either succeeds or fails */ },
  changeable() {},
  apply: (_page, p) => p,
};

const caching: ModePage = {
  code: 0x08,
  length: 0x12,
  render(p, out) {
    if (p.wce) out[2] |= 0x04;
  },
  changeable(out) {
    out[2] = 0x04;
  },
  apply: (page, p) => ({ ...p, wce: (page[2] & 0x04) !== 0 }),
};

const control: ModePage = {
  code: 0x0a,
  length: 0x0a,
  render(p, out) {
    out[2] = (p.dSense ? 0x04 : 0) | 0x02; // TST=000b, GLTSD=1 (no log parameters are saved)
    out[3] = p.qam << 4; // QERR=00b
    out[4] = (p.uaIntlckCtrl << 4) | (p.swp ? 0x08 : 0);
    out[5] = p.tas ? 0x40 : 0;
    out.writeUInt16BE(0xffff, 8); // BUSY TIMEOUT PERIOD: unlimited
  },
  changeable(out) {
    out[2] = 0x04;
    out[3] = 0xf0;
    out[4] = 0x38;
    out[5] = 0x40;
  },
  apply(page, p, at) {
    const qam = page[3] >> 4;
    if (qam > 1) throw invalidFieldInParameterList(at + 3, 7);
    const ua = (page[4] >> 4) & 0x03;
    if (ua === 1) throw invalidFieldInParameterList(at + 4, 5);
    return { ...p, dSense: (page[2] & 0x04) !== 0, qam, uaIntlckCtrl: ua, swp: (page[4] & 0x08) !== 0, tas: (page[5] & 0x40) !== 0 };
  },
};

const informationalExceptions: ModePage = {
  code: 0x1c,
  length: 0x0a,
  render(_p, out) {
    out[2] = 0x08; // DEXCPT=1: no informational exception reporting; MRIE=0
  },
  changeable() {},
  apply: (_page, p) => p,
};

const PAGES: readonly ModePage[] = [readWriteErrorRecovery, caching, control, informationalExceptions];

function pageBytes(page: ModePage, pc: PageControl, current: ModeParameters, defaults: ModeParameters): Buffer {
  const out = Buffer.alloc(page.length + 2);
  if (pc === PageControl.Changeable) page.changeable(out);
  else page.render(pc === PageControl.Default ? defaults : current, out);
  out[0] = page.code;
  out[1] = page.length;
  return out;
}

/** MODE SENSE (6) 1Ah and (10) 5Ah. */
function modeSense(ten: boolean) {
  return (lu: LogicalUnit, task: Task): ScsiResult => {
    const cdb = task.command.cdb;
    const dbd = (cdb[1] & 0x08) !== 0;
    const llbaa = ten && (cdb[1] & 0x10) !== 0;
    const pc = (cdb[2] >> 6) as PageControl;
    const code = cdb[2] & 0x3f;
    const subpage = cdb[3];
    const alloc = ten ? u16(cdb, 7) : cdb[4];
    if (pc === PageControl.Saved) throw illegalRequest(Asc.SavingParametersNotSupported);
    let pages: readonly ModePage[];
    if (code === 0x3f) {
      if (subpage !== 0x00 && subpage !== 0xff) throw invalidFieldInCdb(3, 7);
      pages = PAGES;
    } else {
      const p = PAGES.find((x) => x.code === code);
      if (!p) throw invalidFieldInCdb(2, 5);
      if (subpage !== 0x00) throw invalidFieldInCdb(3, 7);
      pages = [p];
    }
    const header = ten ? 8 : 4;
    const blocks = lu.capacity();
    const descLen = dbd ? 0 : llbaa ? 16 : 8;
    const body = pages.map((p) => pageBytes(p, pc, lu.mode, lu.defaultMode));
    const total = header + descLen + body.reduce((n, b) => n + b.length, 0);
    const out = Buffer.alloc(total);
    const dsp = (lu.writeProtected() ? 0x80 : 0) | (lu.dpofua ? 0x10 : 0);
    if (ten) {
      out.writeUInt16BE(total - 2, 0);
      out[3] = dsp;
      if (llbaa && !dbd) out[4] = 0x01; // LONGLBA
      out.writeUInt16BE(descLen, 6);
    } else {
      out[0] = total - 1;
      out[2] = dsp;
      out[3] = descLen;
    }
    if (descLen && pc !== PageControl.Changeable) {
      if (descLen === 16) {
        writeU64(out, blocks, header);
        out.writeUInt32BE(lu.blockSize, header + 12);
      } else {
        out.writeUInt32BE(Math.min(blocks, 0xffffffff), header);
        out.writeUIntBE(lu.blockSize, header + 5, 3);
      }
    }
    let at = header + descLen;
    for (const b of body) {
      b.copy(out, at);
      at += b.length;
    }
    return { status: ScsiStatus.Good, data: out.subarray(0, Math.min(total, alloc)) };
  };
}

/** MODE SELECT (6) 15h and (10) 55h. */
function modeSelect(ten: boolean) {
  return async (lu: LogicalUnit, task: Task, nexus: LuNexus): Promise<ScsiResult> => {
    const cdb = task.command.cdb;
    const pf = (cdb[1] & 0x10) !== 0;
    const sp = (cdb[1] & 0x01) !== 0;
    const length = ten ? u16(cdb, 7) : cdb[4];
    task.dataOutTransferLength = length;
    if (sp) throw invalidFieldInCdb(1, 0);
    if (length === 0) return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
    const header = ten ? 8 : 4;
    if (length < header) throw parameterListLengthError();
    const data = await lu.receiveDataOut(task, Math.min(length, task.command.dataOutLength));
    if (data.length < header) throw parameterListLengthError();
    const bdl = ten ? u16(data, 6) : data[3];
    const longLba = ten && (data[4] & 0x01) !== 0;
    if (data[ten ? 2 : 1] !== 0) throw invalidFieldInParameterList(ten ? 2 : 1, 7); // medium type
    if (bdl !== 0 && bdl !== (longLba ? 16 : 8)) throw invalidFieldInParameterList(ten ? 6 : 3, 7);
    if (data.length < header + bdl) throw parameterListLengthError();
    if (bdl) checkBlockDescriptor(lu, data, header, longLba);
    let at = header + bdl;
    if (at < data.length && !pf) throw invalidFieldInCdb(1, 4);
    let next = lu.mode;
    while (at < data.length) {
      if (data.length - at < 2) throw parameterListLengthError();
      if (data[at] & 0x40) throw invalidFieldInParameterList(at, 6); // no subpages are supported
      const page = PAGES.find((p) => p.code === (data[at] & 0x3f));
      if (!page) throw invalidFieldInParameterList(at, 5);
      if (data[at + 1] !== page.length) throw invalidFieldInParameterList(at + 1, 7);
      if (data.length - at < page.length + 2) throw parameterListLengthError();
      const incoming = data.subarray(at, at + page.length + 2);
      const current = pageBytes(page, PageControl.Current, next, lu.defaultMode);
      const mask = pageBytes(page, PageControl.Changeable, next, lu.defaultMode);
      for (let i = 2; i < incoming.length; i++) {
        const bad = (incoming[i] ^ current[i]) & ~mask[i];
        if (bad) throw invalidFieldInParameterList(at + i, highestBit(bad));
      }
      next = page.apply(incoming, next, at);
      at += page.length + 2;
    }
    await lu.setMode(next, nexus);
    return { status: ScsiStatus.Good, dataOutTransferLength: length };
  };
}

/** A block descriptor in MODE SELECT may restate, but not change, the format. */
function checkBlockDescriptor(lu: LogicalUnit, data: Buffer, at: number, longLba: boolean): void {
  const blocks = longLba ? data.readUInt32BE(at) * 0x100000000 + data.readUInt32BE(at + 4) : data.readUInt32BE(at);
  const blockLength = longLba ? data.readUInt32BE(at + 12) : data.readUIntBE(at + 5, 3);
  const capacity = longLba ? lu.capacity() : Math.min(lu.capacity(), 0xffffffff);
  if (blocks !== 0 && blocks !== capacity) throw invalidFieldInParameterList(at, 7);
  if (blockLength !== lu.blockSize) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList, undefined, { cdb: false, byte: at + (longLba ? 12 : 5), bit: 7 });
}

export function modeCommands(): CommandDefinition[] {
  return [
    {
      name: 'MODE SELECT(6)', opcode: 0x15, flags: CommandFlag.DataOut,
      usage: [0x15, 0x11, 0x00, 0x00, 0xff, 0x00],
      handler: modeSelect(false),
    },
    {
      name: 'MODE SENSE(6)', opcode: 0x1a, flags: CommandFlag.ReadClass,
      usage: [0x1a, 0x08, 0xff, 0xff, 0xff, 0x00],
      handler: modeSense(false),
    },
    {
      name: 'MODE SELECT(10)', opcode: 0x55, flags: CommandFlag.DataOut,
      usage: [0x55, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
      handler: modeSelect(true),
    },
    {
      name: 'MODE SENSE(10)', opcode: 0x5a, flags: CommandFlag.ReadClass,
      usage: [0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
      handler: modeSense(true),
    },
  ];
}
