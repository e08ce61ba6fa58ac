/**
 * The SCSI target device behind one iSCSI target node: its logical units, the I_T nexuses
 * that reach them, and the task manager. This is the whole interface the iSCSI layer uses
 * (sam.ts ScsiTargetDevice) plus the construction API for the daemon.
 */
import type { Logger } from '../util/log';
import { silentLogger } from '../util/log';
import type { BlockDevice } from '../block/block-device';
import {
  ITNexus, ScsiCommand, ScsiResult, ScsiStatus, ScsiTargetDevice, TaskManagementFunction, TaskManagementRequest,
  TaskManagementResponse,
} from './sam';
import { DiskSettings, validateDiskSettings } from './disk-settings';
import { LogicalUnit, TargetContext } from './logical-unit';
import { Asc, SenseError, SenseKey, encodeSense } from './sense';
import { inquiryNoLun } from './inquiry';
import { requestSenseNoLun } from './request-sense';
import { reportLunsData } from './report-luns';
import { LogicalUnitRegistry, gatewayRegistry } from './lu-registry';
import type { ReservationStore } from './reservations';
import type { AluaAccess } from './alua';

export interface LogicalUnitConfig {
  /** 0..16383 */
  readonly lun: number;
  readonly device: BlockDevice;
  /** Unit serial number (a UUID), stable across restarts and gateways; the NAA id derives from it. */
  readonly wwn: string;
  /** Backstore object name, e.g. "rbd/disk_1" (product identification with emulate_model_alias). */
  readonly name: string;
  /** The seed's disk settings; validated, defaults applied. */
  readonly settings?: Partial<DiskSettings>;
  /** Report a removable medium (RMB=1) that START STOP UNIT can eject and load. Default false. */
  readonly removable?: boolean;
  /**
   * Persistent reservation state of the image. Default: in-process, not persisted. Give a
   * store that persists APTPL state with the image, or one shared by all gateways (HA).
   */
  readonly reservations?: ReservationStore;
  /**
   * Target port in standby for this LU (another gateway owns the image): media access is
   * answered NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
   */
  readonly standby?: boolean;
  /**
   * ALUA (SPC-4 §5.15): the target port groups of every gateway and their states. With it the
   * LU reports TPGS, answers REPORT (and in explicit mode SET) TARGET PORT GROUPS, refuses
   * commands by its port group's state and, in implicit mode, asks for ownership on I/O at a
   * non-owner port.
   */
  readonly alua?: AluaAccess;
  /** With `standby`: the device still serves reads (a coherent read-only view), so reads need no transition. */
  readonly standbyReads?: boolean;
}

export interface ScsiTargetOptions {
  readonly targetName: string;
  readonly logicalUnits: LogicalUnitConfig[];
  readonly log?: Logger;
  /** Where EXTENDED COPY finds other LUs; defaults to the process-wide registry. */
  readonly registry?: LogicalUnitRegistry;
}

export const MAX_LUN = 16383;

/**
 * LUN masking of one initiator (a LIO NodeACL's mapped LUNs): LUN as the initiator sees it ->
 * LUN of this target.
 */
export type LunMap = ReadonlyMap<number, number>;

/** Per initiator node name. Initiators without an entry see no LUN at all. */
export type LunMasking = ReadonlyMap<string, LunMap>;
/** How many lost nexus keys are remembered (to report I_T NEXUS LOSS OCCURRED on return). */
const LOST_NEXUS_MEMORY = 1024;

export class ScsiTarget implements ScsiTargetDevice, TargetContext {
  readonly targetName: string;
  private readonly units = new Map<number, LogicalUnit>();
  private sortedLuns: number[] = [];
  private readonly nexuses = new Map<string, ITNexus>();
  private readonly lost = new Set<string>();
  /** Target ports by RELATIVE TARGET PORT IDENTIFIER, learned from the nexuses created. */
  private readonly ports = new Map<number, string>();
  private readonly log: Logger;
  private readonly registry: LogicalUnitRegistry;
  private closed = false;
  /** Undefined: every initiator sees every LU under its own LUN (demo mode). */
  private masking: LunMasking | undefined;
  /** Sorted mapped LUNs per initiator, recomputed when masking or the LU set changes. */
  private readonly visibleCache = new Map<string, number[]>();

