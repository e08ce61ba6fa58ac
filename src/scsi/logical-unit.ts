/**
 * A disk logical unit (SBC-3 direct-access block device) on top of a BlockDevice: the task
 * set, per-I_T-nexus state (unit attentions, PREVENT), the shared mode parameters, and the
 * one place where a command's errors become CHECK CONDITION.
 *
 * Order of checks for a command (SAM-5/SPC-4, as LIO does it): task attribute and queue
 * depth -> task set ordering -> unit attention -> operation code and CDB bits (command
 * table) -> medium -> the handler's own field checks -> Data-Out -> backstore.
 */
import type { Logger } from '../util/log';
import { BlockDevice, BlockDeviceError, PAGE_SIZE } from '../block/block-device';
import { GuardedDevice, WriteBackObserver, isAbandoned } from '../block/guarded-device';
import {
  ITNexus, ScsiCommand, ScsiResult, ScsiStatus, TaskAttribute, TaskManagementResponse,
} from './sam';
import { Task, TaskSet, TaskState } from './task-set';
import { UnitAttentions } from './unit-attention';
import {
  Asc, ReservationConflictError, SenseError, SenseInfo, SenseKey, encodeSense, lbaOutOfRange, mediumNotPresent, writeProtected,
} from './sense';
import { CommandDescriptor, CommandFlag, CommandTable } from './command-table';
import { diskCommands } from './commands';
import { ModeParameters } from './mode-pages';
import { RangeLock, RangeLocks } from './range-lock';
import { DiskSettings } from './disk-settings';
import { deriveNaa } from './vpd';
import { Registration, matches, persistentConflict } from './reservations';
import { LocalLuStateStore, LuState, LuStateListener, LuStateStore, SharedAttention } from './lu-state';
import { SPC2_ALLOWED_OPCODES } from './persistent-reservations';
import { CopyResults } from './extended-copy';
import type { SanitizeState } from './sanitize';
import { LuStats } from '../metrics/stats';
import { AluaAccess, AluaChange, AluaState, aluaChangeAnnounced, aluaRefusal } from './alua';

/** Largest data transfer of one command (Block Limits VPD MAXIMUM TRANSFER LENGTH). */
export const MAX_TRANSFER_BYTES = 8 * 1024 * 1024;

/** What a logical unit needs from the SCSI target device it belongs to. */
export interface TargetContext {
  readonly targetName: string;
  /** LUNs of the target as this nexus sees them (LUN masking), ascending. */
  luns(nexus: ITNexus): readonly number[];
  /** REPORT LUNS was processed on this nexus: clear REPORTED LUNS DATA HAS CHANGED on every LU. */
  reportedLunsDelivered(nexusKey: string): void;
  /** A logical unit of the gateway by NAA designator that this initiator may access (EXTENDED COPY). */
  findLogicalUnit(naa: Buffer, initiatorName: string): LogicalUnit | undefined;
  /** Does LUN masking let this initiator reach this logical unit of the target? */
  exposes(initiatorName: string, lu: LogicalUnit): boolean;
  /** SCSI target port name of a RELATIVE TARGET PORT IDENTIFIER seen so far (REGISTER AND MOVE). */
  targetPortName(relativeTargetPortId: number): string | undefined;
}

export interface LogicalUnitOptions {
  readonly lun: number;
  readonly device: BlockDevice;
  readonly wwn: string;
  readonly name: string;
  readonly settings: DiskSettings;
  /** Report a removable medium (RMB=1): START STOP UNIT can eject/load it. */
  readonly removable: boolean;
  /** Reservations and shared unit attentions (one per image, shared by every target and gateway exporting it). */
  readonly luState?: LuStateStore;
  /** Range locks of the image (one per image in this process: COMPARE AND WRITE serializes across targets). */
  readonly locks?: RangeLocks;
  /** Target port in standby for this LU (see LogicalUnitConfig.standby). */
  readonly standby?: boolean;
  /** ALUA: target port groups and their states (see LogicalUnitConfig.alua). */
  readonly alua?: AluaAccess;
  /** With `standby`: reads still work (see LogicalUnitConfig.standbyReads). */
  readonly standbyReads?: boolean;
}

/** State of one I_T nexus in one logical unit. */
export class LuNexus {
  readonly ua = new UnitAttentions();
  /** PREVENT ALLOW MEDIUM REMOVAL: this nexus prevents medium removal. */
  prevent = false;
  /** Mode parameters in effect when this nexus's pending MODE PARAMETERS CHANGED UA arose. */
  modeKnown?: ModeParameters;
  constructor(readonly nexus: ITNexus) {}
}

const enum Opcode {
  RequestSense = 0x03,
  Inquiry = 0x12,
  Sanitize = 0x48,
  ReportLuns = 0xa0,
}

function sameMode(a: ModeParameters, b: ModeParameters): boolean {
  return (Object.keys(a) as (keyof ModeParameters)[]).every((k) => a[k] === b[k]);
}

/** Medium access commands (SBC-3 §4.2.2): they read or write the logical blocks. */
function isMediumAccess(flags: CommandFlag): boolean {
  return (flags & CommandFlag.NeedsMedium) !== 0 && (flags & (CommandFlag.ReadClass | CommandFlag.MediumWrite)) !== 0;
}

