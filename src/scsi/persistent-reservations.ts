/**
 * PERSISTENT RESERVE IN / OUT (SPC-4 §6.15, §6.16, §5.13) over the LU's ReservationStore,
 * and the SPC-2 RESERVE / RELEASE (6) and (10) commands (SPC-2 §7.21, §7.16).
 *
 * Supported: READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL STATUS; REGISTER
 * (ALL_TG_PT, APTPL, SPEC_I_PT with iSCSI TransportIDs), REGISTER AND IGNORE EXISTING KEY,
 * RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT, REGISTER AND MOVE; all six reservation
 * types. CRH=0: an SPC-2 RESERVE or RELEASE conflicts with any persistent registration.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16, u32 } from './cdb';
import {
  Asc, ReservationConflictError, SenseError, SenseKey, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError,
} from './sense';
import {
  PR_TYPES, PrState, Registration, Reservation, holds, initiatorId, isAllRegistrants, isRegistrantsOnly, registrationOf,
} from './reservations';
import type { LuStateChange, SharedAttention } from './lu-state';

const GOOD: ScsiResult = Object.freeze({ status: ScsiStatus.Good });

const enum PrIn { ReadKeys = 0, ReadReservation = 1, ReportCapabilities = 2, ReadFullStatus = 3 }
const enum PrOut {
  Register = 0, Reserve = 1, Release = 2, Clear = 3, Preempt = 4, PreemptAndAbort = 5, RegisterAndIgnore = 6, RegisterAndMove = 7,
}

/** Largest PERSISTENT RESERVE OUT parameter list accepted (TransportID lists). */
const MAX_PARAMETER_LIST = 64 * 1024;
const PROTOCOL_ISCSI = 0x5;

function header(pr: PrState, body: number): Buffer {
  const out = Buffer.alloc(8 + body);
  out.writeUInt32BE(pr.generation >>> 0, 0);
  out.writeUInt32BE(body, 4);
  return out;
}

/**
 * iSCSI TransportID (SPC-4 §7.6.4.6), NUL padded to 4n >= 20 bytes: initiator port format
 * (01b) "name,i,0xISID", or the node name alone (00b) for a registration of every port.
 */
function transportId(initiatorPortName: string): Buffer {
  const name = Buffer.from(initiatorPortName, 'utf8');
  const len = Math.max(20, (name.length + 1 + 3) & ~3);
  const out = Buffer.alloc(4 + len);
  out[0] = (initiatorPortName.includes(',i,0x') ? 0x40 : 0x00) | PROTOCOL_ISCSI;
  out.writeUInt16BE(len, 2);
  name.copy(out, 4);
  return out;
}

/** An initiator named by a TransportID in a PERSISTENT RESERVE OUT parameter list. */
interface NamedInitiator {
  /** Registration identity (see Registration.initiator). */
  readonly initiator: string;
  /** iSCSI node name. */
  readonly initiatorName: string;
  /** "name,i,0xISID", or the node name for a format 00b TransportID. */
  readonly initiatorPortName: string;
  readonly allInitiatorPorts: boolean;
}

/** Parse the iSCSI TransportID at p[at..end); returns it and its length. */
function parseTransportId(p: Buffer, at: number, end: number, enforceIsids: boolean): { id: NamedInitiator; length: number } {
  if (at + 24 > end) throw invalidFieldInParameterList(at, 7);
  if ((p[at] & 0x0f) !== PROTOCOL_ISCSI) throw invalidFieldInParameterList(at, 3);
  const format = p[at] >> 6;
  if (format > 1 || p[at] & 0x30) throw invalidFieldInParameterList(at, 7);
  const additional = p.readUInt16BE(at + 2);
  if (additional < 20 || additional % 4 !== 0 || at + 4 + additional > end) throw invalidFieldInParameterList(at + 2, 7);
  const field = p.subarray(at + 4, at + 4 + additional);
  const nul = field.indexOf(0);
  if (nul <= 0) throw invalidFieldInParameterList(at + 4, 7);
  const text = field.toString('utf8', 0, nul);
  let id: NamedInitiator;
  if (format === 0) {
    if (text.includes(',')) throw invalidFieldInParameterList(at + 4, 7);
    id = { initiator: text, initiatorName: text, initiatorPortName: text, allInitiatorPorts: enforceIsids };
  } else {
    const m = /^([^,]+),i,0x([0-9a-fA-F]{12})$/.exec(text);
    if (!m) throw invalidFieldInParameterList(at + 4, 7);
    const portName = `${m[1]},i,0x${m[2].toLowerCase()}`;
    id = { initiator: enforceIsids ? portName : m[1], initiatorName: m[1], initiatorPortName: portName, allInitiatorPorts: false };
  }
  return { id, length: 4 + additional };
}

