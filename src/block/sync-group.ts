/**
 * Group commit of fdatasync, with the failure remembered.
 *
 * Every caller of `sync()` is answered by an fdatasync that *started after* the call (so it
 * covers every write that completed before the call), but concurrent callers share one: while
 * one fdatasync runs, every new caller joins the single next one, which starts as soon as the
 * running one ends. At queue depth 32 of write-through writes that is one or two fdatasyncs in
 * flight instead of 32 in a row.
 *
 * A failed fdatasync is remembered (like the kernel's errseq per open file, but sticky): the
 * writeback error may have dropped dirty pages of writes that were already acknowledged, and a
 * later fdatasync would succeed without them. So from then on every sync() of this open file
 * fails with the first error — until the backstore is closed and opened again (the
 * administrator's decision that the file is usable).
 */
import { BlockDeviceError } from './block-device';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** The error every flush after a failed one gets (the SCSI layer maps it to sense). */
export class FlushFailedError extends BlockDeviceError {
  constructor(
    readonly device: string,
    readonly flushError: Error,
    readonly remembered: boolean,
  ) {
    super(
      remembered
        ? `an earlier flush of ${device} failed (${flushError.message}); data acknowledged before it may be lost, so every flush fails until the device is reopened`
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
  private failure: Error | undefined;
  /** fdatasync calls started (diagnostics and tests). */
  started = 0;

  constructor(
    private readonly device: string,
    private readonly fdatasync: () => Promise<void>,
  ) {}

  /** The remembered failure, if a flush failed since the device was opened. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Resolves after an fdatasync that started after this call succeeded. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(new FlushFailedError(this.device, this.failure, true));
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
    if (err && !this.failure) this.failure = err;
    for (const w of done) {
      if (err) w.reject(new FlushFailedError(this.device, err, false));
      else w.resolve();
    }
    const waiting = this.next;
    this.next = [];
    if (waiting.length === 0) return;
    if (this.failure) {
      for (const w of waiting) w.reject(new FlushFailedError(this.device, this.failure, true));
      return;
    }
    this.start(waiting);
  }
}