  constructor(options: ScsiTargetOptions) {
    this.targetName = options.targetName;
    const log = options.log ?? silentLogger();
    // Bind the target name unless the caller's logger already says it (no duplicate JSON keys).
    this.log = log.bindings().target === options.targetName ? log : log.child({ target: options.targetName });
    this.registry = options.registry ?? gatewayRegistry;
    for (const config of options.logicalUnits) this.attach(config);
  }

  /** Add a logical unit; every nexus gets REPORTED LUNS DATA HAS CHANGED. Throws on bad config. */
  addLogicalUnit(config: LogicalUnitConfig): void {
    const lu = this.attach(config);
    for (const other of this.units.values()) {
      if (other !== lu) other.establishUnitAttention(Asc.ReportedLunsDataHasChanged);
    }
  }

  /**
   * Replace the logical unit at a LUN in place (new backstore, settings or access state): the
   * old one finishes its tasks, every nexus keeps the LUN and gets `unitAttention` (MODE
   * PARAMETERS CHANGED by default) instead of a power-on reset. Throws on bad config.
   */
  async replaceLogicalUnit(config: LogicalUnitConfig, unitAttention: Asc | 'none' = Asc.ModeParametersChanged): Promise<void> {
    const old = this.units.get(config.lun);
    if (!old) throw new Error(`LUN ${config.lun} does not exist`);
    this.units.delete(config.lun);
    try {
      this.attach(config, unitAttention, old);
    } catch (e) {
      this.units.set(config.lun, old);
      throw e;
    }
    this.registry.unregister(old);
    // In place: the old LU's commands finish (bounded by cmd_time_out) rather than being dropped.
    await old.close(old.device.timeoutMs);
  }

  /**
   * `unitAttention`: what every nexus is told ('none': nothing new); `previous`: the LU this
   * one replaces, whose pending unit attentions each nexus keeps (reported first).
   */
  private attach(config: LogicalUnitConfig, unitAttention: Asc | 'none' = Asc.PowerOnResetOrBusDeviceReset, previous?: LogicalUnit): LogicalUnit {
    if (this.closed) throw new Error('target is closed');
    if (!Number.isInteger(config.lun) || config.lun < 0 || config.lun > MAX_LUN) {
      throw new RangeError(`LUN ${config.lun} is outside 0..${MAX_LUN}`);
    }
    if (this.units.has(config.lun)) throw new Error(`LUN ${config.lun} already exists`);
    if (!config.wwn || !/^[\x21-\x7e]{1,252}$/.test(config.wwn)) throw new Error(`invalid unit serial number ${JSON.stringify(config.wwn)}`);
    const settings = validateDiskSettings(config.settings ?? {});
    const lu = new LogicalUnit({
      lun: config.lun, device: config.device, wwn: config.wwn, name: config.name, settings,
      removable: config.removable ?? settings.emulate_removable === 1, reservations: config.reservations,
      standby: config.standby, alua: config.alua, standbyReads: config.standbyReads,
    }, this, this.log);
    const ua = unitAttention === 'none' ? undefined : unitAttention;
    for (const nexus of this.nexuses.values()) lu.nexusCreated(nexus, ua, previous?.pendingUnitAttentions(nexus.key));
    this.units.set(config.lun, lu);
    this.sortedLuns = [...this.units.keys()].sort((a, b) => a - b);
    this.visibleCache.clear();
    this.registry.register(lu);
    this.log.info({ lun: config.lun, device: config.device.name, blocks: lu.capacity(), blockSize: lu.blockSize }, 'logical unit added');
    return lu;
  }