export class LogicalUnit {
  readonly lun: number;
  readonly wwn: string;
  readonly name: string;
  readonly settings: DiskSettings;
  readonly removable: boolean;
  /**
   * This gateway does not hold the storage (another gateway owns the image): only what a
   * standby port group processes runs here (alua.ts), whatever state the port reports.
   */
  readonly standby: boolean;
  /** ALUA view of the LU (undefined: no ALUA, TPGS 00b; `standby` alone decides). */
  readonly alua?: AluaAccess;
  /** In standby the device still serves reads: an active/non-optimized port reads without a transition. */
  readonly standbyReads: boolean;
  /** Transitions STPG asked for, run by the target device once the command left the task set. */
  private readonly deferred = new WeakMap<ScsiCommand, () => Promise<void>>();
  private readonly unsubscribeAlua: () => void;
  /** The backstore behind its guard (cmd_time_out, abort, write-back error memory). */
  readonly device: GuardedDevice;
  readonly blockSize: number;
  readonly blockShift: number;
  /**
   * LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT: the backstore's physical block (the file
   * system's block, the page of the page cache) in logical blocks. A write of less than one
   * is a read-modify-write below us; initiators align to it.
   */
  readonly physicalBlockExponent: number;
  /** NAA designator (VPD 83h), the LU's identity across gateways. */
  readonly naa: Buffer;
  /** DPO and FUA bits are supported (MODE SENSE DPOFUA; CDB bits evaluated). */
  readonly dpofua: boolean;
  readonly maxTransferBlocks: number;
  readonly optimalTransferBlocks: number;
  /** Largest COMPARE AND WRITE (NUMBER OF LOGICAL BLOCKS is one byte; data is twice that). */
  readonly maxCompareAndWriteBlocks: number;
  /** Largest WRITE ATOMIC the backstore makes atomic (0: WRITE ATOMIC is not offered). */
  readonly maxAtomicTransferBlocks: number;
  /** ATOMIC ALIGNMENT and ATOMIC TRANSFER LENGTH GRANULARITY of WRITE ATOMIC, in blocks. */
  readonly atomicAlignmentBlocks: number;
  readonly commands: CommandTable;
  readonly taskSet = new TaskSet();
  readonly locks: RangeLocks;
  readonly defaultMode: ModeParameters;
  mode: ModeParameters;
  /** Removable medium state: false after START STOP UNIT ejected it. */
  mediumPresent = true;
  /** Reservations and unit attentions shared with every LU of the image (other targets, other gateways). */
  readonly luState: LuStateStore;
  /** EXTENDED COPY results held for RECEIVE COPY RESULTS. */
  readonly copyResults = new CopyResults();
  activeCopies = 0;
  /** A SANITIZE in progress (NOT READY / SANITIZE IN PROGRESS to nearly everything). */
  sanitizing?: SanitizeState;
  /** The last SANITIZE failed: medium access is refused until a sanitize succeeds. */
  sanitizeFailed?: { readonly ause: boolean };
  readonly log: Logger;
  /** Commands, bytes and latency, counted inline; read by metrics and the API. */
  readonly stats = new LuStats();

  private readonly nexuses = new Map<string, LuNexus>();
  /**
   * Write-back error sequence each I_T nexus has been told of, by nexus key. Survives nexus
   * loss: an initiator that reconnects must still learn that data it wrote was lost.
   */
  private readonly writeBackSeen = new Map<string, WriteBackObserver>();
  private seq = 0;
  private closed = false;
  private readonly unsubscribeResize: () => void;
  private readonly unsubscribeState: () => void;
  /** This LU as a listener of the shared state (it applies its own changes itself). */
  private readonly stateListener: LuStateListener = { attention: (a) => this.sharedAttention(a) };
  private lastCapacity: number;

