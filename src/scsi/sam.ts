/**
 * SAM-5 service interface between a SCSI transport (iSCSI here) and the SCSI target device.
 * The transport knows nothing of CDBs; the target device knows nothing of PDUs.
 */

/** The I_T nexus: one SCSI initiator port talking to one SCSI target port (SAM-5 §4.7). */
export interface ITNexus {
  /** Unique and stable for the lifetime of the nexus: initiatorPortName + '|' + targetPortName. */
  readonly key: string;
  /** iSCSI initiator node name (iqn/eui/naa). */
  readonly initiatorName: string;
  /** SCSI initiator port name: "<InitiatorName>,i,0x<ISID as 12 hex digits>" (RFC 7143 §4.2.7.1). */
  readonly initiatorPortName: string;
  /** ISID as 12 lower-case hex digits. */
  readonly isid: string;
  /** iSCSI target node name. */
  readonly targetName: string;
  /** SCSI target port name: "<TargetName>,t,0x<TPGT as 4 hex digits>". */
  readonly targetPortName: string;
  /** RELATIVE TARGET PORT IDENTIFIER (VPD 0x83), 1-based, unique within the target. */
  readonly relativeTargetPortId: number;
  /** TARGET PORT GROUP (ALUA), also used as the TPGT. */
  readonly targetPortGroup: number;
}

/** SAM-5 task attribute, encoded as iSCSI's ATTR field (RFC 7143 §11.3.1). */
export const enum TaskAttribute {
  Untagged = 0,
  Simple = 1,
  Ordered = 2,
  HeadOfQueue = 3,
  ACA = 4,
}

/** SAM-5 status codes. */
export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  AcaActive = 0x30,
  TaskAborted = 0x40,
}

/** One SCSI command as the transport delivers it (SAM-5 "Execute Command"). */
export interface ScsiCommand {
  readonly nexus: ITNexus;
  /** Flat LUN (0..16383) decoded from the 8-byte LUN field. */
  readonly lun: number;
  /** The CDB, including any additional CDB bytes from an AHS. */
  readonly cdb: Buffer;
  /** Initiator task tag (unique within the nexus while the task exists). */
  readonly tag: number;
  readonly attribute: TaskAttribute;
  /** Expected Data-Out transfer length in bytes (0 when the command carries no data out). */
  readonly dataOutLength: number;
  /** Expected Data-In transfer length in bytes (0 when the command returns no data in). */
  readonly dataInLength: number;
  /**
   * Fetch the first `length` bytes (length <= dataOutLength) of the command's Data-Out buffer.
   * The transport solicits it (R2T) as needed. Call at most once, only after the CDB has been
   * validated. Rejects if the task is aborted (through `signal`) or the connection fails.
   * The Buffer is the transport's and is recycled when the command completes: copy whatever
   * must outlive the command.
   */
  receiveDataOut(length: number, signal: AbortSignal): Promise<Buffer>;
  /**
   * Optional: a Buffer of `length` bytes for this command's Data-In, owned by the transport,
   * which recycles it once transmitted. Read data should land there (no copy, no garbage).
   */
  dataInBuffer?(length: number): Buffer;
}

export interface ScsiResult {
  readonly status: ScsiStatus;
  /** Sense data (fixed or descriptor format) when status is CHECK CONDITION. */
  readonly sense?: Buffer;
  /** Data-In payload. The transport sends at most dataInLength of it and reports residuals. */
  readonly data?: Buffer;
  /**
   * For commands with Data-Out: the byte count the CDB described (for residual reporting:
   * underflow when smaller than dataOutLength, overflow when larger).
   */
  readonly dataOutTransferLength?: number;
  /**
   * Set when the task was aborted. `reportStatus` true means the initiator must still get a
   * TASK ABORTED status (TAS=1, task of another nexus); false means send nothing.
   */
  readonly aborted?: { readonly reportStatus: boolean };
  /**
   * The backstore may still be using the command's buffers (an operation given up on after
   * cmd_time_out or an abort is still running inside it): the transport must not recycle
   * the Data-Out or Data-In buffers of this command; they are left to the garbage collector.
   */
  readonly retainBuffers?: boolean;
}

/**
 * A task was aborted (ABORT TASK and the other TMFs, nexus loss): the one error for it in the
 * project. The SCSI layer throws it to unwind a command handler; the transport rejects
 * receiveDataOut with it. `name` is 'AbortError', as for an aborted fetch or stream.
 */
export class TaskAbortedError extends Error {
  constructor(message = 'task aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

/** SAM-5 task management functions, numbered as iSCSI's Function field (RFC 7143 §11.5.1). */
export const enum TaskManagementFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
  TaskReassign = 8,
  QueryTask = 9,
  QueryTaskSet = 10,
  ITNexusReset = 11,
  QueryAsyncEvent = 12,
}

/** iSCSI TMF response codes (RFC 7143 §11.6.1); SAM-5 service responses map onto them. */
export const enum TaskManagementResponse {
  FunctionComplete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  TaskAllegianceReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  /** RFC 7143: QUERY TASK / QUERY TASK SET / QUERY ASYNC EVENT found what was asked for. */
  FunctionSucceeded = 7,
  Rejected = 255,
}

export interface TaskManagementRequest {
  readonly nexus: ITNexus;
  readonly fn: TaskManagementFunction;
  readonly lun: number;
  /** Referenced task tag (ABORT TASK, QUERY TASK). */
  readonly referencedTag?: number;
  /**
   * Tags of the issuing nexus that the transport has already received and which are still
   * subject to this TMF (e.g. all tasks older than an ABORT TASK SET). The target device
   * aborts those it holds; the transport handles the ones it has not yet delivered.
   */
  readonly scope?: (tag: number) => boolean;
}

/**
 * A SCSI target device: the set of logical units an iSCSI target exposes, plus the task
 * manager. One instance per iSCSI target node; shared by all its sessions.
 */
export interface ScsiTargetDevice {
  /** Execute a command. Never rejects: every failure becomes a status + sense. */
  execute(command: ScsiCommand): Promise<ScsiResult>;

  /** Perform a task management function; resolves once every affected task has ended. */
  taskManagement(request: TaskManagementRequest): Promise<TaskManagementResponse>;

  /** A new I_T nexus exists (session logged in). */
  nexusCreated(nexus: ITNexus): void;

  /** The I_T nexus is gone (session closed or reinstated): abort its tasks, keep PR state. */
  nexusLost(nexus: ITNexus): Promise<void>;
}
