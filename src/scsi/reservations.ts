/**
 * SCSI-3 persistent reservation state (SPC-4 §5.13) and the reservation-state interface.
 *
 * The state of one logical unit lives in its LuStateStore (lu-state.ts), shared by every
 * target and gateway exporting the image. The data path only reads the store's cached
 * snapshot (conflict checks are synchronous); PERSISTENT RESERVE OUT goes through update(),
 * an atomic read-modify-write.
 */
import type { ITNexus } from './sam';

/** PERSISTENT RESERVATION TYPE codes (SPC-4 table 169). */
export const enum PrType {
  WriteExclusive = 0x1,
  ExclusiveAccess = 0x3,
  WriteExclusiveRegistrantsOnly = 0x5,
  ExclusiveAccessRegistrantsOnly = 0x6,
  WriteExclusiveAllRegistrants = 0x7,
  ExclusiveAccessAllRegistrants = 0x8,
}

export const PR_TYPES: readonly number[] = [1, 3, 5, 6, 7, 8];

export function isAllRegistrants(type: number): boolean {
  return type === PrType.WriteExclusiveAllRegistrants || type === PrType.ExclusiveAccessAllRegistrants;
}

export function isRegistrantsOnly(type: number): boolean {
  return type === PrType.WriteExclusiveRegistrantsOnly || type === PrType.ExclusiveAccessRegistrantsOnly;
}

function isWriteExclusive(type: number): boolean {
  return type === PrType.WriteExclusive || type === PrType.WriteExclusiveRegistrantsOnly || type === PrType.WriteExclusiveAllRegistrants;
}

/** One registered I_T nexus (or, with ALL_TG_PT, one initiator port through every target port). */
export interface Registration {
  readonly key: bigint;
  /** Initiator identity: SCSI initiator port name (name + ISID), or the node name when ISIDs are not enforced. */
  readonly initiator: string;
  /** SCSI initiator port name as registered, for the TransportID of READ FULL STATUS. */
  readonly initiatorPortName: string;
  readonly targetPortName: string;
  readonly relativeTargetPortId: number;
  readonly allTargetPorts: boolean;
  /**
   * Registered through a TransportID naming only the iSCSI node (format 00b, SPEC_I_PT or
   * REGISTER AND MOVE): it covers every initiator port (ISID) of that node.
   */
  readonly allInitiatorPorts?: boolean;
}

export interface Reservation {
  readonly type: number;
  /** The holding registration; all registrants hold an all-registrants reservation. */
  readonly holder?: Registration;
  /**
   * Target port of the holding I_T nexus: with ALL_TG_PT the registration spans every port,
   * but only the I_T nexus that reserved holds the reservation.
   */
  readonly holderPort?: string;
}

export interface PrState {
  /** PRGENERATION: 32-bit wrapping counter. */
  readonly generation: number;
  readonly registrations: readonly Registration[];
  readonly reservation?: Reservation;
  /** Activate persist through power loss (set by the last REGISTER). */
  readonly aptpl: boolean;
}

export const EMPTY_PR_STATE: PrState = Object.freeze({ generation: 0, registrations: [], aptpl: false });

/** The initiator identity of a nexus (SPC-4 I_T nexus; ISID dropped when not enforced). */
export function initiatorId(nexus: ITNexus, enforceIsids: boolean): string {
  return enforceIsids ? nexus.initiatorPortName : nexus.initiatorName;
}

export function matches(reg: Registration, nexus: ITNexus, enforceIsids: boolean): boolean {
  const id = reg.allInitiatorPorts ? nexus.initiatorName : initiatorId(nexus, enforceIsids);
  return reg.initiator === id && (reg.allTargetPorts || reg.targetPortName === nexus.targetPortName);
}

export function registrationOf(pr: PrState, nexus: ITNexus, enforceIsids: boolean): Registration | undefined {
  return pr.registrations.find((r) => matches(r, nexus, enforceIsids));
}

/** Does this nexus hold the reservation (all registrants hold an all-registrants one)? */
export function holds(pr: PrState, nexus: ITNexus, enforceIsids: boolean): boolean {
  const r = pr.reservation;
  if (!r) return false;
  if (isAllRegistrants(r.type)) return registrationOf(pr, nexus, enforceIsids) !== undefined;
  return isHolderNexus(r, nexus, enforceIsids);
}

function isHolderNexus(r: Reservation, nexus: ITNexus, enforceIsids: boolean): boolean {
  return r.holder !== undefined && matches(r.holder, nexus, enforceIsids) && r.holderPort === nexus.targetPortName;
}

/**
 * SPC-4 §5.13.1 table 47: does a command of this class conflict with the persistent
 * reservation for this nexus? `readClass` commands (reads, MODE SENSE, ...) are allowed to
 * every nexus under the Write Exclusive types; registrants are holders for the -RO/-AR types.
 */
export function persistentConflict(pr: PrState, nexus: ITNexus, enforceIsids: boolean, readClass: boolean): boolean {
  const r = pr.reservation;
  if (!r) return false;
  const holder = isAllRegistrants(r.type) || isRegistrantsOnly(r.type)
    ? registrationOf(pr, nexus, enforceIsids) !== undefined
    : isHolderNexus(r, nexus, enforceIsids);
  if (holder) return false;
  return !(readClass && isWriteExclusive(r.type));
}

// Serialization of the state, for stores that keep it outside the process (APTPL, HA).

export interface PrStateJson {
  generation: number;
  aptpl: boolean;
  registrations: {
    key: string; initiator: string; initiatorPortName: string; targetPortName: string; relativeTargetPortId: number;
    allTargetPorts: boolean; allInitiatorPorts?: boolean;
  }[];
  reservation?: { type: number; holder?: number; holderPort?: string };
}

export function prStateToJson(s: PrState): PrStateJson {
  return {
    generation: s.generation,
    aptpl: s.aptpl,
    registrations: s.registrations.map((r) => ({ ...r, key: r.key.toString() })),
    reservation: s.reservation
      ? {
        type: s.reservation.type,
        holder: s.reservation.holder ? s.registrations.indexOf(s.reservation.holder) : undefined,
        holderPort: s.reservation.holderPort,
      }
      : undefined,
  };
}

export function prStateFromJson(j: PrStateJson): PrState {
  const registrations = j.registrations.map((r) => Object.freeze({ ...r, key: BigInt(r.key) }));
  const holder = j.reservation?.holder !== undefined ? registrations[j.reservation.holder] : undefined;
  return Object.freeze({
    generation: j.generation >>> 0,
    aptpl: j.aptpl,
    registrations,
    reservation: j.reservation ? Object.freeze({ type: j.reservation.type, holder, holderPort: j.reservation.holderPort }) : undefined,
  });
}
