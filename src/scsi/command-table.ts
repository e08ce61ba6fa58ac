/**
 * The command table: operation code (and service action) -> descriptor. One descriptor
 * drives dispatch, the generic CDB check (every bit outside the usage mask must be zero)
 * and REPORT SUPPORTED OPERATION CODES, so the CDB USAGE DATA we report is exactly what we
 * evaluate. Flags mark the command classes other checks need (medium, UAs, reservations).
 */
import type { ScsiResult } from './sam';
import type { Task } from './task-set';
import type { LogicalUnit, LuNexus } from './logical-unit';
import { highestBit } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb } from './sense';

export const enum CommandFlag {
  None = 0,
  /** Transfers data from the initiator (Data-Out). */
  DataOut = 1 << 0,
  /** Needs the medium: NOT READY / MEDIUM NOT PRESENT while it is ejected. */
  NeedsMedium = 1 << 1,
  /** Neither reports nor clears unit attentions (INQUIRY, REPORT LUNS; REQUEST SENSE reports them as data). */
  NoUnitAttention = 1 << 2,
  /** Reads the medium or LU state: allowed to every nexus under Write Exclusive reservations. */
  ReadClass = 1 << 3,
  /** Modifies the medium (write protection and reservation classes). */
  MediumWrite = 1 << 4,
  /** Allowed even when another I_T nexus holds a reservation (SPC-4 table 47 "allowed"). */
  ReservationAllowed = 1 << 5,
}

export type CommandHandler = (lu: LogicalUnit, task: Task, nexus: LuNexus) => Promise<ScsiResult> | ScsiResult;

export interface CommandDefinition {
  readonly name: string;
  readonly opcode: number;
  /** Set for commands selected by a SERVICE ACTION field (byte 1, bits 4..0). */
  readonly serviceAction?: number;
  /**
   * CDB USAGE DATA (SPC-4 §6.35.3): byte 0 is the operation code, a service action field
   * holds the service action, every other bit is 1 iff the device server evaluates it.
   * Its length is the CDB length.
   */
  readonly usage: readonly number[];
  /** Bits accepted and ignored (vendor specific, obsolete); reported as 0. */
  readonly ignored?: readonly number[];
  /** Per byte, bits that belong to a multi-bit field together with the bit above (bit pointers). */
  readonly fields?: readonly number[];
  readonly flags: CommandFlag;
  /**
   * For commands whose reservation class depends on the CDB (SBC-3 table "commands allowed
   * in the presence of persistent reservations"): true when this CDB is allowed.
   */
  readonly reservationAllowed?: (cdb: Buffer) => boolean;
  /** Command timeouts descriptor values in seconds: [nominal, recommended]. */
  readonly timeouts?: readonly [number, number];
  readonly handler: CommandHandler;
}

export interface CommandDescriptor extends CommandDefinition {
  readonly cdbLength: number;
  /** Bits a CDB may have set: usage | ignored | the service action field. */
  readonly allowed: Uint8Array;
}

const SERVICE_ACTION_MASK = 0x1f;
/** Control byte: NACA and LINK are not supported (usage 0); vendor bits 7..6 are ignored. */
export const CONTROL_IGNORED = 0xc0;

function describe(def: CommandDefinition): CommandDescriptor {
  const n = def.usage.length;
  const allowed = new Uint8Array(n);
  for (let i = 1; i < n; i++) allowed[i] = def.usage[i] | (def.ignored?.[i] ?? 0);
  allowed[n - 1] |= CONTROL_IGNORED;
  if (def.serviceAction !== undefined) allowed[1] = (def.usage[1] & ~SERVICE_ACTION_MASK) | SERVICE_ACTION_MASK | (def.ignored?.[1] ?? 0);
  return { ...def, cdbLength: n, allowed };
}

/**
 * Bit pointer for disallowed bits: the highest offending bit, moved up to the most
 * significant bit of its field when it is part of a multi-bit field (SPC-4 §4.5.2.4.2).
 */
export function fieldTop(bad: number, continues: number): number {
  let bit = highestBit(bad);
  while (bit < 7 && continues & (1 << bit)) bit++;
  return bit;
}

export class CommandTable {
  private readonly byOpcode: (CommandDescriptor | Map<number, CommandDescriptor> | undefined)[] = new Array(256);
  /** All descriptors sorted by operation code and service action. */
  readonly all: readonly CommandDescriptor[];

  constructor(definitions: readonly CommandDefinition[]) {
    const list: CommandDescriptor[] = [];
    for (const def of definitions) {
      const d = describe(def);
      if (def.usage[0] !== def.opcode) throw new Error(`${def.name}: usage[0] must be the operation code`);
      const slot = this.byOpcode[def.opcode];
      if (def.serviceAction === undefined) {
        if (slot) throw new Error(`duplicate operation code ${def.opcode.toString(16)}`);
        this.byOpcode[def.opcode] = d;
      } else {
        if ((def.usage[1] & SERVICE_ACTION_MASK) !== def.serviceAction) throw new Error(`${def.name}: usage[1] must hold the service action`);
        if (slot && !(slot instanceof Map)) throw new Error(`operation code ${def.opcode.toString(16)} mixes service actions`);
        const map = slot ?? new Map<number, CommandDescriptor>();
        if (map.has(def.serviceAction)) throw new Error(`duplicate service action ${def.name}`);
        map.set(def.serviceAction, d);
        this.byOpcode[def.opcode] = map;
      }
      list.push(d);
    }
    this.all = list.sort((a, b) => a.opcode - b.opcode || (a.serviceAction ?? 0) - (b.serviceAction ?? 0));
  }

  /** Does this operation code use service actions? undefined when not supported at all. */
  hasServiceActions(opcode: number): boolean | undefined {
    const slot = this.byOpcode[opcode];
    return slot === undefined ? undefined : slot instanceof Map;
  }

  find(opcode: number, serviceAction?: number): CommandDescriptor | undefined {
    const slot = this.byOpcode[opcode];
    if (slot instanceof Map) return serviceAction === undefined ? undefined : slot.get(serviceAction);
    return slot;
  }

  /** Look the CDB up and check it against the descriptor; throws the matching SenseError. */
  lookup(cdb: Buffer): CommandDescriptor {
    const slot = this.byOpcode[cdb[0]];
    if (slot === undefined) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidCommandOperationCode, undefined, { cdb: true, byte: 0, bit: 7 });
    let d: CommandDescriptor | undefined;
    if (slot instanceof Map) {
      d = cdb.length > 1 ? slot.get(cdb[1] & SERVICE_ACTION_MASK) : undefined;
      if (!d) throw invalidFieldInCdb(1, 4);
    } else {
      d = slot;
    }
    const allowed = d.allowed;
    if (cdb.length < allowed.length) throw invalidFieldInCdb(cdb.length);
    for (let i = 1; i < allowed.length; i++) {
      const bad = cdb[i] & ~allowed[i];
      if (bad !== 0) throw invalidFieldInCdb(i, fieldTop(bad, d.fields?.[i] ?? 0));
    }
    return d;
  }
}