  constructor(options: LogicalUnitOptions, readonly target: TargetContext, log: Logger) {
    this.lun = options.lun;
    this.log = log.child({ lun: options.lun });
    this.device = new GuardedDevice(options.device, {
      timeoutMs: options.settings.cmd_time_out * 1000,
      onAbandon: (op, reason) => this.log.warn({ op, reason, timeoutS: options.settings.cmd_time_out }, 'backstore operation given up on'),
    });
    this.wwn = options.wwn;
    this.name = options.name;
    this.settings = options.settings;
    this.removable = options.removable;
    this.standby = options.standby ?? false;
    this.alua = options.alua;
    this.standbyReads = options.standbyReads ?? false;
    // SPC-4 §5.15.2: any change of a port group's state is reported on every I_T nexus.
    this.unsubscribeAlua = this.alua?.onChange((c) => this.aluaChanged(c)) ?? (() => undefined);
    this.blockSize = options.settings.block_size;
    this.blockShift = Math.log2(this.blockSize);
    this.physicalBlockExponent = physicalBlockExponent(options.device.capabilities.physicalBlockBytes ?? PAGE_SIZE, this.blockSize);
    this.naa = deriveNaa(options.wwn);
    this.dpofua = options.settings.emulate_dpo === 1 && options.settings.emulate_fua_write === 1;
    this.maxTransferBlocks = MAX_TRANSFER_BYTES / this.blockSize;
    this.optimalTransferBlocks = Math.min(options.settings.optimal_sectors, this.maxTransferBlocks);
    // Shared medium (active/active RBD): only what the backstore does atomically where the data lives.
    const sharedCaw = options.device.capabilities.sharedCompareAndWriteBytes;
    this.maxCompareAndWriteBlocks = Math.min(255, this.maxTransferBlocks / 2, sharedCaw === undefined ? Infinity : Math.floor(sharedCaw / this.blockSize));
    // The backstore's atomic unit, in whole blocks. Transfer lengths are multiples of the
    // alignment too, so that an initiator never needs a write smaller than the unit at an
    // offset the unit does not start at (Linux derives atomic_write_unit_min from it).
    const caps = options.device.capabilities;
    const atomicBlocks = Math.min(this.maxTransferBlocks, Math.floor(caps.atomicWriteBytes / this.blockSize));
    this.atomicAlignmentBlocks = Math.max(1, Math.floor((caps.atomicWriteAlignment ?? 0) / this.blockSize));
    this.maxAtomicTransferBlocks = atomicBlocks >= this.atomicAlignmentBlocks
      ? atomicBlocks - (atomicBlocks % this.atomicAlignmentBlocks) : 0;
    this.defaultMode = Object.freeze({
      wce: options.settings.emulate_write_cache === 1,
      dSense: false,
      swp: false,
      tas: options.settings.emulate_tas === 1,
      uaIntlckCtrl: [0, 2, 3][options.settings.emulate_ua_intlck_ctrl],
      qam: options.settings.emulate_rest_reord === 1 ? 0 : 1,
    });
    this.luState = options.luState ?? new LocalLuStateStore();
    this.locks = options.locks ?? new RangeLocks();
    // What a MODE SELECT through another target or gateway set holds here too, unless the
    // disk's controls (the defaults) changed since.
    const shared = this.luState.state.mode;
    this.mode = shared && sameMode(shared.defaults, this.defaultMode) ? shared.current : this.defaultMode;
    this.unsubscribeState = this.luState.subscribe(this.stateListener);
    this.commands = new CommandTable(diskCommands(this));
    this.lastCapacity = this.capacity();
    this.unsubscribeResize = this.device.onResize(() => this.resized());
  }

  /** Capacity in logical blocks. */
  capacity(): number {
    return Math.floor(this.device.size() / this.blockSize);
  }

  writeProtected(): boolean {
    return this.device.readOnly || this.mode.swp;
  }

  // ---------------------------------------------------------------------------------------
  // Command execution

  async execute(cmd: ScsiCommand): Promise<ScsiResult> {
    const started = performance.now();
    const result = await this.executeTask(cmd);
    this.stats.record(cmd, result, (performance.now() - started) / 1000);
    return result;
  }

  private async executeTask(cmd: ScsiCommand): Promise<ScsiResult> {
    const ns = this.nexusState(cmd.nexus);
    if (this.closed) return this.checkCondition({ key: SenseKey.IllegalRequest, asc: Asc.LogicalUnitNotSupported });
    let attribute = cmd.attribute;
    if (attribute === TaskAttribute.ACA) {
      // NormACA=0: ACA is not supported, so no ACA condition can exist.
      return this.checkCondition({ key: SenseKey.IllegalRequest, asc: Asc.InvalidMessageError });
    }
    if (attribute === TaskAttribute.Untagged) attribute = TaskAttribute.Simple;
    const depth = this.settings.queue_depth;
    if (depth !== 0 && this.taskSet.size >= depth) {
      if (this.mode.uaIntlckCtrl === 3) ns.ua.establish(Asc.PreviousTaskSetFullStatus);
      return { status: ScsiStatus.TaskSetFull };
    }
    const task = new Task(cmd, this.seq++, attribute);
    const enabled = this.taskSet.admit(task);
    try {
      if (!enabled) await task.waitEnabled();
      if (task.aborted) return this.abortedResult(task);
      const result = await this.dispatch(task, ns);
      return task.aborted ? this.abortedResult(task) : result;
    } catch (e) {
      if (isAbandoned(e)) task.buffersHeld = true;
      if (task.aborted) return this.abortedResult(task);
      return this.errorResult(e, task);
    } finally {
      this.taskSet.remove(task);
    }
  }

