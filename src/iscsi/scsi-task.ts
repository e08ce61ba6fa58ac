/**
 * One SCSI command as the iSCSI layer carries it (RFC 7143 §4.2.5, §11.3-11.8): collects its
 * Data-Out (immediate data, unsolicited Data-Out, solicited Data-Out answering our R2Ts) and
 * turns the SCSI result into Data-In PDUs and a SCSI Response.
 *
 * The task is the ScsiCommand handed to the SCSI layer: the SCSI layer pulls the Data-Out it
 * needs with receiveDataOut() once the CDB is known to be good.
 */
import { Asc, SenseKey, encodeSense } from '../scsi/sense';
import { RESERVED_TAG } from '../pdu/opcodes';
import { DataOutPdu, ScsiCommandPdu } from '../pdu/requests';
import { ITNexus, ScsiCommand, TaskAbortedError, TaskAttribute } from '../scsi/sam';
import { dataBuffers } from '../util/buffer-pool';
import { SessionParameters } from './parameters';

/** A protocol violation in a Data-Out sequence: at ErrorRecoveryLevel 0 the connection fails. */
export class DataOutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataOutError';
  }
}

/** The project's one abort error (scsi/sam.ts), re-exported for the session. */
export { TaskAbortedError };

/** Sends R2Ts; implemented by the session (it owns TTTs and sequence numbers). */
export interface R2TSender {
  sendR2T(task: IscsiTask, ttt: number, r2tSN: number, bufferOffset: number, length: number): void;
  allocateTransferTag(task: IscsiTask): number;
  releaseTransferTag(ttt: number): void;
  /**
   * Reserve buffer space for `bytes` of solicited Data-Out. False: the task is queued and
   * dataOutGranted() is called once the bytes are reserved for it.
   */
  reserveDataOut(task: IscsiTask, bytes: number): boolean;
  releaseDataOut(task: IscsiTask, bytes: number): void;
}

interface Sequence {
  /** TTT of the R2T, or RESERVED_TAG for the unsolicited sequence. */
  readonly ttt: number;
  readonly offset: number;
  readonly length: number;
  nextOffset: number;
  nextDataSN: number;
}

export class IscsiTask implements ScsiCommand {
  readonly lun: number;
  readonly cdb: Buffer;
  readonly tag: number;
  readonly attribute: TaskAttribute;
  readonly dataOutLength: number;
  readonly dataInLength: number;
  readonly cmdSN: number;
  readonly immediate: boolean;
  readonly lunField: Buffer;

  /** Unsolicited data received before the SCSI layer asked for it: [offset, bytes]. */
  private unsolicited: Array<[number, Buffer]> = [];
  private unsolicitedSeq: Sequence | undefined;
  /** Bytes of unsolicited data the initiator may still send (0 once the F bit was seen). */
  private unsolicitedOpen: boolean;
  private wanted = -1;
  private buffer: Buffer | undefined;
  /** End of the contiguous unsolicited data (immediate data + unsolicited Data-Out). */
  private unsolicitedEnd = 0;
  private nextR2TOffset = 0;
  private r2tSN = 0;
  private readonly outstanding = new Map<number, Sequence>();
  /** False once Data-Out for this task is no longer accepted. */
  collecting = true;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private abortListener: (() => void) | undefined;
  private signal: AbortSignal | undefined;
  /** DataSN counter for Data-In, also reported as ExpDataSN. */
  dataInPdus = 0;
  /** Time the task last waited for solicited Data-Out (for dataout_timeout), 0 when not waiting. */
  waitingSince = 0;
  /** Set once the task must produce no further PDUs (aborted, or the connection is gone). */
  finished = false;
  /**
   * A Data-Out protocol error (DataSN, offset, F bit) ended the command: it completes with
   * CHECK CONDITION carrying this sense, whatever the SCSI layer reports.
   */
  transportFailure: Buffer | undefined;
  /** The W bit was set. */
  readonly write: boolean;

