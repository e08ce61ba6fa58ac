/**
 * REPORT TARGET PORT GROUPS (SPC-4 §6.36) and SET TARGET PORT GROUPS (SPC-4 §6.44): the ALUA
 * commands. The groups, their states and ports come from the LU's AluaAccess, the same data on
 * every gateway. STPG validates its parameter list here; the transition itself runs after the
 * command has left the task set (ScsiTarget.execute), because it replaces this logical unit.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u32 } from './cdb';
import { ALUA_STATE_CODE, AluaAccess, AluaState, aluaStateFromCode, supportedStates } from './alua';
import { Asc, SenseError, SenseKey, invalidFieldInCdb, invalidFieldInParameterList } from './sense';

/** RTPG PARAMETER DATA FORMAT (CDB byte 1 bits 7..5). */
const enum RtpgFormat {
  LengthOnly = 0,
  Extended = 1,
}

/** The RTPG parameter data of `alua`, in the given format (not truncated). */
export function reportTargetPortGroupsData(alua: AluaAccess, extended: boolean): Buffer {
  const groups = alua.groups();
  const header = extended ? 8 : 4;
  const size = header + groups.reduce((n, g) => n + 8 + 4 * g.ports.length, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32BE(size - 4, 0); // RETURN DATA LENGTH
  if (extended) {
    out[4] = 0x10; // FORMAT TYPE 001b
    out[5] = Math.max(0, Math.min(255, alua.implicitTransitionSeconds)); // IMPLICIT TRANSITION TIME
  }
  const sup = supportedStates(alua.mode);
  let at = header;
  for (const g of groups) {
    out[at] = (alua.preferred(g.id) ? 0x80 : 0) | ALUA_STATE_CODE[alua.state(g.id)];
    out[at + 1] = sup;
    out.writeUInt16BE(g.id, at + 2);
    out[at + 5] = 0; // STATUS CODE: no status available
    out[at + 7] = Math.min(255, g.ports.length); // TARGET PORT COUNT
    at += 8;
    for (const rtpi of g.ports) {
      out.writeUInt16BE(rtpi, at + 2);
      at += 4;
    }
  }
  return out;
}

function reportTargetPortGroups(lu: LogicalUnit, task: Task): ScsiResult {
  const cdb = task.command.cdb;
  const format = cdb[1] >> 5;
  if (format !== RtpgFormat.LengthOnly && format !== RtpgFormat.Extended) throw invalidFieldInCdb(1, 7);
  const data = reportTargetPortGroupsData(lu.alua!, format === RtpgFormat.Extended);
  return { status: ScsiStatus.Good, data: data.subarray(0, Math.min(data.length, u32(cdb, 6))) };
}

/** One requested transition of an STPG parameter list. */
export interface PortGroupRequest {
  readonly id: number;
  readonly state: AluaState;
}

/**
 * Validate an STPG parameter list (4 reserved bytes, then 4-byte descriptors) against the
 * groups and the states the mode lets an initiator request. Throws the SenseError to report.
 */
export function parseSetTargetPortGroups(alua: AluaAccess, list: Buffer): PortGroupRequest[] {
  if (list.length < 4 || (list.length - 4) % 4 !== 0) throw new SenseError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
  const sup = supportedStates(alua.mode);
  const bitOf: { readonly [S in AluaState]: number } = {
    'active/optimized': 0x01, 'active/non-optimized': 0x02, standby: 0x04, unavailable: 0x08, transitioning: 0x80,
  };
  const out: PortGroupRequest[] = [];
  const known = new Set(alua.groups().map((g) => g.id));
  for (let at = 4; at < list.length; at += 4) {
    const state = aluaStateFromCode(list[at] & 0x0f);
    // Transitioning is never requested, nor unavailable (a gateway's stop sets it); other
    // states only as the group supports them.
    if (!state || state === 'transitioning' || state === 'unavailable' || !(sup & bitOf[state])) throw invalidFieldInParameterList(at, 3);
    const id = list.readUInt16BE(at + 2);
    if (!known.has(id) || out.some((r) => r.id === id)) throw invalidFieldInParameterList(at + 2, 7);
    // One owner per logical unit: at most one group can become active/optimized.
    if (state === 'active/optimized' && out.some((r) => r.state === 'active/optimized')) throw invalidFieldInParameterList(at, 3);
    out.push({ id, state });
  }
  const ao = out.find((r) => r.state === 'active/optimized');
  for (const r of out) {
    // Taking the owner's group out of active/optimized needs another group to take over.
    if (r.state !== 'active/optimized' && alua.state(r.id) === 'active/optimized' && !ao) {
      throw invalidFieldInParameterList(4 + 4 * out.indexOf(r), 3);
    }
  }
  return out;
}

async function setTargetPortGroups(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const length = u32(task.command.cdb, 6);
  if (length === 0) return { status: ScsiStatus.Good };
  const list = await lu.receiveDataOut(task, length);
  const alua = lu.alua!;
  const ao = parseSetTargetPortGroups(alua, list).find((r) => r.state === 'active/optimized');
  if (ao && alua.state(ao.id) !== 'active/optimized') lu.deferAluaTransition(task.command, () => alua.activate('explicit', ao.id));
  return { status: ScsiStatus.Good, dataOutTransferLength: length };
}

export function targetPortGroupCommands(explicit: boolean): CommandDefinition[] {
  const out: CommandDefinition[] = [{
    name: 'REPORT TARGET PORT GROUPS', opcode: 0xa3, serviceAction: 0x0a,
    flags: CommandFlag.ReservationAllowed,
    usage: [0xa3, 0xea, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    fields: [0, 0xc0],
    handler: reportTargetPortGroups,
  }];
  if (explicit) {
    out.push({
      name: 'SET TARGET PORT GROUPS', opcode: 0xa4, serviceAction: 0x0a, flags: CommandFlag.DataOut,
      usage: [0xa4, 0x0a, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
      handler: setTargetPortGroups,
    });
  }
  return out;
}