/** The TransportIDs of a SPEC_I_PT REGISTER: TRANSPORTID PARAMETER DATA LENGTH at byte 24. */
function specifiedInitiators(p: Buffer, enforceIsids: boolean): NamedInitiator[] {
  if (p.length < 28 || 28 + p.readUInt32BE(24) !== p.length) throw parameterListLengthError();
  const out: NamedInitiator[] = [];
  for (let at = 28; at < p.length;) {
    const { id, length } = parseTransportId(p, at, p.length, enforceIsids);
    out.push(id);
    at += length;
  }
  return out;
}

function persistentReserveIn(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const alloc = u16(cdb, 7);
  const pr = lu.luState.current().pr;
  let data: Buffer;
  switch (cdb[1] & 0x1f) {
    case PrIn.ReadKeys: {
      data = header(pr, 8 * pr.registrations.length);
      pr.registrations.forEach((r, i) => data.writeBigUInt64BE(r.key, 8 + 8 * i));
      break;
    }
    case PrIn.ReadReservation: {
      const r = pr.reservation;
      data = header(pr, r ? 16 : 0);
      if (r) {
        data.writeBigUInt64BE(isAllRegistrants(r.type) || !r.holder ? 0n : r.holder.key, 8);
        data[21] = r.type; // SCOPE 0h (logical unit)
      }
      break;
    }
    case PrIn.ReportCapabilities: {
      data = Buffer.alloc(8);
      data.writeUInt16BE(8, 0);
      data[2] = 0x08 | 0x04 | 0x01; // SIP_C, ATP_C, PTPL_C (CRH=0)
      data[3] = 0x80 | 0x10 | (pr.aptpl ? 0x01 : 0); // TMV, ALLOW COMMANDS 001b, PTPL_A
      data[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX
      data[5] = 0x01; // EX_AC_AR
      break;
    }
    case PrIn.ReadFullStatus: {
      const descriptors = pr.registrations.map((r) => {
        const tid = transportId(r.initiatorPortName);
        const d = Buffer.alloc(24 + tid.length);
        d.writeBigUInt64BE(r.key, 0);
        const holder = pr.reservation !== undefined && (isAllRegistrants(pr.reservation.type) || pr.reservation.holder === r);
        d[12] = (r.allTargetPorts ? 0x02 : 0) | (holder ? 0x01 : 0);
        if (holder) d[13] = pr.reservation!.type;
        if (!r.allTargetPorts) d.writeUInt16BE(r.relativeTargetPortId & 0xffff, 18);
        d.writeUInt32BE(tid.length, 20);
        tid.copy(d, 24);
        return d;
      });
      const body = Buffer.concat(descriptors);
      data = header(pr, body.length);
      body.copy(data, 8);
      break;
    }
    default:
      throw invalidFieldInCdb(1, 4);
  }
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, alloc)) };
}

/** What a PERSISTENT RESERVE OUT did besides changing the state. */
interface Effects {
  readonly ua: { readonly regs: readonly Registration[]; readonly asc: Asc }[];
  /** Registrations whose I_T nexuses lose their tasks (PREEMPT AND ABORT). */
  readonly abort: readonly Registration[];
}

const NONE: Effects = { ua: [], abort: [] };
const conflict = (): never => { throw new ReservationConflictError(); };
const next = (g: number): number => (g + 1) >>> 0;

/** Remove a registration; releasing the reservation it held (SPC-4 §5.13.11.2.3). */
function withoutRegistration(pr: PrState, reg: Registration): { state: PrState; effects: Effects } {
  const registrations = pr.registrations.filter((r) => r !== reg);
  let reservation = pr.reservation;
  const ua: Effects['ua'] = [];
  if (reservation) {
    if (isAllRegistrants(reservation.type)) {
      if (registrations.length === 0) reservation = undefined;
    } else if (reservation.holder === reg) {
      if (isRegistrantsOnly(reservation.type)) ua.push({ regs: registrations, asc: Asc.ReservationsReleased });
      reservation = undefined;
    }
  }
  return { state: { ...pr, generation: next(pr.generation), registrations, reservation }, effects: { ua, abort: [] } };
}