  private dispatch(task: Task, ns: LuNexus): Promise<ScsiResult> | ScsiResult {
    const cdb = task.command.cdb;
    const op = cdb.length > 0 ? cdb[0] : -1;
    // First: the shared state as of now (delivers another gateway's attentions if this
    // process may have missed a change), then the UA and reservation checks use it. A store
    // that can only revalidate asynchronously (RADOS) makes the command wait for it.
    const stale = this.luState.ready?.();
    if (stale) return stale.then(() => this.dispatch(task, ns));
    const shared = this.luState.current();
    if (ns.ua.pending && op !== Opcode.Inquiry && op !== Opcode.ReportLuns && op !== Opcode.RequestSense) {
      const asc = this.mode.uaIntlckCtrl === 0 ? ns.ua.take() : ns.ua.peek();
      if (this.mode.uaIntlckCtrl === 0 && asc === Asc.ReportedLunsDataHasChanged) this.target.reportedLunsDelivered(ns.nexus.key);
      throw new SenseError(SenseKey.UnitAttention, asc ?? Asc.NoAdditionalSense);
    }
    if (op < 0) throw new SenseError(SenseKey.IllegalRequest, Asc.InvalidCommandOperationCode);
    // SBC-3 §4.11: while a sanitize runs, every command but these three is NOT READY, whatever
    // its CDB holds (libiscsi Sanitize.Reset sends START STOP UNIT with LOEJ=1).
    if (this.sanitizing && op !== Opcode.Inquiry && op !== Opcode.ReportLuns && op !== Opcode.RequestSense) {
      return this.checkCondition({ key: SenseKey.NotReady, asc: Asc.SanitizeInProgress, progress: this.sanitizing.progress });
    }
    // SPC-4 §5.15.2.4: what the port group's asymmetric access state lets through (alua.ts);
    // an active port of a gateway that does not hold the storage yet is still transitioning.
    const state = this.aluaState(ns.nexus);
    const refusal = aluaRefusal(state, cdb);
    if (refusal !== undefined) throw new SenseError(SenseKey.NotReady, refusal);
    const d = this.commands.lookup(cdb);
    if (this.standby && !this.servedInStandby(cdb, d.flags)) {
      // An active port of a gateway that does not hold the storage (yet): still transitioning.
      throw new SenseError(SenseKey.NotReady, this.alua ? Asc.LogicalUnitNotAccessibleAsymmetricAccessStateTransition : Asc.LogicalUnitNotAccessibleTargetPortInStandbyState);
    }
    if (this.conflicts(shared, d, cdb, op, ns.nexus)) {
      // A change of this image's state made here may still be on its way to the shared store
      // (e.g. the SPC-2 release of a nexus that just logged out): decide once it has landed.
      const settled = this.luState.whenSettled();
      if (!settled) throw new ReservationConflictError();
      return settled.then(() => {
        if (this.conflicts(this.luState.current(), d, cdb, op, ns.nexus)) throw new ReservationConflictError();
        return this.admitted(task, ns, d, op);
      });
    }
    return this.admitted(task, ns, d, op);
  }

  /** SPC-2 and persistent reservation conflicts (SPC-2 §5.5.1, SPC-4 §5.13.1 table 47). */
  private conflicts(shared: LuState, d: CommandDescriptor, cdb: Buffer, op: number, nexus: ITNexus): boolean {
    if (shared.spc2 !== undefined && shared.spc2.nexusKey !== nexus.key && !SPC2_ALLOWED_OPCODES.has(op)) return true;
    return !(d.flags & CommandFlag.ReservationAllowed) && !d.reservationAllowed?.(cdb)
      && this.persistentConflict(shared, nexus, (d.flags & CommandFlag.ReadClass) !== 0);
  }

  private admitted(task: Task, ns: LuNexus, d: CommandDescriptor, op: number): Promise<ScsiResult> | ScsiResult {
    if (d.flags & CommandFlag.NeedsMedium && !this.mediumPresent) throw mediumNotPresent();
    if (this.sanitizeFailed && isMediumAccess(d.flags) && op !== Opcode.Sanitize) {
      throw new SenseError(SenseKey.MediumError, Asc.SanitizeCommandFailed);
    }
    return d.handler(this, task, ns);
  }

  private abortedResult(task: Task): ScsiResult {
    const report = task.aborted?.reportStatus ?? false;
    return {
      status: ScsiStatus.TaskAborted, aborted: { reportStatus: report }, dataOutTransferLength: task.dataOutTransferLength,
      retainBuffers: task.buffersHeld || undefined,
    };
  }

  /** Can this command run while this gateway does not hold the storage? */
  private servedInStandby(cdb: Buffer, flags: CommandFlag): boolean {
    if (aluaRefusal('standby', cdb) === undefined) return true;
    // A FUA read may flush the write cache first: only the owner can (READ 10/12/16 FUA bit).
    if ((cdb[0] === 0x28 || cdb[0] === 0xa8 || cdb[0] === 0x88) && (cdb[1] & 0x08) !== 0) return false;
    return this.standbyReads && (flags & CommandFlag.ReadClass) !== 0 && (flags & CommandFlag.NeedsMedium) !== 0 && (flags & CommandFlag.MediumWrite) === 0;
  }

  /** The asymmetric access state of the port group this nexus reaches the LU through. */
  aluaState(nexus: ITNexus): AluaState {
    if (this.alua) return this.alua.state(nexus.targetPortGroup);
    return this.standby ? 'standby' : 'active/optimized';
  }

  /**
   * Implicit ALUA: would this command, at an active/non-optimized port of a gateway that does
   * not hold the storage, need this gateway to become the owner first? Only a valid command
   * that needs the storage, with no unit attention to report first.
   */
  needsActivation(cmd: ScsiCommand): boolean {
    if (!this.alua || this.alua.mode !== 'implicit' || !this.standby || this.closed || this.sanitizing) return false;
    if (cmd.cdb.length === 0 || this.nexuses.get(cmd.nexus.key)?.ua.pending) return false;
    // Active/optimized too: this gateway holds the storage now, and this LU is about to be replaced.
    const state = this.alua.state(cmd.nexus.targetPortGroup);
    if (state !== 'active/non-optimized' && state !== 'transitioning' && state !== 'active/optimized') return false;
    try {
      return !this.servedInStandby(cmd.cdb, this.commands.lookup(cmd.cdb).flags);
    } catch {
      return false;
    }
  }

