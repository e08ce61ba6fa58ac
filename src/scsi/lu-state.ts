/**
 * State that belongs to the logical unit, not to the gateway serving it: persistent
 * reservations (SPC-4 §5.13), the SPC-2 reservation, and the unit attentions that one
 * I_T nexus's action establishes for others (PREEMPT, CLEAR, RELEASE, mode changes). Every
 * target and every gateway exporting an image sees one LuState through an LuStateStore.
 *
 * The SCSI layer knows only this interface. Implementations: LocalLuStateStore here (one
 * process, optional APTPL persistence); the shared store of the data dir in src/ha.
 *
 * Contract: `current()` is read on every command and must be a cached snapshot (it may
 * revalidate cheaply); `update()` is an atomic read-modify-write on the latest state that
 * resolves only once the new state is committed and every gateway sharing it has applied it
 * (or been given up on), so that a conflicting command can never be admitted anywhere after
 * the PERSISTENT RESERVE OUT that caused the conflict returned GOOD.
 */
import { Asc } from './sense';
import type { ModeParameters } from './mode-pages';
import { EMPTY_PR_STATE, PrState, PrStateJson, Registration, prStateFromJson, prStateToJson } from './reservations';
import { SerialQueue } from '../util/serial-queue';

/** An SPC-2 RESERVE held by one I_T nexus (SPC-2 §7.21). */
export interface Spc2Reservation {
  /** Key of the holding I_T nexus (ITNexus.key: initiator port | target port). */
  readonly nexusKey: string;
  /** Who serves that nexus (gateway instance id), so that a dead gateway's reservation can be released. */
  readonly holderInstance?: string;
}

/** Mode parameters a MODE SELECT set, and the defaults (disk controls) they were set against. */
export interface SharedMode {
  readonly defaults: ModeParameters;
  readonly current: ModeParameters;
}

export interface LuState {
  readonly pr: PrState;
  readonly spc2?: Spc2Reservation;
  /** Undefined: every LU uses its defaults (nothing was selected since the last reset). */
  readonly mode?: SharedMode;
}

export const EMPTY_LU_STATE: LuState = Object.freeze({ pr: EMPTY_PR_STATE });

/**
 * A unit attention one nexus's action establishes for others. `regs` undefined: every I_T
 * nexus of the LU; otherwise the nexuses of these registrations. `except`: the issuing nexus.
 * `abort`: PREEMPT AND ABORT — the tasks of those nexuses end too.
 */
export interface SharedAttention {
  readonly asc: Asc;
  readonly regs?: readonly Registration[];
  readonly except?: string;
  readonly abort?: boolean;
  /** MODE SELECT: the new mode parameters (each LU establishes MODE PARAMETERS CHANGED itself). */
  readonly mode?: ModeParameters;
  /** LOGICAL UNIT RESET / target reset: every LU of the image resets (`asc` is the reset's UA). */
  readonly reset?: boolean;
}

export interface LuStateChange<T> {
  readonly state: LuState;
  readonly result: T;
  readonly attentions?: readonly SharedAttention[];
  /** The listener (LU) that made the change and applied its attentions itself. */
  readonly origin?: LuStateListener;
}

/** A logical unit (on any target of this process) that shares the state. */
export interface LuStateListener {
  /** Establish the attention on this LU's nexuses; resolve once aborted tasks (if any) have ended. */
  attention(a: SharedAttention): Promise<void> | void;
}

export interface LuStateStore {
  /** The state as last applied here (no I/O). */
  readonly state: LuState;
  /** The state to check a command against: the cached snapshot, revalidated if it may be stale. */
  current(): LuState;
  /**
   * Stores that cannot revalidate synchronously in current() (RADOS): a promise the command
   * waits for before it is checked, when the cached state may be stale; undefined otherwise.
   * It rejects with the SCSI error to return when the state cannot be revalidated.
   */
  ready?(): Promise<void> | undefined;
  /** Atomically change the latest state; `change` may throw (a SCSI error) to leave it as it is. */
  update<T>(change: (current: LuState) => LuStateChange<T>): Promise<T>;
  /** Attentions established by any nexus of any gateway reach every subscribed LU. */
  subscribe(listener: LuStateListener): () => void;
  /** Resolves when the updates started in this process have landed; undefined when none is in flight. */
  whenSettled(): Promise<void> | undefined;
}

/** Hand attentions to listeners; waits for them (PREEMPT AND ABORT ends tasks). */
export async function deliverAttentions(
  listeners: Iterable<LuStateListener>, attentions: readonly SharedAttention[], origin?: LuStateListener,
): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const a of attentions) {
    for (const l of listeners) {
      if (l === origin) continue;
      const r = l.attention(a);
      if (r) waits.push(r);
    }
  }
  await Promise.all(waits);
}

