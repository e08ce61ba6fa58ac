/**
 * A normal iSCSI session (RFC 7143 §4.2.2, §4.2.3): the I_T nexus, the CmdSN window with
 * in-order delivery, the task table, SCSI command execution through the SCSI target device,
 * and task management. One connection per session (MaxConnections=1, ErrorRecoveryLevel=0).
 */
import { Asc, SenseKey, encodeSense } from '../scsi/sense';
import { RejectReason, RESERVED_TAG } from '../pdu/opcodes';
import { decodeLun } from '../pdu/lun';
import { DataOutPdu, ScsiCommandPdu, TaskManagementRequestPdu } from '../pdu/requests';
import {
  encodeReadyToTransfer,
  encodeTaskManagementResponse,
} from '../pdu/responses';
import { serialLt } from '../pdu/serial';
import { dataBuffers } from '../util/buffer-pool';
import { CommandWindow } from './command-window';
import { DataOutBudget, DataPathLimits } from './limits';
import { TaskResponder } from './task-response';
import {
  ITNexus,
  ScsiResult,
  ScsiStatus,
  TaskManagementFunction,
  TaskManagementResponse,
} from '../scsi/sam';
import { Logger, peerEvents } from '../util/log';
import { DataOutError, IscsiTask, R2TSender, TaskAbortedError } from './scsi-task';
import { SessionParameters } from './parameters';
import { IscsiTargetNode, TargetPortBinding, TargetSettings } from './target-node';
import { SessionStats } from '../metrics/stats';

/** What a session needs from its connection. */
export interface SessionTransport {
  readonly id: number;
  /** Send a PDU; `onSent` runs once the socket has taken it (its buffers may be reused). */
  send(header: Buffer, data?: Buffer, onSent?: () => void): void;
  /** The StatSN for a PDU that carries status; advances it. */
  takeStatSN(): number;
  /** The current StatSN for PDUs that carry it without advancing it (R2T, NOP-In ping). */
  peekStatSN(): number;
  reject(reason: RejectReason, bhs: Buffer, message: string): void;
  /** Admit `bytes` of Data-In into the send queue (false: over its bound, wait for onTransmitReady). */
  reserveDataIn(bytes: number): boolean;
  /** The admitted Data-In was handed to send() (or will not be sent). */
  releaseDataIn(bytes: number): void;
  /** The send queue is over its bound: the CmdSN window must not open. */
  readonly transmitCongested: boolean;
  /** Fail the connection (protocol error at ErrorRecoveryLevel 0). */
  fail(message: string): void;
  /**
   * Close the connection, which ends the session; resolves once the session is closed.
   * `graceful` sends what is queued (e.g. a TMF response) before the FIN.
   */
  close(reason: string, graceful?: boolean): Promise<void>;
}

/** Key that identifies a session for reinstatement (RFC 7143 §4.4.3): initiator, ISID, target. */
export function sessionKey(initiatorName: string, isid: Buffer, targetName: string): string {
  return `${initiatorName}|${isid.toString('hex')}|${targetName}`;
}

/** Finished ITTs remembered so late Data-Out for them is dropped quietly rather than rejected. */
const RECENT_TAGS = 256;

/** What a session needs from the gateway: limits, the shared Data-Out budget, its task share. */
export interface SessionResources {
  readonly limits: DataPathLimits;
  readonly dataOut: DataOutBudget;
  /** May a session with `running` commands in the SCSI layer start one more (its share of the target's)? */
  mayRun(running: number): boolean;
  /** A command of this session entered (+1) or left (-1) the SCSI layer. */
  running(delta: number): void;
  /** The SCSI target port the login bound the session to (default: the node's portalGroupTag). */
  readonly port?: TargetPortBinding;
}

export class Session implements R2TSender {
  readonly key: string;
  readonly nexus: ITNexus;
  readonly window: CommandWindow;
  readonly tasks = new Map<number, IscsiTask>();
  private readonly byTransferTag = new Map<number, IscsiTask>();
  private nextTransferTag = 1;
  private readonly recentTags: number[] = [];
  private closed = false;
  private readonly log: Logger;
  /** Commands and bytes of this session, counted inline; read by metrics and the API. */
  readonly stats = new SessionStats();
  /** Commands delivered in CmdSN order but waiting for room in the send queue (FIFO). */
  private readonly held: IscsiTask[] = [];
  /** Commands handed to the SCSI layer and not yet completed. */
  private executing = 0;
  /** Immediate commands outstanding (they bypass the CmdSN window). */
  private immediateTasks = 0;
  /** Data-In bytes reserved in the send queue per task. */
  private readonly dataInReserved = new Map<IscsiTask, number>();
  /** Data-Out budget: bytes this session holds, tasks waiting for more (FIFO). */
  private dataOutUsed = 0;
  private readonly dataOutWaiting: IscsiTask[] = [];
  private readonly retryDataOut = () => this.grantDataOut();
  private readonly responder: TaskResponder;

