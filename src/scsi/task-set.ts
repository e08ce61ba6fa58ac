/**
 * The task set of a logical unit (SAM-5 §8.5, TST=000b: one task set shared by all I_T
 * nexuses) and the task attribute rules that decide when a task is enabled:
 *   HEAD OF QUEUE: enabled at once.
 *   SIMPLE:        enabled once every older HEAD OF QUEUE and ORDERED task has completed.
 *   ORDERED:       enabled once every older task has completed.
 * SIMPLE tasks with nothing special in the set are admitted and finished in O(1).
 */
import { getEventListeners } from 'node:events';
import { ScsiCommand, TaskAbortedError, TaskAttribute } from './sam';

/**
 * Materializing an AbortSignal costs microseconds in Node 20, which is most of a 4 KiB WRITE.
 * A controller whose signal was never aborted and has no listener left when its task ends is
 * as good as new, so it is kept for the next task (the transport removes its listener once
 * the Data-Out has arrived; a signal that still has one is never reused).
 */
const signalPool: AbortController[] = [];
const SIGNAL_POOL_SIZE = 256;

function takeController(): AbortController {
  return signalPool.pop() ?? new AbortController();
}

function recycleController(c: AbortController): void {
  const s = c.signal;
  if (signalPool.length < SIGNAL_POOL_SIZE && !s.aborted && s.onabort === null && getEventListeners(s, 'abort').length === 0) {
    signalPool.push(c);
  }
}

/** What the task is doing, for TMFs and QUERY TASK. */
export const enum TaskState {
  Dormant = 0,
  Enabled = 1,
  Ended = 2,
}

export interface AbortInfo {
  /** TASK ABORTED status is owed to the initiator (TAS=1, task of another nexus). */
  readonly reportStatus: boolean;
}

export class Task {
  state = TaskState.Dormant;
  /** Set once a TMF (or nexus loss) aborts the task. */
  aborted?: AbortInfo;
  /** For data-out commands: bytes the CDB describes (residual accounting). */
  dataOutTransferLength?: number;
  /** A backstore operation of this task was given up on and may still use its buffers. */
  buffersHeld = false;
  private controller?: AbortController;
  private wake?: () => void;
  private endWaiters?: (() => void)[];

  constructor(
    readonly command: ScsiCommand,
    readonly seq: number,
    /** SIMPLE, ORDERED or HEAD OF QUEUE (UNTAGGED is treated as SIMPLE). */
    readonly attribute: TaskAttribute,
  ) {}

  /** The signal handed to receiveDataOut, created on first use. */
  get signal(): AbortSignal {
    this.controller ??= takeController();
    return this.controller.signal;
  }

  /** Mark aborted; interrupts a pending Data-Out and wakes a dormant task. */
  abort(info: AbortInfo): void {
    if (this.state === TaskState.Ended) return;
    if (!this.aborted) this.aborted = info;
    else if (info.reportStatus && !this.aborted.reportStatus) this.aborted = info;
    this.controller?.abort();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Resolves when the task has ended (TMFs wait for this). */
  whenEnded(): Promise<void> {
    if (this.state === TaskState.Ended) return Promise.resolve();
    return new Promise((resolve) => (this.endWaiters ??= []).push(resolve));
  }

  /** @internal used by TaskSet */
  waitEnabled(): Promise<void> {
    if (this.state !== TaskState.Dormant || this.aborted) return Promise.resolve();
    return new Promise((resolve) => (this.wake = resolve));
  }

  /** @internal used by TaskSet */
  enable(): void {
    this.state = TaskState.Enabled;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** @internal used by TaskSet */
  end(): void {
    this.state = TaskState.Ended;
    if (this.controller) {
      recycleController(this.controller);
      this.controller = undefined;
    }
    const waiters = this.endWaiters;
    this.endWaiters = undefined;
    if (waiters) for (const w of waiters) w();
  }
}

/** Unwind a command handler whose task a TMF (or nexus loss) has aborted. */
export function stopIfAborted(task: Task): void {
  if (task.aborted) throw new TaskAbortedError();
}

export class TaskSet {
  /** Every task in the set, in arrival order (Set iteration order). */
  readonly tasks = new Set<Task>();
  private dormant: Task[] = [];
  private enabledSimple = 0;
  private enabledOrdered = 0;
  private readonly enabledHoq = new Set<Task>();

  get size(): number {
    return this.tasks.size;
  }

  /** Add a task; returns true when it is enabled at once, else await task.waitEnabled(). */
  admit(task: Task): boolean {
    this.tasks.add(task);
    switch (task.attribute) {
      case TaskAttribute.HeadOfQueue:
        this.enabledHoq.add(task);
        task.enable();
        return true;
      case TaskAttribute.Ordered:
        if (this.dormant.length === 0 && this.enabledSimple + this.enabledOrdered + this.enabledHoq.size === 0) {
          this.enabledOrdered++;
          task.enable();
          return true;
        }
        break;
      default:
        if (this.dormant.length === 0 && this.enabledOrdered === 0 && this.enabledHoq.size === 0) {
          this.enabledSimple++;
          task.enable();
          return true;
        }
    }
    this.dormant.push(task);
    return false;
  }

  /** Remove a task that has finished (or was aborted while dormant) and enable successors. */
  remove(task: Task): void {
    if (!this.tasks.delete(task)) return;
    if (task.state === TaskState.Enabled) {
      if (task.attribute === TaskAttribute.HeadOfQueue) this.enabledHoq.delete(task);
      else if (task.attribute === TaskAttribute.Ordered) this.enabledOrdered--;
      else this.enabledSimple--;
    } else {
      const i = this.dormant.indexOf(task);
      if (i >= 0) this.dormant.splice(i, 1);
    }
    task.end();
    if (this.dormant.length > 0) this.drain();
  }

  private olderHoqEnabled(seq: number): boolean {
    for (const h of this.enabledHoq) if (h.seq < seq) return true;
    return false;
  }

  private drain(): void {
    while (this.dormant.length > 0) {
      const t = this.dormant[0];
      if (t.attribute === TaskAttribute.Ordered) {
        if (this.enabledSimple + this.enabledOrdered > 0 || this.olderHoqEnabled(t.seq)) return;
        this.dormant.shift();
        this.enabledOrdered++;
        t.enable();
        return; // everything behind an ORDERED task waits for it
      }
      if (this.enabledOrdered > 0 || this.olderHoqEnabled(t.seq)) return;
      this.dormant.shift();
      this.enabledSimple++;
      t.enable();
    }
  }
}
