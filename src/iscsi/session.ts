/**
 * A normal iSCSI session (RFC 7143 §4.2.2, §4.2.3): the I_T nexus, the CmdSN window with
 * in-order delivery, the task table, SCSI command execution through the SCSI target device,
 * and task management. One connection per session (MaxConnections=1, ErrorRecoveryLevel=0).
 */
import { RejectReason, RESERVED_TAG } from '../pdu/opcodes';
import { decodeLun } from '../pdu/lun';
import { DataOutPdu, ScsiCommandPdu, TaskManagementRequestPdu } from '../pdu/requests';
import {
  encodeDataIn,
  encodeReadyToTransfer,
  encodeScsiResponse,
  encodeTaskManagementResponse,
} from '../pdu/responses';
import { serialLt } from '../pdu/serial';
import { dataBuffers } from '../util/buffer-pool';
import { CommandWindow } from './command-window';
import {
  ITNexus,
  ScsiResult,
  ScsiStatus,
  TaskManagementFunction,
  TaskManagementResponse,
} from '../scsi/sam';
import type { Logger } from '../util/log';
import { DataOutError, IscsiTask, R2TSender, TaskAbortedError } from './scsi-task';
import { SessionParameters } from './parameters';
import { IscsiTargetNode, TargetSettings } from './target-node';

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

  constructor(
    readonly tsih: number,
    readonly isid: Buffer,
    readonly target: IscsiTargetNode,
    readonly params: SessionParameters,
    initialCmdSN: number,
    private readonly transport: SessionTransport,
    log: Logger,
  ) {
    this.key = sessionKey(params.initiatorName, isid, target.name);
    const isidHex = isid.toString('hex');
    const tpgt = target.portalGroupTag;
    const initiatorPortName = `${params.initiatorName},i,0x${isidHex}`;
    const targetPortName = `${target.name},t,0x${tpgt.toString(16).padStart(4, '0')}`;
    this.nexus = {
      key: `${initiatorPortName}|${targetPortName}`,
      initiatorName: params.initiatorName,
      initiatorPortName,
      isid: isidHex,
      targetName: target.name,
      targetPortName,
      relativeTargetPortId: tpgt,
      targetPortGroup: tpgt,
    };
    this.window = new CommandWindow(initialCmdSN, () => this.settings().cmdsnDepth);
    this.log = log.child({ tsih, initiator: params.initiatorName });
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
    if (!this.order(pdu.cmdSN, pdu.immediate, () => this.execute(task), !pdu.immediate)) {
      this.tasks.delete(task.tag);
    }
  }

  /** A rejected command still consumes its CmdSN so the window does not stall. */
  private consumeRejected(cmdSN: number, immediate: boolean): void {
    if (!immediate) this.order(cmdSN, false, () => undefined, false);
  }

  private execute(task: IscsiTask): void {
    if (task.finished) return; // aborted while waiting for its CmdSN
    this.target.device.execute(task).then(
      (result) => this.complete(task, result),
      (error: unknown) => {
        // The SCSI layer promises never to reject; treat it as a target failure.
        this.log.error({ err: error, itt: task.tag }, 'SCSI layer failed a command');
        this.complete(task, { status: ScsiStatus.CheckCondition, sense: HARDWARE_ERROR_SENSE });
      },
    );
  }

  private complete(task: IscsiTask, result: ScsiResult): void {
    this.forget(task);
    // Data-Out buffers go back to the pool now (the backstore is done with them); the Data-In
    // buffer only after the socket has taken it, if it is transmitted at all.
    // ...unless the backstore may still hold them (an operation given up on after cmd_time_out).
    const dataIn = result.retainBuffers ? undefined : task.releaseBuffers();
    const transmitsDataIn =
      !this.closed && !task.finished && !task.transportFailure && !result.aborted && task.dataInLength > 0 &&
      dataIn !== undefined && result.data !== undefined && result.data.length > 0 && result.data.buffer === dataIn.buffer;
    if (!transmitsDataIn) dataBuffers.give(dataIn);
    if (this.closed || task.finished) return;
    task.finished = true;
    if (task.transportFailure) {
      // The Data-Out failure decides the outcome (the SCSI layer only saw receiveDataOut fail).
      this.sendResponse(task, ScsiStatus.CheckCondition, task.transportFailure, 0, false, false);
      return;
    }
    if (result.aborted) {
      if (result.aborted.reportStatus) this.sendResponse(task, ScsiStatus.TaskAborted, undefined, 0, false, false);
      return;
    }
    let overflow = false;
    let underflow = false;
    let residual = 0;
    if (result.dataOutTransferLength !== undefined && (task.write || result.dataOutTransferLength > 0)) {
      const wanted = result.dataOutTransferLength;
      if (wanted > task.dataOutLength) {
        overflow = true;
        residual = wanted - task.dataOutLength;
      } else if (wanted < task.dataOutLength) {
        underflow = true;
        residual = task.dataOutLength - wanted;
      }
    }
    const data = result.data;
    if (data && task.dataInLength === 0 && task.dataOutLength === 0 && data.length > 0) {
      // Data-In without the R bit: report it all as overflow (nothing may be sent).
      overflow = true;
      residual = data.length;
    }
    let sendable = 0;
    if (data && task.dataInLength > 0) {
      sendable = Math.min(data.length, task.dataInLength);
      if (data.length > task.dataInLength) {
        overflow = true;
        residual = data.length - task.dataInLength;
      } else if (data.length < task.dataInLength) {
        underflow = true;
        residual = task.dataInLength - data.length;
      }
    } else if (task.dataInLength > 0 && task.dataOutLength === 0) {
      underflow = true;
      residual = task.dataInLength;
    }
    const collapse =
      sendable > 0 && !result.sense && (result.status === ScsiStatus.Good || result.status === ScsiStatus.ConditionMet);
    if (sendable > 0) {
      const status = collapse ? { status: result.status, overflow, underflow, residual } : undefined;
      this.sendDataIn(task, data!.subarray(0, sendable), status, transmitsDataIn ? () => dataBuffers.give(dataIn) : undefined);
    }
    if (!collapse) this.sendResponse(task, result.status, result.sense, residual, overflow, underflow);
  }

  private sendDataIn(
    task: IscsiTask,
    data: Buffer,
    status: { status: number; overflow: boolean; underflow: boolean; residual: number } | undefined,
    onSent: (() => void) | undefined,
  ): void {
    const t = this.transport;
    const segment = this.maxXmitValue;
    const burst = this.params.maxBurstLength;
    let offset = 0;
    while (offset < data.length) {
      const n = Math.min(segment, data.length - offset, burst - (offset % burst));
      const last = offset + n === data.length;
      const endOfBurst = last || (offset + n) % burst === 0;
      const header = encodeDataIn(
        {
          final: endOfBurst,
          lun: task.lunField,
          itt: task.tag,
          expCmdSN: this.expCmdSN,
          maxCmdSN: this.maxCmdSN,
          dataSN: task.dataInPdus++,
          bufferOffset: offset,
          status:
            last && status
              ? {
                  statSN: t.takeStatSN(),
                  status: status.status,
                  residualOverflow: status.overflow,
                  residualUnderflow: status.underflow,
                  residualCount: status.residual,
                }
              : undefined,
        },
        n,
      );
      t.send(header, data.subarray(offset, offset + n), last ? onSent : undefined);
      offset += n;
    }
  }

  private sendResponse(
    task: IscsiTask,
    status: number,
    sense: Buffer | undefined,
    residual: number,
    overflow: boolean,
    underflow: boolean,
  ): void {
    let data: Buffer | undefined;
    if (sense && sense.length > 0) {
      data = Buffer.allocUnsafe(2 + sense.length);
      data.writeUInt16BE(sense.length, 0);
      sense.copy(data, 2);
    }
    const header = encodeScsiResponse(
      {
        itt: task.tag,
        response: 0,
        status,
        residualOverflow: overflow,
        residualUnderflow: underflow,
        residualCount: residual,
        expDataSN: task.dataOutLength > 0 ? task.r2tCount : task.dataInPdus,
        statSN: this.transport.takeStatSN(),
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
      },
      data?.length ?? 0,
    );
    this.transport.send(header, data);
  }

  private maxXmitValue = 8192;

  /** Set by the connection from the negotiated connection parameters. */
  setMaxXmit(bytes: number): void {
    this.maxXmitValue = bytes;
  }

  private forget(task: IscsiTask): void {
    if (this.tasks.get(task.tag) !== task) return;
    this.tasks.delete(task.tag);
    if (!task.immediate) this.window.completed();
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
        this.log.warn({ itt: pdu.itt }, `Data-Out error, command failed: ${e.message}`);
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
      void this.taskManagement(pdu).then((response) => {
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
      });
    };
    this.order(pdu.cmdSN, pdu.immediate, run, false);
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
    for (const task of this.tasks.values()) task.fail(new TaskAbortedError());
    this.window.clear();
    await this.target.device.nexusLost(this.nexus);
    this.tasks.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** HARDWARE ERROR / INTERNAL TARGET FAILURE (0x44/0x00), fixed format. */
const HARDWARE_ERROR_SENSE = (() => {
  const s = Buffer.alloc(18);
  s[0] = 0x70;
  s[2] = 0x04;
  s[7] = 10;
  s[12] = 0x44;
  return s;
})();