  /** Remove a logical unit once its tasks have ended; every nexus gets REPORTED LUNS DATA HAS CHANGED. */
  async removeLogicalUnit(lun: number): Promise<void> {
    const lu = this.units.get(lun);
    if (!lu) throw new Error(`LUN ${lun} does not exist`);
    this.units.delete(lun);
    this.sortedLuns = [...this.units.keys()].sort((a, b) => a - b);
    this.visibleCache.clear();
    this.registry.unregister(lu);
    for (const other of this.units.values()) other.establishUnitAttention(Asc.ReportedLunsDataHasChanged);
    await lu.close();
    this.log.info({ lun }, 'logical unit removed');
  }

  /** Abort everything and detach all LUs. The BlockDevices stay open: their owner closes them. */
  async close(): Promise<void> {
    this.closed = true;
    const units = [...this.units.values()];
    this.units.clear();
    this.sortedLuns = [];
    for (const lu of units) this.registry.unregister(lu);
    await Promise.all(units.map((lu) => lu.close()));
  }

  /**
   * Set LUN masking (undefined: none). Every logged-in nexus whose inventory changed gets
   * REPORTED LUNS DATA HAS CHANGED on the LUs it now sees.
   */
  setLunMasking(masking: LunMasking | undefined): void {
    const before = new Map([...this.nexuses.values()].map((n) => [n.key, this.inventory(n.initiatorName)]));
    this.masking = masking;
    this.visibleCache.clear();
    for (const nexus of this.nexuses.values()) {
      if (before.get(nexus.key) === this.inventory(nexus.initiatorName)) continue;
      for (const lun of this.luns(nexus)) {
        this.units.get(this.targetLun(nexus.initiatorName, lun) ?? -1)?.nexusState(nexus).ua.establish(Asc.ReportedLunsDataHasChanged);
      }
    }
  }

  /** A comparable description of what an initiator sees ("mapped:target,..."). */
  private inventory(initiatorName: string): string {
    const map = this.masking?.get(initiatorName);
    if (!this.masking) return this.sortedLuns.join(',');
    if (!map) return '';
    return [...map].filter(([, t]) => this.units.has(t)).sort((a, b) => a[0] - b[0]).map(([m, t]) => `${m}:${t}`).join(',');
  }

  /** The target LUN behind a LUN as this initiator addresses it (undefined: masked). */
  private targetLun(initiatorName: string, lun: number): number | undefined {
    if (!this.masking) return lun;
    return this.masking.get(initiatorName)?.get(lun);
  }

  /** The logical unit at a LUN (for the daemon's status and tests). */
  logicalUnit(lun: number): LogicalUnit | undefined {
    return this.units.get(lun);
  }

  // TargetContext ------------------------------------------------------------------------

  /** Every LUN of the target, whoever may see it (statistics, management views). */
  allLuns(): readonly number[] {
    return this.sortedLuns;
  }

  luns(nexus: ITNexus): readonly number[] {
    if (!this.masking) return this.sortedLuns;
    let list = this.visibleCache.get(nexus.initiatorName);
    if (!list) {
      const map = this.masking.get(nexus.initiatorName);
      list = map ? [...map].filter(([, t]) => this.units.has(t)).map(([m]) => m).sort((a, b) => a - b) : [];
      this.visibleCache.set(nexus.initiatorName, list);
    }
    return list;
  }

  findLogicalUnit(naa: Buffer, initiatorName: string): LogicalUnit | undefined {
    return this.registry.findByNaa(naa, (lu) => lu.target.exposes(initiatorName, lu));
  }

  exposes(initiatorName: string, lu: LogicalUnit): boolean {
    if (this.units.get(lu.lun) !== lu) return false;
    if (!this.masking) return true;
    const map = this.masking.get(initiatorName);
    return map !== undefined && [...map.values()].includes(lu.lun);
  }

  targetPortName(relativeTargetPortId: number): string | undefined {
    return this.ports.get(relativeTargetPortId);
  }