  constructor(
    readonly tsih: number,
    readonly isid: Buffer,
    readonly target: IscsiTargetNode,
    readonly params: SessionParameters,
    initialCmdSN: number,
    private readonly transport: SessionTransport,
    log: Logger,
    private readonly resources: SessionResources,
  ) {
    this.key = sessionKey(params.initiatorName, isid, target.name);
    const isidHex = isid.toString('hex');
    const port = resources.port ?? { tpgt: target.portalGroupTag, relativeTargetPortId: target.portalGroupTag, targetPortGroup: target.portalGroupTag };
    const tpgt = port.tpgt;
    const initiatorPortName = `${params.initiatorName},i,0x${isidHex}`;
    const targetPortName = `${target.name},t,0x${tpgt.toString(16).padStart(4, '0')}`;
    this.nexus = {
      key: `${initiatorPortName}|${targetPortName}`,
      initiatorName: params.initiatorName,
      initiatorPortName,
      isid: isidHex,
      targetName: target.name,
      targetPortName,
      relativeTargetPortId: port.relativeTargetPortId,
      targetPortGroup: port.targetPortGroup,
    };
    // MaxCmdSN stops advancing while the send queue is over its bound (transmit back-pressure).
    this.window = new CommandWindow(
      initialCmdSN,
      () => this.settings().cmdsnDepth,
      () => this.held.length > 0 || transport.transmitCongested,
    );
    this.responder = new TaskResponder(transport, this.window, params.maxBurstLength, this.stats);
    this.log = log.child({ tsih, initiator: params.initiatorName });
    resources.dataOut.onRelease.add(this.retryDataOut);
    target.device.nexusCreated(this.nexus);
  }

  settings(): TargetSettings {
    return this.target.settings();
  }

  private get expCmdSN(): number {
    return this.window.expCmdSN;
  }

  private get maxCmdSN(): number {
    return this.window.maxCmdSN;
  }

  /** Order a command-numbered PDU of this session (see CommandWindow.order). */
  order(cmdSN: number, immediate: boolean, run: () => void, counts: boolean): boolean {
    if (this.closed) return false;
    return this.window.order(cmdSN, immediate, run, counts);
  }

  // ---- SCSI commands -----------------------------------------------------------------------

  onScsiCommand(pdu: ScsiCommandPdu, bhs: Buffer): void {
    const problem = IscsiTask.checkImmediateData(pdu, this.params);
    if (problem) {
      this.transport.reject(RejectReason.ProtocolError, bhs, problem);
      this.consumeRejected(pdu.cmdSN, pdu.immediate);
      return;
    }
    if (pdu.itt === RESERVED_TAG) {
      this.transport.reject(RejectReason.InvalidPduField, bhs, 'SCSI command with the reserved ITT 0xffffffff');
      this.consumeRejected(pdu.cmdSN, pdu.immediate);
      return;
    }
    if (this.tasks.has(pdu.itt)) {
      this.transport.reject(RejectReason.TaskInProgress, bhs, `ITT 0x${pdu.itt.toString(16)} already in use`);
      this.consumeRejected(pdu.cmdSN, pdu.immediate);
      return;
    }
    const lun = decodeLun(pdu.lun) ?? -1;
    const task = new IscsiTask(this.nexus, pdu, lun, this.params, this);
    // Tracked before delivery: unsolicited Data-Out may follow before its CmdSN comes up.
    this.tasks.set(task.tag, task);
    if (pdu.immediate) {
      this.immediateTasks++; // until forget()
      if (this.immediateTasks > this.resources.limits.immediateCommands) {
        // Immediate commands bypass the CmdSN window: bounded here instead (SAM-5 TASK SET FULL).
        this.taskSetFull(task);
        return;
      }
    }
    if (!this.order(pdu.cmdSN, pdu.immediate, () => this.execute(task), !pdu.immediate)) {
      this.tasks.delete(task.tag);
      if (pdu.immediate) this.immediateTasks--;
    }
  }