  /** STPG: run `transition` after the command (it replaces this LU, so never inside its task set). */
  deferAluaTransition(cmd: ScsiCommand, transition: () => Promise<void>): void {
    this.deferred.set(cmd, transition);
  }

  takeDeferredTransition(cmd: ScsiCommand): (() => Promise<void>) | undefined {
    const t = this.deferred.get(cmd);
    this.deferred.delete(cmd);
    return t;
  }

  /** CHECK CONDITION with sense data in the format the control mode page selects. */
  checkCondition(info: SenseInfo, dataOutTransferLength?: number): ScsiResult {
    return { status: ScsiStatus.CheckCondition, sense: encodeSense(info, this.mode.dSense), dataOutTransferLength };
  }

  private errorResult(e: unknown, task: Task): ScsiResult {
    if (e instanceof SenseError) return this.checkCondition(e, task.dataOutTransferLength);
    if (e instanceof ReservationConflictError) {
      if (this.mode.uaIntlckCtrl === 3) this.nexusState(task.command.nexus).ua.establish(Asc.PreviousReservationConflictStatus);
      return { status: ScsiStatus.ReservationConflict, dataOutTransferLength: task.dataOutTransferLength };
    }
    if (e instanceof BlockDeviceError) {
      this.log.warn({ err: e, cdb: task.command.cdb.toString('hex') }, 'backstore error');
      const result = this.checkCondition(blockDeviceSense(e, task), task.dataOutTransferLength);
      return task.buffersHeld ? { ...result, retainBuffers: true } : result;
    }
    this.log.error({ err: e, cdb: task.command.cdb.toString('hex') }, 'command failed unexpectedly');
    return this.checkCondition({ key: SenseKey.HardwareError, asc: Asc.InternalTargetFailure }, task.dataOutTransferLength);
  }

  // ---------------------------------------------------------------------------------------
  // Helpers for command handlers

  /** LBA OUT OF RANGE unless [lba, lba+blocks) lies within the medium (lba itself must exist). */
  checkRange(lba: number, blocks: number): void {
    const cap = this.capacity();
    if (lba >= cap || lba + blocks > cap) throw lbaOutOfRange();
  }

  private persistentConflict(shared: LuState, nexus: ITNexus, readClass: boolean): boolean {
    const pr = shared.pr;
    return pr.reservation !== undefined && persistentConflict(pr, nexus, this.settings.enforce_pr_isids === 1, readClass);
  }

  /** Would a read (or write) by this nexus conflict with a reservation? (EXTENDED COPY targets.) */
  reservationConflict(nexus: ITNexus, readClass: boolean): boolean {
    const shared = this.luState.current();
    return (shared.spc2 !== undefined && shared.spc2.nexusKey !== nexus.key) || this.persistentConflict(shared, nexus, readClass);
  }

  /** Drop the SPC-2 reservation if this nexus holds it (nexus loss, I_T NEXUS RESET), everywhere. */
  private async releaseSpc2(nexusKey?: string): Promise<void> {
    const held = this.luState.state.spc2;
    if (!held || (nexusKey !== undefined && held.nexusKey !== nexusKey)) return;
    await this.luState.update((s) => {
      if (!s.spc2 || (nexusKey !== undefined && s.spc2.nexusKey !== nexusKey)) return { state: s, result: undefined };
      return { state: { pr: s.pr }, result: undefined };
    }).catch((err: unknown) => this.log.error({ err }, 'cannot release the SPC-2 reservation in the shared state'));
  }

  checkWritable(): void {
    if (this.writeProtected()) throw writeProtected();
  }

  /**
   * Fetch `length` bytes of the command's Data-Out buffer (once per command). An abort
   * interrupts the transfer; any other failure of the transport is a data phase error.
   */
  async receiveDataOut(task: Task, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    let data: Buffer;
    try {
      data = await task.command.receiveDataOut(length, task.signal);
    } catch (e) {
      if (task.aborted) throw e;
      this.log.debug({ err: e }, 'Data-Out failed');
      throw new SenseError(SenseKey.AbortedCommand, Asc.DataPhaseError);
    }
    if (data.length < length) throw new SenseError(SenseKey.AbortedCommand, Asc.DataPhaseError);
    return data.length === length ? data : data.subarray(0, length);
  }

  /**
   * Range lock taken at arrival: overlapping commands take effect in the order received
   * (restricted reordering; unrestricted reordering allows but does not require otherwise).
   * Reads take one too, so that COMPARE AND WRITE, WRITE ATOMIC and the other commands that
   * must be atomic are never seen half done: the page cache gives no such guarantee to a
   * concurrent pread. O(1) while nothing else is in flight.
   */
  orderRange(lba: number, blocks: number, write: boolean): RangeLock {
    return this.locks.acquire(lba, blocks, write);
  }

  /** Writes are durable before completion unless the write cache is enabled. */
  writeFua(fua: boolean): boolean {
    return fua || !this.mode.wce;
  }