function register(
  lu: LogicalUnit, pr: PrState, ns: LuNexus, rk: bigint, sark: bigint, allTgPt: boolean, aptpl: boolean, ignoreKey: boolean,
  specified?: readonly NamedInitiator[],
): { state: PrState; result: Effects } {
  const enforce = lu.settings.enforce_pr_isids === 1;
  const nexus = ns.nexus;
  const reg = registrationOf(pr, nexus, enforce);
  if (!reg) {
    if (!ignoreKey && rk !== 0n) conflict();
    if (sark === 0n) return { state: pr, result: NONE };
    const port = { targetPortName: nexus.targetPortName, relativeTargetPortId: nexus.relativeTargetPortId, allTargetPorts: allTgPt };
    const added: Registration[] = [Object.freeze({
      key: sark, initiator: initiatorId(nexus, enforce), initiatorPortName: nexus.initiatorPortName, ...port,
    })];
    // SPEC_I_PT: the named initiator ports are registered through the same target port(s);
    // those already registered there are left as they are (as LIO does).
    for (const id of specified ?? []) {
      const candidate: Registration = Object.freeze({
        key: sark, initiator: id.initiator, initiatorPortName: id.initiatorPortName, ...port,
        ...(id.allInitiatorPorts ? { allInitiatorPorts: true } : {}),
      });
      if (![...pr.registrations, ...added].some((r) => sameNexusSet(r, candidate))) added.push(candidate);
    }
    return { state: { ...pr, generation: next(pr.generation), registrations: [...pr.registrations, ...added], aptpl }, result: NONE };
  }
  if (!ignoreKey && rk !== reg.key) conflict();
  if (specified) throw invalidFieldInParameterList(20, 3); // SPEC_I_PT from a registered I_T nexus
  if (sark === 0n) {
    const { state, effects } = withoutRegistration(pr, reg);
    return { state: { ...state, aptpl }, result: effects };
  }
  const changed: Registration = Object.freeze({ ...reg, key: sark });
  const registrations = pr.registrations.map((r) => (r === reg ? changed : r));
  const reservation = pr.reservation?.holder === reg ? { ...pr.reservation, holder: changed } : pr.reservation;
  return { state: { ...pr, generation: next(pr.generation), registrations, reservation, aptpl }, result: NONE };
}

/** Do two registrations cover the same I_T nexuses? */
function sameNexusSet(a: Registration, b: Registration): boolean {
  return a.initiator === b.initiator && !!a.allInitiatorPorts === !!b.allInitiatorPorts
    && (a.allTargetPorts || b.allTargetPorts || a.targetPortName === b.targetPortName);
}

/** What a REGISTER AND MOVE names: the destination initiator and target port. */
interface MoveDestination {
  readonly id: NamedInitiator;
  readonly targetPortName: string;
  readonly relativeTargetPortId: number;
  readonly unregister: boolean;
}

/**
 * REGISTER AND MOVE (SPC-4 §5.13.8): register the destination I_T nexus with the service
 * action key and hand it the reservation (same type), optionally unregistering the source.
 */
function registerAndMove(pr: PrState, reg: Registration, ns: LuNexus, enforce: boolean, sark: bigint, dest: MoveDestination, aptpl: boolean): PrState {
  if (sark === 0n) throw invalidFieldInParameterList(8, 7);
  if (dest.id.initiator === reg.initiator || (dest.id.allInitiatorPorts && dest.id.initiatorName === ns.nexus.initiatorName)) {
    throw invalidFieldInParameterList(24, 7); // the TransportID names the source initiator port itself
  }
  const r = pr.reservation;
  if (!r) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb);
  if (!holds(pr, ns.nexus, enforce) || isAllRegistrants(r.type)) conflict();
  const wanted: Registration = {
    key: sark, initiator: dest.id.initiator, initiatorPortName: dest.id.initiatorPortName,
    targetPortName: dest.targetPortName, relativeTargetPortId: dest.relativeTargetPortId, allTargetPorts: false,
    ...(dest.id.allInitiatorPorts ? { allInitiatorPorts: true } : {}),
  };
  const existing = pr.registrations.find((x) => sameNexusSet(x, wanted));
  const holder: Registration = Object.freeze(existing ? { ...existing, key: sark } : wanted);
  let registrations = existing ? pr.registrations.map((x) => (x === existing ? holder : x)) : [...pr.registrations, holder];
  if (dest.unregister) registrations = registrations.filter((x) => x !== reg);
  return {
    ...pr, generation: next(pr.generation), registrations, aptpl,
    reservation: { type: r.type, holder, holderPort: dest.targetPortName },
  };
}