  /** End a command with TASK SET FULL without running it. */
  private taskSetFull(task: IscsiTask): void {
    this.forget(task);
    task.releaseBuffers();
    task.finished = true;
    this.sendResponse(task, ScsiStatus.TaskSetFull, undefined, 0, false, false);
  }

  /** A rejected command still consumes its CmdSN so the window does not stall. */
  private consumeRejected(cmdSN: number, immediate: boolean): void {
    if (!immediate) this.order(cmdSN, false, () => undefined, false);
  }

  private execute(task: IscsiTask): void {
    if (task.finished) return; // aborted while waiting for its CmdSN
    if (this.held.length > 0 || !this.admit(task)) this.held.push(task);
  }

  /**
   * Run a command if there is room for it: its share of the target's task set (else TASK SET
   * FULL) and, for a READ, room in the send queue (else it waits, and nothing is read from the
   * backstore that could not be sent yet). False: hold it.
   */
  private admit(task: IscsiTask): boolean {
    if (this.closed) return true;
    if (!this.resources.mayRun(this.executing)) {
      this.taskSetFull(task);
      return true;
    }
    if (task.dataInLength > 0) {
      if (!this.transport.reserveDataIn(task.dataInLength)) return false;
      this.dataInReserved.set(task, task.dataInLength);
    }
    this.executing++;
    this.resources.running(1);
    this.target.device.execute(task).then(
      (result) => this.complete(task, result),
      (error: unknown) => {
        // The SCSI layer promises never to reject; treat it as a target failure.
        this.log.error({ err: error, itt: task.tag }, 'SCSI layer failed a command');
        this.complete(task, { status: ScsiStatus.CheckCondition, sense: HARDWARE_ERROR_SENSE });
      },
    ).catch((error: unknown) => {
      // A bug in completion must cost this session, never the process.
      this.log.error({ err: error, itt: task.tag }, 'internal error completing a command');
      this.transport.fail('internal error completing a command');
    });
    return true;
  }

  /** The send queue has room again: run held commands in order. */
  onTransmitReady(): void {
    while (this.held.length > 0 && !this.closed) {
      const task = this.held[0];
      if (task.finished) {
        this.held.shift();
        this.forget(task);
        continue;
      }
      if (!this.admit(task)) return;
      this.held.shift();
    }
  }

  private complete(task: IscsiTask, result: ScsiResult): void {
    this.executing--;
    this.resources.running(-1);
    this.forget(task);
    const reservedDataIn = this.dataInReserved.get(task) ?? 0;
    this.dataInReserved.delete(task);
    // Data-Out buffers go back to the pool now (the backstore is done with them); the Data-In
    // buffer only after the socket has taken it, if it is transmitted at all.
    // ...unless the backstore may still hold them (an operation given up on after cmd_time_out).
    const released = task.releaseBuffers(!result.retainBuffers);
    const dataIn = result.retainBuffers ? undefined : released;
    const transmitsDataIn =
      !this.closed && !task.finished && !task.transportFailure && !result.aborted && task.dataInLength > 0 &&
      dataIn !== undefined && result.data !== undefined && result.data.length > 0 && result.data.buffer === dataIn.buffer;
    if (!transmitsDataIn) dataBuffers.give(dataIn);
    try {
      this.respond(task, result, dataIn, transmitsDataIn);
    } finally {
      // From here the socket's buffer accounts for the data.
      this.transport.releaseDataIn(reservedDataIn);
    }
  }

  private respond(task: IscsiTask, result: ScsiResult, dataIn: Buffer | undefined, transmitsDataIn: boolean): void {
    if (this.closed || task.finished) return;
    task.finished = true;
    this.responder.respond(task, result, transmitsDataIn ? () => dataBuffers.give(dataIn) : undefined);
  }

  private sendResponse(task: IscsiTask, status: number, sense: Buffer | undefined, residual: number, overflow: boolean, underflow: boolean): void {
    this.responder.sendResponse(task, status, sense, residual, overflow, underflow);
  }

  /** Set by the connection from the negotiated connection parameters. */
  setMaxXmit(bytes: number): void {
    this.responder.maxXmit = bytes;
  }

  private forget(task: IscsiTask): void {
    if (this.tasks.get(task.tag) !== task) return;
    this.tasks.delete(task.tag);
    if (!task.immediate) this.window.completed();
    else this.immediateTasks--;
    this.recentTags.push(task.tag);
    if (this.recentTags.length > RECENT_TAGS) this.recentTags.shift();
  }

  // ---- Data-Out ----------------------------------------------------------------------------