  /**
   * Change the mode parameters (MODE SELECT) and tell the other nexuses (MODE PARAMETERS
   * CHANGED). A nexus whose UA is still pending remembers the parameters it last knew; if
   * they are back to exactly those before it was told (e.g. SWP set and cleared again), the
   * UA is withdrawn: nothing has changed from that nexus's point of view, since every command
   * it sent in between would have been answered with the UA first.
   */
  async setMode(next: ModeParameters, from: LuNexus | undefined): Promise<void> {
    const except = from?.nexus.key;
    if (!this.applyMode(next, except)) return;
    const current = this.mode;
    // Every other LU of the image (other targets, other gateways) takes the same parameters.
    await this.luState.update((s) => ({
      state: { ...s, mode: { defaults: this.defaultMode, current } },
      result: undefined,
      attentions: [{ asc: Asc.ModeParametersChanged, mode: current, except }],
      origin: this.stateListener,
    }));
  }

  /** Take new mode parameters here; false when nothing changed. */
  private applyMode(next: ModeParameters, exceptKey: string | undefined): boolean {
    const prev = this.mode;
    this.mode = Object.freeze({ ...next });
    if (sameMode(next, prev)) return false;
    for (const ns of this.nexuses.values()) {
      if (ns.nexus.key === exceptKey) continue;
      if (ns.modeKnown && ns.ua.has(Asc.ModeParametersChanged)) {
        if (sameMode(next, ns.modeKnown)) {
          ns.ua.clear(Asc.ModeParametersChanged);
          ns.modeKnown = undefined;
        }
      } else {
        ns.ua.establish(Asc.ModeParametersChanged);
        ns.modeKnown = ns.ua.has(Asc.ModeParametersChanged) ? prev : undefined;
      }
    }
    return true;
  }

  /** Medium removal is prevented by any I_T nexus. */
  removalPrevented(): boolean {
    for (const ns of this.nexuses.values()) if (ns.prevent) return true;
    return false;
  }

  // ---------------------------------------------------------------------------------------
  // Nexus state and unit attentions

  nexusState(nexus: ITNexus): LuNexus {
    let ns = this.nexuses.get(nexus.key);
    if (!ns) {
      this.writeBackObserver(nexus.key);
      ns = new LuNexus(nexus);
      this.nexuses.set(nexus.key, ns);
    }
    return ns;
  }

  /** Write-back errors this I_T nexus has been told of (SYNCHRONIZE CACHE). */
  writeBackObserver(nexusKey: string): WriteBackObserver {
    let o = this.writeBackSeen.get(nexusKey);
    if (!o) {
      o = { seen: this.device.writeBackSequence };
      this.writeBackSeen.set(nexusKey, o);
      // Bounded: forget the oldest nexus that has nothing outstanding.
      if (this.writeBackSeen.size > MAX_WRITE_BACK_OBSERVERS) {
        for (const [key, old] of this.writeBackSeen) {
          if (old.seen === this.device.writeBackSequence && key !== nexusKey) {
            this.writeBackSeen.delete(key);
            break;
          }
        }
      }
    }
    return o;
  }

  hasNexus(key: string): boolean {
    return this.nexuses.has(key);
  }

  /**
   * A port group's state changed: ASYMMETRIC ACCESS STATE CHANGED on every I_T nexus, unless
   * the change is an implicit transition that an initiator's I/O caused (see alua.ts).
   */
  private aluaChanged(change: AluaChange): void {
    if (!aluaChangeAnnounced(change)) return;
    this.establishUnitAttention(Asc.AsymmetricAccessStateChanged);
  }

  /** Unit attentions pending for a nexus (carried over when this LU is replaced). */
  /** A new I_T nexus: it starts with the given unit attention (power on / nexus loss; none: undefined). */
  nexusCreated(nexus: ITNexus, asc: Asc | undefined): void {
    this.writeBackObserver(nexus.key);
    const ns = new LuNexus(nexus);
    if (asc !== undefined) ns.ua.establish(asc);
    this.nexuses.set(nexus.key, ns);
  }

  /**
   * This LU replaces `old` at its LUN (new backstore, controls or access state of the same
   * image): each nexus keeps the attentions it has not been told of yet (a PREEMPT of another
   * gateway, say), ahead of the replacement's own, and its PREVENT.
   */
  inheritAttentions(old: LogicalUnit): void {
    for (const [key, ns] of this.nexuses) {
      const before = old.nexuses.get(key);
      if (!before) continue;
      const own = [...ns.ua.list()];
      ns.ua.clearAll();
      for (const asc of [...before.ua.list(), ...own]) ns.ua.establish(asc);
      ns.prevent = before.prevent;
    }
  }

  /** Establish a unit attention for every I_T nexus (but `exceptKey`). */
  establishUnitAttention(asc: Asc, exceptKey?: string): void {
    for (const [key, ns] of this.nexuses) if (key !== exceptKey) ns.ua.establish(asc);
  }

  /** Establish a unit attention for the I_T nexuses of these registrations (but `exceptKey`). */
  establishUnitAttentionFor(regs: readonly Registration[], asc: Asc, exceptKey?: string): void {
    if (regs.length === 0) return;
    const enforce = this.settings.enforce_pr_isids === 1;
    for (const [key, ns] of this.nexuses) {
      if (key !== exceptKey && regs.some((r) => matches(r, ns.nexus, enforce))) ns.ua.establish(asc);
    }
  }