  constructor(
    readonly nexus: ITNexus,
    pdu: ScsiCommandPdu,
    lun: number,
    private readonly params: SessionParameters,
    private readonly r2t: R2TSender,
  ) {
    this.lun = lun;
    this.lunField = Buffer.from(pdu.lun);
    this.cdb = Buffer.from(pdu.cdb); // the BHS buffer may be reused by the reader's chunk
    this.tag = pdu.itt;
    this.attribute = pdu.attr as TaskAttribute;
    this.cmdSN = pdu.cmdSN;
    this.immediate = pdu.immediate;
    this.write = pdu.write;
    this.dataOutLength = pdu.write ? pdu.expectedDataTransferLength : 0;
    this.dataInLength = pdu.read ? (pdu.write ? (pdu.bidiReadLength ?? 0) : pdu.expectedDataTransferLength) : 0;
    const unsolicitedLimit = Math.min(this.dataOutLength, params.firstBurstLength);
    this.immediateData = pdu.data.length > 0 ? pdu.data : undefined;
    if (pdu.data.length > 0) this.unsolicited.push([0, pdu.data]);
    this.unsolicitedEnd = pdu.data.length;
    // F=0 on a write announces unsolicited Data-Out PDUs (only legal with InitialR2T=No).
    this.unsolicitedOpen = pdu.write && !pdu.final && !params.initialR2T && pdu.data.length < unsolicitedLimit;
    if (this.unsolicitedOpen) {
      this.unsolicitedSeq = { ttt: RESERVED_TAG, offset: 0, length: unsolicitedLimit, nextOffset: pdu.data.length, nextDataSN: 0 };
    }
  }

  /** Validate a SCSI Command PDU's immediate data against the session parameters. */
  static checkImmediateData(pdu: ScsiCommandPdu, params: SessionParameters): string | undefined {
    if (pdu.data.length === 0) return undefined;
    if (!pdu.write) return 'immediate data on a command without the W bit';
    if (!params.immediateData) return 'immediate data although ImmediateData=No';
    if (pdu.data.length > pdu.expectedDataTransferLength) return 'immediate data exceeds the expected data transfer length';
    if (pdu.data.length > params.firstBurstLength) return 'immediate data exceeds FirstBurstLength';
    if (!pdu.final && params.initialR2T) return 'F bit clear with InitialR2T=Yes';
    return undefined;
  }

  // ---- ScsiCommand ------------------------------------------------------------------------