/** A new reservation held by `reg` through target port `port` (nobody in particular for -AR types). */
function holding(type: number, reg: Registration, port: string): Reservation {
  return isAllRegistrants(type) ? { type } : { type, holder: reg, holderPort: port };
}

function preempt(pr: PrState, reg: Registration, port: string, sark: bigint, type: number): { state: PrState; result: Effects } {
  const r = pr.reservation;
  const others = (pred: (x: Registration) => boolean) => pr.registrations.filter((x) => x !== reg && pred(x));
  if (r && isAllRegistrants(r.type) && sark === 0n) {
    // Preempting an all-registrants reservation: everyone else goes, the preemptor reserves.
    const removed = others(() => true);
    const reservation = holding(type, reg, port);
    return {
      state: { ...pr, generation: next(pr.generation), registrations: [reg], reservation },
      result: { ua: [{ regs: removed, asc: Asc.RegistrationsPreempted }], abort: removed },
    };
  }
  if (r && !isAllRegistrants(r.type) && r.holder && r.holder.key === sark) {
    // Preempting the holder: its key's registrations go, the preemptor holds the new reservation.
    const removed = others((x) => x.key === sark);
    const registrations = pr.registrations.filter((x) => !removed.includes(x));
    const released = r.type !== type ? registrations.filter((x) => x !== reg) : [];
    return {
      state: { ...pr, generation: next(pr.generation), registrations, reservation: holding(type, reg, port) },
      result: {
        ua: [{ regs: removed, asc: Asc.RegistrationsPreempted }, { regs: released, asc: Asc.ReservationsReleased }],
        abort: removed,
      },
    };
  }
  // Only registrations are preempted; the reservation (if any) stays.
  if (sark === 0n) throw invalidFieldInParameterList(8, 7);
  const removed = others((x) => x.key === sark);
  if (removed.length === 0) conflict();
  const registrations = pr.registrations.filter((x) => !removed.includes(x));
  let reservation = r;
  if (r && isAllRegistrants(r.type) && registrations.length === 0) reservation = undefined;
  return {
    state: { ...pr, generation: next(pr.generation), registrations, reservation },
    result: { ua: [{ regs: removed, asc: Asc.RegistrationsPreempted }], abort: removed },
  };
}

