/**
 * Group commit of fdatasync.
 *
 * Every caller of `sync()` is answered by an fdatasync that *started after* the call (so it
 * covers every write that completed before the call), but concurrent callers share one: while
 * one fdatasync runs, every new caller joins the single next one, which starts as soon as the
 * running one ends. At queue depth 32 of write-through writes that is one or two fdatasyncs in
 * flight instead of 32 in a row.
 *
 * A failed fdatasync fails every caller that was waiting when it ended: those covered by it, and
 * those queued behind it, whose writes may have been in the pages the writeback error dropped (a
 * later fdatasync would succeed without them). Later callers start afresh, as the kernel's errseq
 * reports an error once per open file; telling every I_T nexus of the loss once is the
 * GuardedDevice's part (block/guarded-device.ts).
 */
import { BlockDeviceError } from './block-device';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** A flush that a failed fdatasync answered (the SCSI layer maps it to sense). */
export class FlushFailedError extends BlockDeviceError {
  constructor(
    readonly device: string,
    readonly flushError: Error,
    readonly remembered: boolean,
  ) {
    super(
      remembered
        ? `a flush of ${device} failed while this one waited (${flushError.message}); data acknowledged before it may be lost`
        : `flush of ${device} failed: ${flushError.message}`,
      'write-back',
    );
    this.name = 'FlushFailedError';
  }
}

export class SyncGroup {
  /** Callers covered by the fdatasync now running. */
  private running: Waiter[] | undefined;
  /** Callers that arrived while it ran: they share the next one. */
  private next: Waiter[] = [];
  /** fdatasync calls started (diagnostics and tests). */
  started = 0;

  constructor(
    private readonly device: string,
    private readonly fdatasync: () => Promise<void>,
  ) {}

  /** Resolves after an fdatasync that started after this call succeeded. */
  sync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.running) this.next.push({ resolve, reject });
      else this.start([{ resolve, reject }]);
    });
  }

  private start(waiters: Waiter[]): void {
    this.running = waiters;
    this.started++;
    let call: Promise<void>;
    try {
      call = this.fdatasync();
    } catch (e) {
      call = Promise.reject(e as Error);
    }
    call.then(
      () => this.settle(undefined),
      (e: unknown) => this.settle(e instanceof Error ? e : new Error(String(e))),
    );
  }

  private settle(err: Error | undefined): void {
    const done = this.running ?? [];
    this.running = undefined;
    for (const w of done) {
      if (err) w.reject(new FlushFailedError(this.device, err, false));
      else w.resolve();
    }
    const waiting = this.next;
    this.next = [];
    if (waiting.length === 0) return;
    if (err) {
      for (const w of waiting) w.reject(new FlushFailedError(this.device, err, true));
      return;
    }
    this.start(waiting);
  }
}
