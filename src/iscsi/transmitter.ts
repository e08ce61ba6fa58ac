/**
 * The transmit side of one connection: PDUs onto the socket (digests, padding, one writev per
 * event-loop turn) and transmit back-pressure. It knows how much output is queued (socket
 * buffer plus Data-In being read from the backstore for this connection), whether the peer still
 * takes data, and tells its owner when the queue has drained so held work can go on.
 */
import type { Socket } from 'node:net';
import { dataDigest, digestBytes, headerDigest, padLength } from '../pdu/digest';
import { BHS_LENGTH } from '../pdu/opcodes';
import { DataPathLimits } from './limits';

const ZERO_PAD = Buffer.alloc(4);

export class Transmitter {
  headerDigests = false;
  dataDigests = false;
  private corked = false;
  private closed = false;
  /** Data-In bytes admitted (being read from the backstore) and not yet handed to the socket. */
  private reserved = 0;
  /** Write callbacks completed: data the kernel has taken (progress of a slow peer). */
  private completions = 0;
  private completionsSeen = 0;
  private queuedSeen = 0;
  private lastProgress = Date.now();
  private inputPaused = false;
  private wasCongested = false;

  constructor(
    private readonly socket: Socket,
    private readonly limits: DataPathLimits,
    /** Queue fell below the bound after having been over it (or a reservation was returned). */
    private readonly onDrain: (reopened: boolean) => void,
  ) {
    socket.on('drain', () => this.drained());
  }

  /**
   * Queue a PDU. Everything sent during one turn of the event loop leaves in one writev: the
   * socket is corked on the first send and uncorked when the turn's callbacks are done.
   * `onSent` runs once the socket has taken the PDU (its buffers may be reused).
   */
  send(header: Buffer, data?: Buffer, onSent?: () => void): void {
    if (this.closed) {
      onSent?.();
      return;
    }
    const s = this.socket;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      setImmediate(this.uncork);
    }
    let h = header;
    if (this.headerDigests) {
      h = Buffer.allocUnsafe(BHS_LENGTH + 4);
      header.copy(h, 0);
      h.writeUInt32LE(headerDigest(header), BHS_LENGTH);
    }
    const done = () => {
      this.completions++;
      onSent?.();
    };
    if (!data || data.length === 0) {
      s.write(h, done);
    } else {
      s.write(h);
      const pad = padLength(data.length);
      if (!pad && !this.dataDigests) {
        s.write(data, done);
      } else {
        s.write(data);
        if (pad) s.write(ZERO_PAD.subarray(0, pad), this.dataDigests ? undefined : done);
        if (this.dataDigests) s.write(digestBytes(dataDigest(data)), done);
      }
    }
    if (!this.inputPaused && s.writableLength > this.limits.inputPauseBytes) {
      // A peer that sends and never reads: stop taking its input until it reads again.
      this.inputPaused = true;
      s.pause();
    }
  }

  private readonly uncork = () => {
    this.corked = false;
    if (!this.closed) this.socket.uncork();
  };

  /** Output queued for this connection: socket buffer plus admitted Data-In. */
  get backlog(): number {
    return this.reserved + this.socket.writableLength;
  }

  /** Over the bound: hold new READs and keep the CmdSN window from opening. */
  get congested(): boolean {
    const c = this.backlog > this.limits.transmitQueueBytes;
    if (c) this.wasCongested = true;
    return c;
  }

  /**
   * Admit a command that will produce `bytes` of Data-In. Fails while the queue is over the
   * bound; a command larger than the bound alone runs when nothing else is queued.
   */
  tryReserve(bytes: number): boolean {
    if (this.closed) return false;
    const backlog = this.backlog;
    if (backlog > 0 && backlog + bytes > this.limits.transmitQueueBytes) {
      this.wasCongested = true;
      return false;
    }
    this.reserved += bytes;
    return true;
  }

  /** The reserved Data-In was handed to the socket (or will never be sent). */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.reserved = Math.max(0, this.reserved - bytes);
    if (this.wasCongested && !this.checkScheduled) {
      // After this turn's writes: the socket's 'drain' only fires if a write filled its buffer.
      this.checkScheduled = true;
      setImmediate(() => {
        this.checkScheduled = false;
        if (this.wasCongested && this.backlog <= this.limits.transmitQueueBytes) this.drained();
      });
    }
  }

  private checkScheduled = false;

  private drained(): void {
    if (this.closed) return;
    this.lastProgress = Date.now();
    if (this.inputPaused && this.socket.writableLength <= this.limits.inputPauseBytes / 2) {
      this.inputPaused = false;
      this.socket.resume();
    }
    if (this.backlog > this.limits.transmitQueueBytes) return;
    const reopened = this.wasCongested;
    this.wasCongested = false;
    this.onDrain(reopened);
  }

  /**
   * Milliseconds the peer has taken nothing although output is waiting (0 when nothing waits
   * or it made progress since the last call). Called from the connection's timer.
   */
  stalledFor(now: number): number {
    const queued = this.socket.writableLength;
    if (queued === 0 || this.completions !== this.completionsSeen || queued < this.queuedSeen) {
      this.completionsSeen = this.completions;
      this.queuedSeen = queued;
      this.lastProgress = now;
      return 0;
    }
    this.queuedSeen = queued;
    return now - this.lastProgress;
  }

  close(): void {
    this.closed = true;
    this.reserved = 0;
  }
}
