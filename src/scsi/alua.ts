/**
 * Asymmetric logical unit access (SPC-4 §5.15): what the SCSI layer needs to know about the
 * target port groups of a logical unit, and the one table that says which commands each
 * asymmetric access state allows. The daemon (src/ha/access-state.ts) provides the AluaAccess
 * of each logical unit; the SCSI layer never reads configuration.
 */
import { Asc } from './sense';

/** SPC-4 table 149 (ASYMMETRIC ACCESS STATE), by name. */
export type AluaState = 'active/optimized' | 'active/non-optimized' | 'standby' | 'unavailable' | 'transitioning';

/**
 * How a logical unit's paths behave (the target's alua_failover_type, or the backstore):
 *  - implicit: the owner's group active/optimized, the others active/non-optimized; I/O on a
 *    non-owner path moves ownership there (implicit transition). TPGS = 01b.
 *  - explicit: the owner's group active/optimized, the others standby; SET TARGET PORT GROUPS
 *    moves ownership (and I/O on a standby path is refused). TPGS = 11b (explicit and implicit).
 *  - active/active: every group active/optimized (rbd on Ceph; read-only and null disks). TPGS = 01b.
 */
export type AluaMode = 'implicit' | 'explicit' | 'active/active';

/** One target port group as REPORT TARGET PORT GROUPS describes it. */
export interface AluaPortGroup {
  /** TARGET PORT GROUP identifier (1..65535). */
  readonly id: number;
  /** RELATIVE TARGET PORT IDENTIFIERs of the target ports in the group (1..65535). */
  readonly ports: readonly number[];
}

/** What caused a transition (for the unit attention's exception and the log). */
export interface AluaChange {
  readonly reason: 'implicit' | 'explicit' | 'config';
  /** Implicit transitions: the initiator (node name) whose I/O at a non-owner port caused it. */
  readonly initiator?: string;
}

/** The ALUA view of one logical unit on this gateway; identical data on every gateway. */
export interface AluaAccess {
  readonly mode: AluaMode;
  /** Every target port group of the target (every gateway's), ascending by id. */
  groups(): readonly AluaPortGroup[];
  /** The asymmetric access state of a target port group (unavailable for an unknown id). */
  state(tpgId: number): AluaState;
  /** PREF bit of the group (the configured owner's group). */
  preferred(tpgId: number): boolean;
  /** IMPLICIT TRANSITION TIME (seconds, 0..255) of the extended RTPG header. */
  readonly implicitTransitionSeconds: number;
  /** Called after any group's state changed; returns the unsubscribe function. */
  onChange(listener: (change: AluaChange) => void): () => void;
  /**
   * Make `tpgId` (default: this gateway's group) active/optimized: I/O at a non-owner port
   * (implicit) or SET TARGET PORT GROUPS (explicit). Resolves once the transition is done and
   * this gateway's logical units reflect it; rejects (AluaTransitionError) when it failed.
   * `initiator`: the node whose I/O caused an implicit transition (see AluaChange.initiator).
   */
  activate(reason: 'implicit' | 'explicit', tpgId?: number, initiator?: string): Promise<void>;
}

export class AluaTransitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AluaTransitionError';
  }
}

/** ASYMMETRIC ACCESS STATE field values (SPC-4 table 149). */
export const ALUA_STATE_CODE: { readonly [S in AluaState]: number } = {
  'active/optimized': 0x0,
  'active/non-optimized': 0x1,
  standby: 0x2,
  unavailable: 0x3,
  transitioning: 0xf,
};

export function aluaStateFromCode(code: number): AluaState | undefined {
  return (Object.keys(ALUA_STATE_CODE) as AluaState[]).find((s) => ALUA_STATE_CODE[s] === code);
}

/** TPGS field of standard INQUIRY data (byte 5 bits 5..4). */
export function tpgsBits(mode: AluaMode): number {
  return mode === 'explicit' ? 0x3 : 0x1;
}

