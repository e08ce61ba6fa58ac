/**
 * Turning a SCSI result into PDUs (RFC 7143 §11.4, §11.7): residual over/underflow against the
 * expected lengths, Data-In split by MaxRecvDataSegmentLength and MaxBurstLength with the status
 * collapsed into the last Data-In when the command succeeded, else a SCSI Response with sense.
 */
import type { SessionStats } from '../metrics/stats';
import { encodeDataIn, encodeScsiResponse } from '../pdu/responses';
import { ScsiResult, ScsiStatus } from '../scsi/sam';
import type { CommandWindow } from './command-window';
import type { IscsiTask } from './scsi-task';
import type { SessionTransport } from './session';

export class TaskResponder {
  /** The initiator's MaxRecvDataSegmentLength (capped by ours). */
  maxXmit = 8192;

  constructor(
    private readonly transport: Pick<SessionTransport, 'send' | 'takeStatSN'>,
    private readonly window: CommandWindow,
    private readonly maxBurstLength: number,
    private readonly stats: SessionStats,
  ) {}

  /** The command's outcome: Data-In (status collapsed into the last one when possible) and/or a SCSI Response. */
  respond(task: IscsiTask, result: ScsiResult, onDataInSent: (() => void) | undefined): void {
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
    this.stats.record(result.status, sendable, Math.min(result.dataOutTransferLength ?? 0, task.dataOutLength));
    const collapse =
      sendable > 0 && !result.sense && (result.status === ScsiStatus.Good || result.status === ScsiStatus.ConditionMet);
    if (sendable > 0) {
      const status = collapse ? { status: result.status, overflow, underflow, residual } : undefined;
      this.sendDataIn(task, data!.subarray(0, sendable), status, onDataInSent);
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
    const segment = this.maxXmit;
    const burst = this.maxBurstLength;
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
          expCmdSN: this.window.expCmdSN,
          maxCmdSN: this.window.maxCmdSN,
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

  sendResponse(
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
        expCmdSN: this.window.expCmdSN,
        maxCmdSN: this.window.maxCmdSN,
      },
      data?.length ?? 0,
    );
    this.transport.send(header, data);
  }
}