  receiveDataOut(length: number, signal: AbortSignal): Promise<Buffer> {
    if (this.wanted >= 0) return Promise.reject(new Error('receiveDataOut called twice'));
    if (length > this.dataOutLength || length < 0) {
      return Promise.reject(new Error(`receiveDataOut(${length}) beyond the expected length ${this.dataOutLength}`));
    }
    if (signal.aborted || this.finished) return Promise.reject(new TaskAbortedError());
    if (!this.collecting) return Promise.reject(new DataOutError('the Data-Out sequence failed'));
    this.wanted = length;
    // Fast path: everything wanted came as immediate data (no copy).
    const first = this.unsolicited[0];
    if (first && first[0] === 0 && first[1].length >= length) {
      return Promise.resolve(first[1].subarray(0, length));
    }
    if (length === 0) return Promise.resolve(Buffer.alloc(0));
    this.assembling = true;
    // The buffer is allocated when the first byte of it arrives (here if some already has).
    if (this.unsolicited.length > 0) this.ensureBuffer();
    for (const [offset, bytes] of this.unsolicited) this.store(offset, bytes);
    this.unsolicited = [];
    // R2Ts start where unsolicited data ends (decided when the unsolicited burst closes).
    this.nextR2TOffset = Math.min(this.unsolicitedEnd, length);
    this.signal = signal;
    return new Promise<Buffer>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.abortListener = () => this.fail(new TaskAbortedError());
      signal.addEventListener('abort', this.abortListener, { once: true });
      this.startSolicitation();
      this.checkComplete();
    });
  }

  /** Solicited bytes need buffer space reserved before the first R2T goes out. */
  private startSolicitation(): void {
    if (this.unsolicitedEnd >= this.wanted && !this.unsolicitedOpen) return; // all here already
    if (this.r2t.reserveDataOut(this, this.wanted)) this.dataOutGranted();
  }

  /** The Data-Out budget holds this task's bytes: solicit them. */
  dataOutGranted(): void {
    this.reservedDataOut = this.wanted;
    if (this.finished || !this.collecting) {
      this.r2t.releaseDataOut(this, this.reservedDataOut);
      this.reservedDataOut = 0;
      return;
    }
    this.issueR2Ts();
  }

  /** Bytes reserved in the Data-Out budget (released with the buffers). */
  private reservedDataOut = 0;
  /** receiveDataOut() was called and the data is assembled in `buffer`. */
  private assembling = false;

  private ensureBuffer(): Buffer {
    if (!this.buffer) this.buffer = dataBuffers.take(this.wanted);
    return this.buffer;
  }

  /** The command PDU's immediate data (possibly assembled in a pool buffer by the reader). */
  private readonly immediateData: Buffer | undefined;
  /** Data-In buffer handed to the SCSI layer (recycled after transmission). */
  private dataIn: Buffer | undefined;

  dataInBuffer(length: number): Buffer {
    dataBuffers.give(this.dataIn); // a second request: the first one is unused
    this.dataIn = dataBuffers.take(length);
    return this.dataIn;
  }

  /**
   * Recycle the Data-Out buffers once the command has completed (the backstore is done with
   * them). Returns the Data-In buffer, which the caller recycles after transmission. With
   * `recycle` false (a backstore operation given up on may still use them) the buffers are only
   * dropped, never reused; the Data-Out budget is returned either way (the orphan limit of the
   * block layer bounds what such buffers can hold).
   */
  releaseBuffers(recycle = true): Buffer | undefined {
    if (recycle) dataBuffers.give(this.buffer);
    this.buffer = undefined;
    if (this.reservedDataOut > 0) this.r2t.releaseDataOut(this, this.reservedDataOut);
    this.reservedDataOut = 0;
    if (recycle) dataBuffers.give(this.immediateData);
    this.unsolicited = [];
    const dataIn = this.dataIn;
    this.dataIn = undefined;
    return dataIn;
  }

  /**
   * Where a Data-Out PDU's payload should land, if it can go straight into the task buffer
   * (validated again in onDataOut).
   */
  placement(ttt: number, bufferOffset: number, length: number): Buffer | undefined {
    if (!this.assembling || ttt === RESERVED_TAG) return undefined;
    const seq = this.outstanding.get(ttt);
    if (!seq || bufferOffset !== seq.nextOffset || bufferOffset + length > seq.offset + seq.length) return undefined;
    return this.ensureBuffer().subarray(bufferOffset, bufferOffset + length);
  }

  /** A Data-Out PDU for this task. Throws DataOutError on a protocol violation. */
  onDataOut(pdu: DataOutPdu): void {
    const seq = pdu.ttt === RESERVED_TAG ? this.unsolicitedSeq : this.outstanding.get(pdu.ttt);
    if (!seq || (pdu.ttt === RESERVED_TAG && !this.unsolicitedOpen)) {
      throw new DataOutError(`Data-Out with TTT 0x${pdu.ttt.toString(16)} that no open sequence of ITT 0x${this.tag.toString(16)} expects`);
    }
    if (pdu.dataSN !== seq.nextDataSN) {
      throw new DataOutError(`Data-Out DataSN ${pdu.dataSN}, expected ${seq.nextDataSN}`);
    }
    if (pdu.bufferOffset !== seq.nextOffset) {
      throw new DataOutError(`Data-Out BufferOffset ${pdu.bufferOffset}, expected ${seq.nextOffset}`);
    }
    const end = pdu.bufferOffset + pdu.data.length;
    if (end > seq.offset + seq.length) {
      throw new DataOutError(`Data-Out beyond its sequence (${end} > ${seq.offset + seq.length})`);
    }
    seq.nextDataSN++;
    seq.nextOffset = end;
    if (this.waitingSince > 0) this.waitingSince = Date.now(); // progress: not stalled
    const complete = end === seq.offset + seq.length;
    // The unsolicited burst may end (F) before FirstBurstLength; a solicited one may not.
    if (pdu.final !== complete && !(pdu.final && seq.ttt === RESERVED_TAG)) {
      throw new DataOutError(pdu.final ? 'F bit before the end of the sequence' : 'sequence complete without the F bit');
    }
    if (pdu.data.length > 0) {
      const placed =
        this.buffer !== undefined &&
        pdu.data.buffer === this.buffer.buffer &&
        pdu.data.byteOffset === this.buffer.byteOffset + pdu.bufferOffset;
      if (this.assembling) {
        if (!placed) this.store(pdu.bufferOffset, pdu.data);
      } else {
        this.unsolicited.push([pdu.bufferOffset, pdu.data]);
      }
    }
    if (seq.ttt === RESERVED_TAG) this.unsolicitedEnd = end;
    if (pdu.final) {
      if (seq.ttt === RESERVED_TAG) {
        this.unsolicitedOpen = false;
        this.unsolicitedSeq = undefined;
        if (this.assembling) this.nextR2TOffset = Math.min(this.unsolicitedEnd, this.wanted);
      } else {
        this.outstanding.delete(seq.ttt);
        this.r2t.releaseTransferTag(seq.ttt);
      }
      if (this.assembling) this.issueR2Ts();
    }
    this.checkComplete();
  }

  /** Copy bytes into the task buffer (only the part the SCSI layer wants). */
  private store(offset: number, bytes: Buffer): void {
    const buf = this.ensureBuffer();
    if (offset >= buf.length) return;
    const n = Math.min(bytes.length, buf.length - offset);
    bytes.copy(buf, offset, 0, n);
  }

  private issueR2Ts(): void {
    if (this.finished || this.reservedDataOut === 0) return;
    while (this.outstanding.size < this.params.maxOutstandingR2T && this.nextR2TOffset < this.wanted) {
      if (this.unsolicitedOpen) return; // first let the unsolicited burst finish
      const length = Math.min(this.params.maxBurstLength, this.wanted - this.nextR2TOffset);
      const ttt = this.r2t.allocateTransferTag(this);
      const seq: Sequence = { ttt, offset: this.nextR2TOffset, length, nextOffset: this.nextR2TOffset, nextDataSN: 0 };
      this.outstanding.set(ttt, seq);
      this.nextR2TOffset += length;
      this.waitingSince = Date.now();
      this.r2t.sendR2T(this, ttt, this.r2tSN++, seq.offset, length);
    }
  }

  private checkComplete(): void {
    if (!this.waiter || !this.assembling) return;
    const solicitedDone = this.outstanding.size === 0 && this.nextR2TOffset >= this.wanted;
    if (solicitedDone && !this.unsolicitedOpen) {
      const { resolve } = this.waiter;
      this.cleanupWait();
      this.waitingSince = 0;
      resolve(this.ensureBuffer());
    }
  }

  /**
   * A Data-Out sequence went wrong: stop collecting (later Data-Out for this task is
   * discarded) and make the command end with ABORTED COMMAND / DATA PHASE ERROR. At
   * ErrorRecoveryLevel 0 this is the command-level outcome; the session carries on.
   */
  failDataOut(error: DataOutError): void {
    this.transportFailure = DATA_PHASE_ERROR_SENSE;
    this.stopCollecting(error);
  }

  /** Fail an outstanding receiveDataOut (abort, connection loss). */
  fail(error: Error): void {
    this.finished = true;
    this.stopCollecting(error);
  }

  private stopCollecting(error: Error): void {
    this.collecting = false;
    for (const ttt of this.outstanding.keys()) this.r2t.releaseTransferTag(ttt);
    this.outstanding.clear();
    this.unsolicited = [];
    if (this.waiter) {
      const { reject } = this.waiter;
      this.cleanupWait();
      reject(error);
    }
  }

  private cleanupWait(): void {
    this.waiter = undefined;
    if (this.signal && this.abortListener) this.signal.removeEventListener('abort', this.abortListener);
    this.abortListener = undefined;
  }

  /** Solicited data we are waiting for (for dataout_timeout). */
  get awaitingDataOut(): boolean {
    return this.waiter !== undefined && this.outstanding.size > 0;
  }

  /** Bytes receiveDataOut() asked for (-1 before it was called). */
  get dataOutWanted(): number {
    return this.wanted;
  }

  /** Number of R2Ts sent (ExpDataSN of a write's SCSI Response). */
  get r2tCount(): number {
    return this.r2tSN;
  }
}

/** ABORTED COMMAND / DATA PHASE ERROR, fixed format. */
const DATA_PHASE_ERROR_SENSE = encodeSense({ key: SenseKey.AbortedCommand, asc: Asc.DataPhaseError }, false);