/** Supported-state bits of a target port group descriptor (T_SUP O_SUP LBD_SUP U_SUP S_SUP AN_SUP AO_SUP, byte 1). */
export function supportedStates(mode: AluaMode): number {
  // U: a gateway stopping for maintenance reports its group unavailable (src/ha/lock-access.ts).
  const T = 0x80, U = 0x08, S = 0x04, AN = 0x02, AO = 0x01;
  switch (mode) {
    case 'implicit': return T | U | AN | AO;
    // Non-owner paths are standby: I/O there never moves the lock, only SET TARGET PORT GROUPS.
    case 'explicit': return T | U | S | AO;
    case 'active/active': return U | AO;
  }
}

/**
 * Commands a port group in standby or unavailable state still processes (SPC-4 §5.15.2.4.4
 * and §5.15.2.4.5); everything else is NOT READY with the state's ASC. "opcode" or
 * "opcode/service action". Transitioning is as unavailable (§5.15.2.4.6) minus what would
 * need a settled state.
 */
const ALWAYS = ['12', '03', 'a0', 'a3/0a', 'a3/0c', 'a3/0d', 'a4/0a'];
const STATE_TABLE: { readonly [S in AluaState]: { readonly allowed: ReadonlySet<string> | 'all'; readonly asc?: Asc } } = {
  'active/optimized': { allowed: 'all' },
  'active/non-optimized': { allowed: 'all' },
  standby: {
    allowed: new Set([
      ...ALWAYS,
      '00', // TEST UNIT READY: the port is reachable (discovery tools list the LUN on every path)
      '25', '9e/10', // READ CAPACITY (10)/(16): the size is known on every path
      '4c', '4d', // LOG SELECT / LOG SENSE
      '15', '55', '1a', '5a', // MODE SELECT / MODE SENSE (6)/(10)
      '5e', '5f', // PERSISTENT RESERVE IN / OUT
      '3b', '3c', // WRITE / READ BUFFER
      '1c', '1d', // RECEIVE / SEND DIAGNOSTIC RESULTS
    ]),
    asc: Asc.LogicalUnitNotAccessibleTargetPortInStandbyState,
  },
  unavailable: {
    allowed: new Set([...ALWAYS, '3b', '3c', '1c', '1d']),
    asc: Asc.LogicalUnitNotAccessibleTargetPortInUnavailableState,
  },
  transitioning: {
    allowed: new Set([...ALWAYS]),
    asc: Asc.LogicalUnitNotAccessibleAsymmetricAccessStateTransition,
  },
};

function key(cdb: Buffer): string {
  const op = cdb[0].toString(16).padStart(2, '0');
  if (cdb.length > 1 && (cdb[0] === 0x9e || cdb[0] === 0xa3 || cdb[0] === 0xa4)) return `${op}/${(cdb[1] & 0x1f).toString(16).padStart(2, '0')}`;
  return op;
}

/**
 * Is a change announced with ASYMMETRIC ACCESS STATE CHANGED (2A/06) on every I_T nexus?
 * Explicit (SET TARGET PORT GROUPS; its own nexus is spared by the target device) and
 * administrative changes (owner moved, failover, failback, drain) are. An implicit transition
 * caused by an initiator's I/O at a non-owner port is not: the states follow the I/O (RTPG
 * tells the truth at once), and a unit attention on the other paths would fail their next
 * command every time two initiators share the LU through different gateways (the lock
 * ping-pong ceph-iscsi calls lock bouncing; libiscsi's MultipathIO does exactly that), which
 * tcmu-runner's implicit ALUA does not do either.
 */
export function aluaChangeAnnounced(change: AluaChange): boolean {
  return change.reason !== 'implicit';
}

/** The ASC a CDB gets in `state` (NOT READY), or undefined when the state lets it through. */
export function aluaRefusal(state: AluaState, cdb: Buffer): Asc | undefined {
  const row = STATE_TABLE[state];
  if (row.allowed === 'all' || cdb.length === 0) return undefined;
  const k = key(cdb);
  if (row.allowed.has(k) || row.allowed.has(k.slice(0, 2))) return undefined;
  return row.asc;
}
