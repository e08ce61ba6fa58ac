/**
 * Runs async jobs one after another in submission order (a failed job does not stop the next),
 * and tells whether any is still pending. The LU state stores commit their changes through one.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  run<T>(job: () => Promise<T>): Promise<T> {
    this.pending++;
    const p = this.tail.then(job, job).finally(() => this.pending--);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** Resolves when every job submitted so far has ended; undefined when none is pending. */
  settled(): Promise<void> | undefined {
    return this.pending > 0 ? this.tail.then(() => undefined) : undefined;
  }

  /** Resolves when every job submitted so far has ended. */
  async drain(): Promise<void> {
    await this.tail;
  }
}