  /** Reader hook: where should this Data-Out payload land? */
  placeDataOut(bhs: Buffer, length: number): Buffer | undefined {
    const task = this.tasks.get(bhs.readUInt32BE(16));
    return task?.placement(bhs.readUInt32BE(20), bhs.readUInt32BE(40), length);
  }

  onDataOut(pdu: DataOutPdu, bhs: Buffer): void {
    const task = this.tasks.get(pdu.itt);
    if (!task || !task.collecting) {
      if (task || this.recentTags.includes(pdu.itt)) return; // late data for an ended or failed task
      this.transport.reject(RejectReason.InvalidPduField, bhs, `Data-Out for unknown ITT 0x${pdu.itt.toString(16)}`);
      return;
    }
    try {
      task.onDataOut(pdu);
    } catch (e) {
      if (e instanceof DataOutError) {
        peerEvents().warn('data-out-error', { itt: pdu.itt }, `Data-Out error, command failed: ${e.message}`, this.log);
        task.failDataOut(e);
        return;
      }
      throw e;
    }
  }

  allocateTransferTag(task: IscsiTask): number {
    let ttt = this.nextTransferTag;
    while (ttt === RESERVED_TAG || this.byTransferTag.has(ttt)) ttt = (ttt + 1) >>> 0;
    this.nextTransferTag = (ttt + 1) >>> 0;
    this.byTransferTag.set(ttt, task);
    return ttt;
  }

  releaseTransferTag(ttt: number): void {
    this.byTransferTag.delete(ttt);
  }

  reserveDataOut(task: IscsiTask, bytes: number): boolean {
    if (this.dataOutWaiting.length === 0 && this.resources.dataOut.tryReserve(bytes, this.dataOutUsed)) {
      this.dataOutUsed += bytes;
      return true;
    }
    this.dataOutWaiting.push(task);
    return false;
  }

  releaseDataOut(_task: IscsiTask, bytes: number): void {
    this.dataOutUsed = Math.max(0, this.dataOutUsed - bytes);
    this.resources.dataOut.release(bytes);
  }

  /** Budget came free (this session's or another's): solicit for waiting tasks in order. */
  private grantDataOut(): void {
    while (this.dataOutWaiting.length > 0 && !this.closed) {
      const task = this.dataOutWaiting[0];
      if (task.finished || !task.collecting) {
        this.dataOutWaiting.shift();
        continue;
      }
      const bytes = task.dataOutWanted;
      if (!this.resources.dataOut.tryReserve(bytes, this.dataOutUsed)) return;
      this.dataOutUsed += bytes;
      this.dataOutWaiting.shift();
      task.dataOutGranted();
    }
  }

  sendR2T(task: IscsiTask, ttt: number, r2tSN: number, bufferOffset: number, length: number): void {
    this.transport.send(
      encodeReadyToTransfer({
        lun: task.lunField,
        itt: task.tag,
        ttt,
        statSN: this.transport.peekStatSN(),
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
        r2tSN,
        bufferOffset,
        desiredDataTransferLength: length,
      }),
    );
  }

  /** Tasks stuck waiting for solicited Data-Out longer than dataout_timeout. */
  dataOutTimedOut(now: number): IscsiTask | undefined {
    const limit = this.settings().dataoutTimeout * 1000;
    for (const task of this.tasks.values()) {
      if (task.awaitingDataOut && task.waitingSince > 0 && now - task.waitingSince > limit) return task;
    }
    return undefined;
  }

  // ---- Task management (RFC 7143 §11.5) ----------------------------------------------------

  onTaskManagement(pdu: TaskManagementRequestPdu): void {
    const run = () => {
      this.taskManagement(pdu)
        .then((response) => {
          if (this.closed) return;
          this.transport.send(
            encodeTaskManagementResponse({
              itt: pdu.itt,
              response,
              statSN: this.transport.takeStatSN(),
              expCmdSN: this.expCmdSN,
              maxCmdSN: this.maxCmdSN,
            }),
          );
          if (response === TaskManagementResponse.FunctionComplete && pdu.function === TaskManagementFunction.TargetColdReset) {
            this.onColdReset?.();
          }
        })
        .catch((error: unknown) => {
          this.log.error({ err: error }, 'task management response failed');
          this.transport.fail('internal error in task management');
        });
    };
    this.order(pdu.cmdSN, pdu.immediate, run, false);
  }

  /** Abort held commands (never started, so nothing is sent for them); returns how many. */
  private dropHeld(match: (task: IscsiTask) => boolean): number {
    let dropped = 0;
    for (let i = this.held.length - 1; i >= 0; i--) {
      const task = this.held[i];
      if (!match(task)) continue;
      this.held.splice(i, 1);
      task.finished = true;
      this.forget(task);
      dropped++;
    }
    if (dropped > 0) setImmediate(() => this.onTransmitReady());
    return dropped;
  }