  reportedLunsDelivered(nexusKey: string): void {
    for (const lu of this.units.values()) lu.clearUnitAttention(nexusKey, Asc.ReportedLunsDataHasChanged);
  }

  // ScsiTargetDevice ---------------------------------------------------------------------

  execute(command: ScsiCommand): Promise<ScsiResult> {
    const lun = this.targetLun(command.nexus.initiatorName, command.lun);
    const lu = lun === undefined ? undefined : this.units.get(lun);
    if (!lu) return Promise.resolve(this.noLogicalUnit(command));
    if (lu.needsActivation(command)) return this.executeAfterTransition(lu, command, 'implicit');
    if (command.cdb[0] !== 0xa4) return lu.execute(command);
    // MAINTENANCE OUT: SET TARGET PORT GROUPS may have asked for a transition.
    return lu.execute(command).then((result) => {
      const transition = lu.takeDeferredTransition(command);
      return transition ? this.finishExplicitTransition(lu, command, result, transition) : result;
    });
  }

  /**
   * Implicit ALUA transition (SPC-4 §5.15.2.2): I/O at an active/non-optimized port makes this
   * gateway the owner. The command waits (bounded by the access control) outside the task set,
   * since the transition replaces the logical unit, then runs on the LU now at that LUN; a
   * failed transition leaves it to the LU (NOT READY, ASYMMETRIC ACCESS STATE TRANSITION).
   */
  private async executeAfterTransition(lu: LogicalUnit, command: ScsiCommand, reason: 'implicit'): Promise<ScsiResult> {
    let now = lu;
    // Bounded: another path may take the LU away again before this command ran.
    const deadline = Date.now() + 1000 * Math.max(1, lu.alua!.implicitTransitionSeconds);
    while (now.needsActivation(command) && Date.now() < deadline) {
      try {
        await now.alua!.activate(reason, undefined, command.nexus.initiatorName);
      } catch (err) {
        this.log.warn({ err, lun: lu.lun, initiator: command.nexus.initiatorPortName }, 'implicit ALUA transition failed');
        break;
      }
      now = this.units.get(lu.lun) ?? now;
    }
    // The nexus that caused the transition is not told of it (SPC-4 §5.15.2.2).
    now.clearUnitAttention(command.nexus.key, Asc.AsymmetricAccessStateChanged);
    return now.execute(command);
  }

  /** SET TARGET PORT GROUPS asked for a transition: run it now that the command left the LU. */
  private async finishExplicitTransition(lu: LogicalUnit, command: ScsiCommand, result: ScsiResult, transition: () => Promise<void>): Promise<ScsiResult> {
    if (result.status !== ScsiStatus.Good) return result;
    try {
      await transition();
    } catch (err) {
      this.log.warn({ err, lun: lu.lun, initiator: command.nexus.initiatorPortName }, 'SET TARGET PORT GROUPS failed');
      return { ...result, status: ScsiStatus.CheckCondition, sense: encodeSense({ key: SenseKey.HardwareError, asc: Asc.SetTargetPortGroupsCommandFailed }, lu.mode.dSense) };
    }
    (this.units.get(lu.lun) ?? lu).clearUnitAttention(command.nexus.key, Asc.AsymmetricAccessStateChanged);
    return result;
  }

  /** A LUN without a logical unit: INQUIRY, REQUEST SENSE and REPORT LUNS work, the rest fails. */
  private noLogicalUnit(command: ScsiCommand): ScsiResult {
    const cdb = command.cdb;
    try {
      switch (cdb.length >= 6 ? cdb[0] : -1) {
        case 0x12: return { status: ScsiStatus.Good, data: inquiryNoLun(cdb) };
        case 0x03: return { status: ScsiStatus.Good, data: requestSenseNoLun(cdb) };
        case 0xa0:
          if (cdb.length < 12) break;
          this.reportedLunsDelivered(command.nexus.key);
          return { status: ScsiStatus.Good, data: reportLunsData(cdb, this.luns(command.nexus)) };
      }
      throw new SenseError(SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported);
    } catch (e) {
      if (!(e instanceof SenseError)) throw e;
      return { status: ScsiStatus.CheckCondition, sense: encodeSense(e, false) };
    }
  }