async function persistentReserveOut(lu: LogicalUnit, task: Task, ns: LuNexus): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const sa = cdb[1] & 0x1f;
  const scope = cdb[2] >> 4;
  const type = cdb[2] & 0x0f;
  const length = u32(cdb, 5);
  task.dataOutTransferLength = length;
  if (sa === PrOut.Reserve || sa === PrOut.Release || sa === PrOut.Preempt || sa === PrOut.PreemptAndAbort) {
    if (scope !== 0) throw invalidFieldInCdb(2, 7);
    if (!PR_TYPES.includes(type)) throw invalidFieldInCdb(2, 3);
  }
  // 24 bytes, or more for TransportIDs (SPEC_I_PT, REGISTER AND MOVE); checked once read.
  if (length < 24 || length > MAX_PARAMETER_LIST || task.command.dataOutLength < length) throw parameterListLengthError();
  const p = await lu.receiveDataOut(task, length);
  const rk = p.readBigUInt64BE(0);
  const sark = p.readBigUInt64BE(8);
  const enforce = lu.settings.enforce_pr_isids === 1;
  const nexus = ns.nexus;
  let allTgPt = false;
  let aptpl: boolean;
  let specified: NamedInitiator[] | undefined;
  let move: MoveDestination | undefined;
  if (sa === PrOut.RegisterAndMove) {
    if (p[16] !== 0) throw invalidFieldInParameterList(16, 7);
    if (p[17] & 0xfc) throw invalidFieldInParameterList(17, 7);
    aptpl = (p[17] & 0x01) !== 0 || lu.settings.force_pr_aptpl === 1;
    if (24 + p.readUInt32BE(20) !== length) throw parameterListLengthError();
    const { id, length: idLength } = parseTransportId(p, 24, length, enforce);
    if (24 + idLength !== length) throw invalidFieldInParameterList(24, 7);
    const rtpi = p.readUInt16BE(18);
    const port = lu.target.targetPortName(rtpi);
    if (port === undefined) throw invalidFieldInParameterList(18, 7);
    move = { id, targetPortName: port, relativeTargetPortId: rtpi, unregister: (p[17] & 0x02) !== 0 };
  } else {
    if (p[20] & 0xf2) throw invalidFieldInParameterList(20, p[20] & 0xf0 ? 7 : 1);
    const specIpt = (p[20] & 0x08) !== 0;
    if (specIpt && sa !== PrOut.Register) throw invalidFieldInParameterList(20, 3);
    if (!specIpt && length !== 24) throw parameterListLengthError();
    if (specIpt) specified = specifiedInitiators(p, enforce);
    allTgPt = (p[20] & 0x04) !== 0;
    aptpl = (p[20] & 0x01) !== 0 || lu.settings.force_pr_aptpl === 1;
  }

  await lu.luState.update((shared): LuStateChange<undefined> => {
    const out = prOut(shared.pr);
    if (out.state === shared.pr && out.result.ua.length === 0) return { state: shared, result: undefined };
    return { state: out.state === shared.pr ? shared : { ...shared, pr: out.state }, result: undefined, attentions: attentionsOf(out.result, nexus.key) };
  });
  return { status: ScsiStatus.Good, dataOutTransferLength: length };

  function prOut(pr: PrState): { state: PrState; result: Effects } {
    if (sa === PrOut.Register || sa === PrOut.RegisterAndIgnore) {
      return register(lu, pr, ns, rk, sark, allTgPt, aptpl, sa === PrOut.RegisterAndIgnore, specified);
    }
    const reg = registrationOf(pr, nexus, enforce);
    if (!reg || reg.key !== rk) return conflict();
    switch (sa) {
      case PrOut.Reserve:
        if (!pr.reservation) {
          return { state: { ...pr, reservation: holding(type, reg, nexus.targetPortName) }, result: NONE };
        }
        if (holds(pr, nexus, enforce) && pr.reservation.type === type) return { state: pr, result: NONE };
        return conflict();
      case PrOut.Release: {
        const r = pr.reservation;
        if (!r || !holds(pr, nexus, enforce)) return { state: pr, result: NONE };
        if (r.type !== type) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidReleaseOfPersistentReservation);
        const ua = isRegistrantsOnly(r.type) || isAllRegistrants(r.type)
          ? [{ regs: pr.registrations.filter((x) => x !== reg), asc: Asc.ReservationsReleased }] : [];
        return { state: { ...pr, reservation: undefined }, result: { ua, abort: [] } };
      }
      case PrOut.Clear:
        return {
          state: { ...pr, generation: next(pr.generation), registrations: [], reservation: undefined },
          result: { ua: [{ regs: pr.registrations.filter((x) => x !== reg), asc: Asc.ReservationsPreempted }], abort: [] },
        };
      case PrOut.Preempt:
      case PrOut.PreemptAndAbort: {
        const out = preempt(pr, reg, nexus.targetPortName, sark, type);
        return sa === PrOut.Preempt ? { state: out.state, result: { ua: out.result.ua, abort: [] } } : out;
      }
      case PrOut.RegisterAndMove:
        return { state: registerAndMove(pr, reg, ns, enforce, sark, move!, aptpl), result: NONE };
      default:
        throw invalidFieldInCdb(1, 4);
    }
  }
}

/**
 * The unit attentions of a PERSISTENT RESERVE OUT for every nexus of the LU on every target
 * and gateway (not the issuer's); PREEMPT AND ABORT also ends the preempted nexuses' tasks.
 */