  /** PREEMPT AND ABORT: end the tasks of the preempted registrations' I_T nexuses. */
  async abortTasksOf(regs: readonly Registration[], issuerKey: string | undefined): Promise<void> {
    const enforce = this.settings.enforce_pr_isids === 1;
    const tasks = [...this.taskSet.tasks].filter((t) => t.state !== TaskState.Ended && t.command.nexus.key !== issuerKey
      && regs.some((r) => matches(r, t.command.nexus, enforce)));
    await this.abortAll(tasks, issuerKey);
  }

  /** An attention established by some nexus of this image (this or another target or gateway). */
  private sharedAttention(a: SharedAttention): Promise<void> | void {
    if (this.closed) return;
    if (a.reset) return this.resetHere(undefined, undefined, a.asc);
    if (a.mode) {
      // Not when this LU's defaults (disk controls) differ from those the MODE SELECT saw.
      const shared = this.luState.state.mode;
      if (!shared || sameMode(shared.defaults, this.defaultMode)) this.applyMode(a.mode, a.except);
      return;
    }
    if (a.regs) this.establishUnitAttentionFor(a.regs, a.asc, a.except);
    else this.establishUnitAttention(a.asc, a.except);
    if (a.abort && a.regs) return this.abortTasksOf(a.regs, a.except);
  }

  clearUnitAttention(nexusKey: string, asc: Asc): void {
    this.nexuses.get(nexusKey)?.ua.clear(asc);
  }

  private resized(): void {
    const cap = this.capacity();
    if (cap === this.lastCapacity) return;
    this.lastCapacity = cap;
    this.log.info({ blocks: cap }, 'capacity changed');
    this.establishUnitAttention(Asc.CapacityDataHasChanged);
  }

  // ---------------------------------------------------------------------------------------
  // Task management (SAM-5 §7). Each resolves once every affected task has ended.

  private tasksOf(key: string, scope?: (tag: number) => boolean): Task[] {
    const out: Task[] = [];
    for (const t of this.taskSet.tasks) {
      if (t.command.nexus.key === key && t.state !== TaskState.Ended && (!scope || scope(t.command.tag))) out.push(t);
    }
    return out;
  }

  private async abortAll(tasks: Task[], issuerKey: string | undefined): Promise<void> {
    const tas = this.mode.tas;
    const cleared = new Set<string>();
    for (const t of tasks) {
      const other = t.command.nexus.key !== issuerKey;
      t.abort({ reportStatus: other && tas });
      if (other && !tas) cleared.add(t.command.nexus.key);
    }
    for (const key of cleared) this.nexuses.get(key)?.ua.establish(Asc.CommandsClearedByAnotherInitiator);
    await Promise.all(tasks.map((t) => t.whenEnded()));
  }

  async abortTask(nexus: ITNexus, tag: number): Promise<TaskManagementResponse> {
    const t = this.tasksOf(nexus.key).find((x) => x.command.tag === tag);
    if (!t) return TaskManagementResponse.TaskDoesNotExist;
    await this.abortAll([t], nexus.key);
    return TaskManagementResponse.FunctionComplete;
  }

  async abortTaskSet(nexus: ITNexus, scope?: (tag: number) => boolean): Promise<TaskManagementResponse> {
    await this.abortAll(this.tasksOf(nexus.key, scope), nexus.key);
    return TaskManagementResponse.FunctionComplete;
  }

  /** CLEAR TASK SET: the issuer's tasks (within scope) and every other nexus's tasks. */
  async clearTaskSet(nexus: ITNexus, scope?: (tag: number) => boolean): Promise<TaskManagementResponse> {
    const tasks = [...this.taskSet.tasks].filter((t) => t.state !== TaskState.Ended
      && (t.command.nexus.key !== nexus.key || !scope || scope(t.command.tag)));
    await this.abortAll(tasks, nexus.key);
    return TaskManagementResponse.FunctionComplete;
  }

  /**
   * Logical unit reset (also the per-LU part of a target reset): abort every task, release
   * PREVENT and SPC-2 reservations, return the mode parameters to their defaults (nothing is
   * saved), and report the reset to every I_T nexus, the issuer's included (SAM-5 §6.3.3;
   * libiscsi MultipathIO.Reset checks every path).
   */
  async reset(issuer: ITNexus | undefined, scope: ((tag: number) => boolean) | undefined, asc: Asc): Promise<void> {
    const here = this.resetHere(issuer, scope, asc);
    // The reset is the logical unit's: its LUs on other targets and gateways reset too, and
    // the SPC-2 reservation and selected mode parameters are gone for all of them.
    const shared = this.luState.update((s) => ({
      state: s.spc2 || s.mode ? { pr: s.pr } : s,
      result: undefined,
      attentions: [{ asc, reset: true }],
      origin: this.stateListener,
    })).catch((err: unknown) => this.log.error({ err }, 'cannot share the logical unit reset'));
    await Promise.all([here, shared]);
  }

  /** The reset of this LU object: tasks, PREVENT, unit attentions, mode parameters. */
  private async resetHere(issuer: ITNexus | undefined, scope: ((tag: number) => boolean) | undefined, asc: Asc): Promise<void> {
    const tasks = [...this.taskSet.tasks].filter((t) => t.state !== TaskState.Ended
      && (!issuer || t.command.nexus.key !== issuer.key || !scope || scope(t.command.tag)));
    const wait = this.abortAll(tasks, issuer?.key);
    for (const ns of this.nexuses.values()) {
      ns.prevent = false;
      ns.ua.establish(asc);
    }
    this.mode = this.defaultMode;
    await wait;
  }