  async taskManagement(req: TaskManagementRequest): Promise<TaskManagementResponse> {
    try {
      return await this.tmf(req);
    } catch (err) {
      this.log.error({ err, fn: req.fn }, 'task management function failed');
      return TaskManagementResponse.Rejected;
    }
  }

  private async tmf(req: TaskManagementRequest): Promise<TaskManagementResponse> {
    const { nexus, scope } = req;
    switch (req.fn) {
      case TaskManagementFunction.TargetWarmReset:
      case TaskManagementFunction.TargetColdReset: {
        const asc = req.fn === TaskManagementFunction.TargetColdReset ? Asc.PowerOnOccurred : Asc.PowerOnResetOrBusDeviceReset;
        this.log.warn({ initiator: nexus.initiatorPortName, fn: req.fn }, 'target reset');
        await Promise.all([...this.units.values()].map((lu) => lu.reset(nexus, scope, asc)));
        return TaskManagementResponse.FunctionComplete;
      }
      case TaskManagementFunction.ITNexusReset:
        await Promise.all([...this.units.values()].map((lu) => lu.nexusReset(nexus, scope)));
        return TaskManagementResponse.FunctionComplete;
      case TaskManagementFunction.ClearAca:
      case TaskManagementFunction.TaskReassign:
        return TaskManagementResponse.NotSupported;
    }
    const lun = this.targetLun(nexus.initiatorName, req.lun);
    const lu = lun === undefined ? undefined : this.units.get(lun);
    if (!lu) return TaskManagementResponse.LunDoesNotExist;
    switch (req.fn) {
      case TaskManagementFunction.AbortTask:
        return req.referencedTag === undefined ? TaskManagementResponse.TaskDoesNotExist : lu.abortTask(nexus, req.referencedTag);
      case TaskManagementFunction.AbortTaskSet:
        return lu.abortTaskSet(nexus, scope);
      case TaskManagementFunction.ClearTaskSet:
        return lu.clearTaskSet(nexus, scope);
      case TaskManagementFunction.LogicalUnitReset:
        this.log.warn({ initiator: nexus.initiatorPortName, lun: req.lun }, 'logical unit reset');
        await lu.reset(nexus, scope, Asc.BusDeviceResetFunctionOccurred);
        return TaskManagementResponse.FunctionComplete;
      case TaskManagementFunction.QueryTask:
        return req.referencedTag === undefined ? TaskManagementResponse.FunctionComplete : lu.queryTask(nexus, req.referencedTag);
      case TaskManagementFunction.QueryTaskSet:
        return lu.queryTaskSet(nexus);
      case TaskManagementFunction.QueryAsyncEvent:
        return lu.queryAsyncEvent(nexus);
      default:
        return TaskManagementResponse.NotSupported;
    }
  }

  nexusCreated(nexus: ITNexus): void {
    this.nexuses.set(nexus.key, nexus);
    this.ports.set(nexus.relativeTargetPortId, nexus.targetPortName);
    const asc = this.lost.delete(nexus.key) ? Asc.ITNexusLossOccurred : Asc.PowerOnResetOrBusDeviceReset;
    for (const lu of this.units.values()) lu.nexusCreated(nexus, asc);
  }

  async nexusLost(nexus: ITNexus): Promise<void> {
    this.nexuses.delete(nexus.key);
    this.lost.add(nexus.key);
    if (this.lost.size > LOST_NEXUS_MEMORY) this.lost.delete(this.lost.values().next().value as string);
    await Promise.all([...this.units.values()].map((lu) => lu.nexusLost(nexus)));
  }
}