  /** Set by the daemon/connection: a TARGET COLD RESET drops every connection to the target. */
  onColdReset: (() => void) | undefined;

  private async taskManagement(pdu: TaskManagementRequestPdu): Promise<TaskManagementResponse> {
    const fn = pdu.function as TaskManagementFunction;
    const lun = decodeLun(pdu.lun) ?? -1;
    const device = this.target.device;
    try {
      switch (fn) {
        case TaskManagementFunction.AbortTask: {
          const task = this.tasks.get(pdu.referencedTaskTag);
          if (!task) {
            // Not received yet but within the window and older than this TMF: consider it
            // received and aborted (RFC 7143 §11.5.1), so it is dropped when it arrives.
            if (this.window.notYetArrived(pdu.refCmdSN) && serialLt(pdu.refCmdSN, pdu.cmdSN)) {
              this.window.abortBeforeArrival(pdu.refCmdSN);
              return TaskManagementResponse.FunctionComplete;
            }
            return TaskManagementResponse.TaskDoesNotExist;
          }
          if (task.lun !== lun) return TaskManagementResponse.TaskDoesNotExist;
          // Held for room in the send queue: it never reached the SCSI layer.
          if (this.dropHeld((t) => t === task) > 0) return TaskManagementResponse.FunctionComplete;
          return await device.taskManagement({ nexus: this.nexus, fn, lun, referencedTag: task.tag });
        }
        case TaskManagementFunction.TaskReassign:
          return TaskManagementResponse.TaskAllegianceReassignmentNotSupported;
        case TaskManagementFunction.AbortTaskSet:
        case TaskManagementFunction.ClearTaskSet:
        case TaskManagementFunction.ClearAca:
        case TaskManagementFunction.LogicalUnitReset:
        case TaskManagementFunction.TargetWarmReset:
        case TaskManagementFunction.TargetColdReset:
        case TaskManagementFunction.QueryTask:
        case TaskManagementFunction.QueryTaskSet:
        case TaskManagementFunction.ITNexusReset:
        case TaskManagementFunction.QueryAsyncEvent:
          if (fn === TaskManagementFunction.AbortTaskSet || fn === TaskManagementFunction.ClearTaskSet || fn === TaskManagementFunction.LogicalUnitReset) {
            this.dropHeld((t) => t.lun === lun);
          } else if (fn !== TaskManagementFunction.ClearAca && fn !== TaskManagementFunction.QueryTask && fn !== TaskManagementFunction.QueryTaskSet && fn !== TaskManagementFunction.QueryAsyncEvent) {
            this.dropHeld(() => true);
          }
          return await device.taskManagement({
            nexus: this.nexus,
            fn,
            lun,
            referencedTag: fn === TaskManagementFunction.QueryTask ? pdu.referencedTaskTag : undefined,
          });
        default:
          return TaskManagementResponse.NotSupported;
      }
    } catch (error) {
      this.log.error({ err: error }, 'task management failed');
      return TaskManagementResponse.Rejected;
    }
  }

  // ---- Teardown ------------------------------------------------------------------------------

  /** Drop the session's connection (reinstatement, cold reset, shutdown); `graceful` flushes output first. */
  terminate(reason: string, graceful = false): Promise<void> {
    return this.transport.close(reason, graceful);
  }

  /** Number of tasks still running (logout waits for them). */
  get runningTasks(): number {
    return this.tasks.size;
  }

  /** End the session: abort whatever still runs and tell the SCSI layer the nexus is gone. */
  async close(reason: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.log.info({ reason }, 'session closed');
    this.resources.dataOut.onRelease.delete(this.retryDataOut);
    for (const task of this.tasks.values()) task.fail(new TaskAbortedError());
    for (const task of this.held) this.forget(task);
    this.held.length = 0;
    this.dataOutWaiting.length = 0;
    for (const bytes of this.dataInReserved.values()) this.transport.releaseDataIn(bytes);
    this.dataInReserved.clear();
    this.window.clear();
    await this.target.device.nexusLost(this.nexus);
    this.tasks.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** HARDWARE ERROR / INTERNAL TARGET FAILURE, fixed format. */
const HARDWARE_ERROR_SENSE = encodeSense({ key: SenseKey.HardwareError, asc: Asc.InternalTargetFailure }, false);