function attentionsOf(effects: Effects, issuerKey: string): SharedAttention[] {
  const out: SharedAttention[] = [];
  let aborting = effects.abort.length > 0;
  for (const { regs, asc } of effects.ua) {
    if (regs.length === 0) continue;
    const abort = aborting && regs === effects.abort;
    if (abort) aborting = false;
    out.push({ asc, regs, except: issuerKey, ...(abort ? { abort: true } : {}) });
  }
  if (aborting) out.push({ asc: Asc.RegistrationsPreempted, regs: effects.abort, except: issuerKey, abort: true });
  return out;
}

/** SPC-2 RESERVE (6)/(10): the whole logical unit for this I_T nexus (on every target and gateway). */
async function reserve(lu: LogicalUnit, _task: Task, ns: LuNexus): Promise<ScsiResult> {
  const key = ns.nexus.key;
  await lu.luState.update((s): LuStateChange<undefined> => {
    if (s.pr.registrations.length > 0 || s.pr.reservation) conflict();
    if (s.spc2 !== undefined && s.spc2.nexusKey !== key) conflict();
    return { state: s.spc2 ? s : { ...s, spc2: { nexusKey: key } }, result: undefined };
  });
  return GOOD;
}

/** SPC-2 RELEASE (6)/(10): releases only the caller's own reservation; otherwise a no-op. */
async function release(lu: LogicalUnit, _task: Task, ns: LuNexus): Promise<ScsiResult> {
  const key = ns.nexus.key;
  await lu.luState.update((s): LuStateChange<undefined> => {
    if (s.pr.registrations.length > 0 || s.pr.reservation) conflict();
    return { state: s.spc2?.nexusKey === key ? { pr: s.pr } : s, result: undefined };
  });
  return GOOD;
}

export function reservationCommands(): CommandDefinition[] {
  const flags = CommandFlag.ReservationAllowed;
  const prIn = (sa: number, name: string): CommandDefinition => ({
    name: `PERSISTENT RESERVE IN (${name})`, opcode: 0x5e, serviceAction: sa, flags,
    usage: [0x5e, sa, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
    handler: persistentReserveIn,
  });
  const prOut = (sa: number, name: string, typed: boolean): CommandDefinition => ({
    name: `PERSISTENT RESERVE OUT (${name})`, opcode: 0x5f, serviceAction: sa, flags: flags | CommandFlag.DataOut,
    usage: [0x5f, sa, typed ? 0xff : 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00],
    // SCOPE and TYPE are ignored by the service actions that do not use them (SPC-4 §6.16.1).
    ignored: typed ? undefined : [0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0],
    handler: persistentReserveOut,
  });
  return [
    prIn(PrIn.ReadKeys, 'READ KEYS'),
    prIn(PrIn.ReadReservation, 'READ RESERVATION'),
    prIn(PrIn.ReportCapabilities, 'REPORT CAPABILITIES'),
    prIn(PrIn.ReadFullStatus, 'READ FULL STATUS'),
    prOut(PrOut.Register, 'REGISTER', false),
    prOut(PrOut.Reserve, 'RESERVE', true),
    prOut(PrOut.Release, 'RELEASE', true),
    prOut(PrOut.Clear, 'CLEAR', false),
    prOut(PrOut.Preempt, 'PREEMPT', true),
    prOut(PrOut.PreemptAndAbort, 'PREEMPT AND ABORT', true),
    prOut(PrOut.RegisterAndIgnore, 'REGISTER AND IGNORE EXISTING KEY', false),
    prOut(PrOut.RegisterAndMove, 'REGISTER AND MOVE', false),
    { name: 'RESERVE(6)', opcode: 0x16, flags, usage: [0x16, 0, 0, 0, 0, 0], handler: reserve },
    { name: 'RELEASE(6)', opcode: 0x17, flags, usage: [0x17, 0, 0, 0, 0, 0], handler: release },
    { name: 'RESERVE(10)', opcode: 0x56, flags, usage: [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], handler: reserve },
    { name: 'RELEASE(10)', opcode: 0x57, flags, usage: [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], handler: release },
  ];
}

/** SPC-2 reservation conflict: only these operation codes pass another nexus's RESERVE. */
export const SPC2_ALLOWED_OPCODES: ReadonlySet<number> = new Set([0x12, 0xa0, 0x03, 0x17, 0x57]);

