/**
 * REQUEST SENSE (SPC-4 §6.39). With autosense every error already carried its sense data,
 * so REQUEST SENSE reports the logical unit's current state: the next unit attention
 * (which it clears), a sanitize in progress, a missing medium, or NO SENSE. DESC selects descriptor format.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit, LuNexus } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { Asc, SenseInfo, SenseKey, encodeSense } from './sense';

function requestSense(lu: LogicalUnit, task: Task, ns: LuNexus): ScsiResult {
  const cdb = task.command.cdb;
  const desc = (cdb[1] & 0x01) !== 0;
  let info: SenseInfo;
  const ua = ns.ua.take();
  if (ua !== undefined) {
    info = { key: SenseKey.UnitAttention, asc: ua };
    if (ua === Asc.ReportedLunsDataHasChanged) lu.target.reportedLunsDelivered(ns.nexus.key);
  } else if (lu.sanitizing) {
    info = { key: SenseKey.NotReady, asc: Asc.SanitizeInProgress, progress: lu.sanitizing.progress };
  } else if (!lu.mediumPresent) {
    info = { key: SenseKey.NotReady, asc: Asc.MediumNotPresent };
  } else {
    info = { key: SenseKey.NoSense, asc: Asc.NoAdditionalSense };
  }
  return { status: ScsiStatus.Good, data: allocation(encodeSense(info, desc), cdb[4]) };
}

/** Sense data for a LUN without a logical unit: LOGICAL UNIT NOT SUPPORTED, as data. */
export function requestSenseNoLun(cdb: Buffer): Buffer {
  return allocation(encodeSense({ key: SenseKey.IllegalRequest, asc: Asc.LogicalUnitNotSupported }, (cdb[1] & 0x01) !== 0), cdb[4]);
}

function allocation(data: Buffer, alloc: number): Buffer {
  return data.subarray(0, Math.min(data.length, alloc));
}

export function requestSenseCommands(): CommandDefinition[] {
  return [{
    name: 'REQUEST SENSE', opcode: 0x03, flags: CommandFlag.NoUnitAttention | CommandFlag.ReservationAllowed,
    usage: [0x03, 0x01, 0x00, 0x00, 0xff, 0x00],
    handler: requestSense,
  }];
}