export interface LocalLuStateStoreOptions {
  /** State restored at start (an APTPL state persisted with the image). */
  readonly initial?: PrState;
  /**
   * Persist the PR state: called after each change while APTPL is (or was just) active, with
   * `undefined` when APTPL was turned off so that the persisted copy is removed.
   */
  readonly persist?: (state: PrState | undefined) => Promise<void>;
}

/** In-process LuStateStore (one gateway, no sharing); updates are applied one at a time. */
export class LocalLuStateStore implements LuStateStore {
  private value: LuState;
  private readonly queue = new SerialQueue();
  private readonly listeners = new Set<LuStateListener>();

  constructor(private readonly options: LocalLuStateStoreOptions = {}) {
    this.value = options.initial ? Object.freeze({ pr: options.initial }) : EMPTY_LU_STATE;
  }

  get state(): LuState {
    return this.value;
  }

  current(): LuState {
    return this.value;
  }

  whenSettled(): Promise<void> | undefined {
    return this.queue.settled();
  }

  subscribe(listener: LuStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  update<T>(change: (current: LuState) => LuStateChange<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const before = this.value;
      const { state, result, attentions, origin } = change(before);
      if (state !== before) {
        if (this.options.persist && state.pr !== before.pr && (state.pr.aptpl || before.pr.aptpl)) {
          await this.options.persist(state.pr.aptpl ? state.pr : undefined);
        }
        this.value = state;
      }
      if (attentions && attentions.length > 0) await deliverAttentions(this.listeners, attentions, origin);
      return result;
    };
    return this.queue.run(run);
  }
}

// Serialization, for stores that keep the state outside the process.

export interface LuStateJson {
  pr: PrStateJson;
  spc2?: { nexusKey: string; holderInstance?: string };
  mode?: { defaults: ModeParameters; current: ModeParameters };
}

export interface SharedAttentionJson {
  asc: number;
  regs?: PrStateJson['registrations'];
  except?: string;
  abort?: boolean;
  mode?: ModeParameters;
  reset?: boolean;
}

const MODE_KEYS: readonly (keyof ModeParameters)[] = ['wce', 'dSense', 'swp', 'tas', 'uaIntlckCtrl', 'qam'];

function modeFromJson(j: unknown): ModeParameters | undefined {
  if (!j || typeof j !== 'object') return undefined;
  const o = j as Record<string, unknown>;
  for (const k of MODE_KEYS) if (typeof o[k] !== (k === 'uaIntlckCtrl' || k === 'qam' ? 'number' : 'boolean')) return undefined;
  return Object.freeze(Object.fromEntries(MODE_KEYS.map((k) => [k, o[k]])) as unknown as ModeParameters);
}

export function luStateToJson(s: LuState): LuStateJson {
  return {
    pr: prStateToJson(s.pr),
    ...(s.spc2 ? { spc2: { ...s.spc2 } } : {}),
    ...(s.mode ? { mode: { defaults: { ...s.mode.defaults }, current: { ...s.mode.current } } } : {}),
  };
}

export function luStateFromJson(j: LuStateJson): LuState {
  if (!j || typeof j !== 'object' || !j.pr || !Array.isArray(j.pr.registrations)) throw new TypeError('no logical unit state');
  const spc2 = j.spc2 && typeof j.spc2.nexusKey === 'string' ? Object.freeze({ ...j.spc2 }) : undefined;
  const defaults = modeFromJson(j.mode?.defaults);
  const current = modeFromJson(j.mode?.current);
  const mode = defaults && current ? Object.freeze({ defaults, current }) : undefined;
  return Object.freeze({ pr: prStateFromJson(j.pr), ...(spc2 ? { spc2 } : {}), ...(mode ? { mode } : {}) });
}

export function attentionToJson(a: SharedAttention): SharedAttentionJson {
  return {
    asc: a.asc,
    ...(a.regs ? { regs: a.regs.map((r) => ({ ...r, key: r.key.toString() })) } : {}),
    ...(a.except !== undefined ? { except: a.except } : {}),
    ...(a.abort ? { abort: true } : {}),
    ...(a.mode ? { mode: { ...a.mode } } : {}),
    ...(a.reset ? { reset: true } : {}),
  };
}

export function attentionFromJson(j: SharedAttentionJson): SharedAttention {
  return {
    asc: j.asc as Asc,
    ...(j.regs ? { regs: j.regs.map((r) => Object.freeze({ ...r, key: BigInt(r.key) })) } : {}),
    ...(j.except !== undefined ? { except: j.except } : {}),
    ...(j.abort ? { abort: true } : {}),
    ...(j.mode && modeFromJson(j.mode) ? { mode: modeFromJson(j.mode) } : {}),
    ...(j.reset ? { reset: true } : {}),
  };
}