  /** I_T NEXUS RESET or I_T nexus loss: abort that nexus's tasks, forget its PREVENT. */
  async nexusReset(nexus: ITNexus, scope?: (tag: number) => boolean): Promise<void> {
    // Queued first: a command arriving meanwhile waits for the release (see dispatch).
    const released = this.releaseSpc2(nexus.key);
    await this.abortAll(this.tasksOf(nexus.key, scope), nexus.key);
    await released;
    const ns = this.nexuses.get(nexus.key);
    if (ns) {
      ns.prevent = false;
      ns.ua.establish(Asc.ITNexusLossOccurred);
    }
  }

  async nexusLost(nexus: ITNexus): Promise<void> {
    const released = this.releaseSpc2(nexus.key);
    await this.abortAll(this.tasksOf(nexus.key), nexus.key);
    this.copyResults.forget(nexus.key);
    await released;
    this.nexuses.delete(nexus.key);
  }

  queryTask(nexus: ITNexus, tag: number): TaskManagementResponse {
    return this.tasksOf(nexus.key).some((t) => t.command.tag === tag)
      ? TaskManagementResponse.FunctionSucceeded : TaskManagementResponse.FunctionComplete;
  }

  queryTaskSet(nexus: ITNexus): TaskManagementResponse {
    return this.tasksOf(nexus.key).length > 0 ? TaskManagementResponse.FunctionSucceeded : TaskManagementResponse.FunctionComplete;
  }

  queryAsyncEvent(nexus: ITNexus): TaskManagementResponse {
    return this.nexuses.get(nexus.key)?.ua.pending ? TaskManagementResponse.FunctionSucceeded : TaskManagementResponse.FunctionComplete;
  }

  /** Stop accepting commands, abort what is running and wait for it to end. */
  /**
   * `drainMs`: first let the running tasks finish for up to this long (the LU is being
   * replaced in place, e.g. an ALUA transition: its commands complete instead of vanishing);
   * what is still running then is aborted.
   */
  async close(drainMs = 0): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeResize();
    this.unsubscribeState();
    this.unsubscribeAlua();
    if (drainMs > 0 && this.taskSet.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.taskSet.tasks].map((t) => t.whenEnded())),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs))),
      ]);
      clearTimeout(timer);
    }
    const tasks = [...this.taskSet.tasks];
    for (const t of tasks) t.abort({ reportStatus: false });
    await Promise.all(tasks.map((t) => t.whenEnded()));
    // Operations given up on may still run in the backstore; give them (bounded) time to end
    // before the owner closes it.
    if (!(await this.device.drain(this.device.timeoutMs))) {
      this.log.warn({ orphans: this.device.orphanCount }, 'backstore operations still running after the logical unit closed');
    }
  }
}

/** Remembered write-back observers per LU (nexus keys that have come and gone). */
const MAX_WRITE_BACK_OBSERVERS = 4096;

/** log2(physical / logical block), 0 when it is not a larger power of two; at most 15 (4 bits). */
export function physicalBlockExponent(physicalBytes: number, blockSize: number): number {
  if (!Number.isInteger(physicalBytes) || physicalBytes <= blockSize || physicalBytes % blockSize !== 0) return 0;
  const ratio = physicalBytes / blockSize;
  if ((ratio & (ratio - 1)) !== 0) return 0;
  return Math.min(15, Math.log2(ratio));
}

/**
 * Map a backstore failure to sense data (SBC-4 §4.18, SPC-4 Annex D). The one place where a
 * backstore error becomes bytes an initiator sees; backstores only say what kind it was.
 */
export function blockDeviceSense(e: BlockDeviceError, task: Task): SenseInfo {
  switch (e.kind) {
    case 'out-of-range': return { key: SenseKey.IllegalRequest, asc: Asc.LbaOutOfRange };
    case 'read-only': return { key: SenseKey.DataProtect, asc: Asc.WriteProtected };
    // Thin provisioning hard threshold: the host file system or pool is full (LIO: ENOSPC).
    case 'no-space': return { key: SenseKey.DataProtect, asc: Asc.SpaceAllocationFailedWriteProtect };
    case 'closed': return { key: SenseKey.NotReady, asc: Asc.LogicalUnitNotReadyCauseNotReportable };
    // cmd_time_out: as LIO/tcmu (TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE); multipath fails over.
    case 'timeout': return { key: SenseKey.NotReady, asc: Asc.LogicalUnitCommunicationFailure };
    // Cancelled by the backstore without a TMF (e.g. it is shutting down): retryable.
    case 'aborted': return { key: SenseKey.AbortedCommand, asc: Asc.NoAdditionalSense };
    case 'unsupported': return { key: SenseKey.IllegalRequest, asc: Asc.InvalidCommandOperationCode };
    case 'write-back': return { key: SenseKey.MediumError, asc: Asc.WriteError };
    case 'io': {
      const write = e.direction !== undefined ? e.direction === 'write' : task.dataOutTransferLength !== undefined;
      return write ? { key: SenseKey.MediumError, asc: Asc.WriteError } : { key: SenseKey.MediumError, asc: Asc.UnrecoveredReadError };
    }
  }
}
