/**
 * Incremental PDU framing on a TCP byte stream (RFC 7143 §11.1): BHS, AHS, header digest, data
 * segment, padding, data digest. Works in one pass over arbitrarily split chunks.
 *
 * Copies are avoided where possible: a BHS or data segment lying inside one chunk is handed
 * out as a subarray of it; a data segment spanning chunks is assembled once, straight into a
 * Buffer the session may provide (`placeData`, e.g. the command's write buffer).
 */
import { BHS_LENGTH, DIGEST_LENGTH, RejectReason } from './opcodes';
import { PduError } from './errors';
import { dataDigest, headerDigest, padLength } from './digest';

export interface RawPdu {
  /** The 48-byte basic header segment. */
  readonly bhs: Buffer;
  /** Additional header segments (without the digest), or undefined. */
  readonly ahs: Buffer | undefined;
  /** The data segment without padding (empty when none). */
  readonly data: Buffer;
  /** False when data digests are on and the data digest did not match. */
  readonly dataDigestOk: boolean;
}

export interface PduReaderSettings {
  /** Largest data segment accepted (our MaxRecvDataSegmentLength; 8192 during login). */
  maxDataSegmentLength: number;
  headerDigest: boolean;
  dataDigest: boolean;
  /**
   * Optional: a Buffer of exactly `length` bytes into which the data segment of this PDU
   * should be assembled (e.g. a slice of a command's Data-Out buffer). Called after the
   * header has been validated, before any data byte is consumed.
   */
  placeData?: (bhs: Buffer, length: number) => Buffer | undefined;
  /**
   * Optional: judge a BHS as soon as its 48 bytes are in, before AHS and data. A returned
   * error stops the reader (fatal), e.g. anything but a Login Request during login.
   */
  checkHeader?: (bhs: Buffer) => PduError | undefined;
  /** Optional: where a data segment spanning several chunks is assembled (a buffer pool). */
  allocate?: (length: number) => Buffer;
}

const enum State {
  Header,
  Data,
  /** A data segment we refuse to buffer: skip its bytes, then report. */
  Skip,
}

/** Bytes a BHS announces: TotalAHSLength (words) and DataSegmentLength. */
export function announcedLengths(bhs: Buffer): { ahsLength: number; dataSegmentLength: number } {
  return { ahsLength: bhs[4] * 4, dataSegmentLength: bhs.readUIntBE(5, 3) };
}

export class PduReader {
  private chunks: Buffer[] = [];
  /** Offset into chunks[0]. */
  private head = 0;
  private available = 0;
  private state = State.Header;
  // Current PDU
  private bhs: Buffer = Buffer.alloc(0);
  private ahs: Buffer | undefined;
  private dataLength = 0;
  private skipRemaining = 0;
  private checkedBhs = false;

  constructor(
    readonly settings: PduReaderSettings,
    private readonly onPdu: (pdu: RawPdu) => void,
    private readonly onError: (error: PduError) => void,
  ) {}

  /** Feed bytes. Calls onPdu for each complete PDU; onError for each bad one (fatal ones stop the reader). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.length;
    while (this.step()) {
      /* keep going while progress is made */
    }
  }

  private stopped = false;

  /** Stop parsing (after a fatal error or when the connection closes). */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.available = 0;
    this.head = 0;
  }

  private step(): boolean {
    if (this.stopped) return false;
    switch (this.state) {
      case State.Header:
        return this.readHeader();
      case State.Data:
        return this.readData();
      case State.Skip:
        return this.skip();
    }
  }

  private readHeader(): boolean {
    if (this.available < BHS_LENGTH) return false;
    if (!this.checkedBhs) {
      // Judge the BHS before waiting for AHS and data: garbage must not make us wait.
      const error = this.settings.checkHeader?.(this.peek(BHS_LENGTH));
      if (error) {
        this.fail(error);
        return false;
      }
      this.checkedBhs = true;
    }
    const ahsLength = this.peekByte(4) * 4;
    const headerLength = BHS_LENGTH + ahsLength + (this.settings.headerDigest ? DIGEST_LENGTH : 0);
    if (this.available < headerLength) return false;
    const header = this.take(headerLength);
    this.checkedBhs = false;
    const bhs = header.subarray(0, BHS_LENGTH);
    if (this.settings.headerDigest) {
      const expected = header.readUInt32LE(BHS_LENGTH + ahsLength);
      if (headerDigest(header.subarray(0, BHS_LENGTH + ahsLength)) !== expected) {
        // Framing can no longer be trusted: lengths may be corrupt.
        this.fail(new PduError('header digest error', RejectReason.DataDigestError, true, Buffer.from(bhs)));
        return false;
      }
    }
    this.bhs = bhs;
    this.ahs = ahsLength > 0 ? header.subarray(BHS_LENGTH, BHS_LENGTH + ahsLength) : undefined;
    this.dataLength = bhs.readUIntBE(5, 3);
    if (this.dataLength > this.settings.maxDataSegmentLength) {
      const error = new PduError(
        `data segment of ${this.dataLength} bytes exceeds MaxRecvDataSegmentLength ${this.settings.maxDataSegmentLength}`,
        RejectReason.ProtocolError,
        false,
        Buffer.from(bhs),
      );
      // Report at once (the connection may drop now rather than wait for the bytes), then
      // skip the segment so framing stays intact if the connection carries on.
      this.skipRemaining = this.segmentWireLength();
      this.state = State.Skip;
      this.onError(error);
      return true;
    }
    this.state = State.Data;
    return true;
  }

  /** Data segment + padding + optional data digest, as it appears on the wire. */
  private segmentWireLength(): number {
    if (this.dataLength === 0) return 0;
    return this.dataLength + padLength(this.dataLength) + (this.settings.dataDigest ? DIGEST_LENGTH : 0);
  }

  private readData(): boolean {
    const wire = this.segmentWireLength();
    if (wire === 0) {
      this.deliver(Buffer.alloc(0), true);
      return true;
    }
    if (this.available < wire) return false;
    const length = this.dataLength;
    const target = this.settings.placeData?.(this.bhs, length);
    let data: Buffer;
    if (target && target.length === length) {
      this.copyOut(target, length);
      data = target;
    } else if (this.chunks[0].length - this.head >= length) {
      data = this.take(length); // a subarray of the chunk: no copy
    } else {
      data = this.settings.allocate ? this.settings.allocate(length) : Buffer.allocUnsafe(length);
      this.copyOut(data, length);
    }
    const pad = padLength(length);
    if (pad) this.discard(pad);
    let digestOk = true;
    if (this.settings.dataDigest) {
      const expected = this.take(DIGEST_LENGTH).readUInt32LE(0);
      digestOk = dataDigest(data) === expected;
    }
    this.deliver(data, digestOk);
    return true;
  }

  private skip(): boolean {
    const n = Math.min(this.skipRemaining, this.available);
    this.discard(n);
    this.skipRemaining -= n;
    if (this.skipRemaining > 0) return false;
    this.state = State.Header;
    return true;
  }

  private deliver(data: Buffer, dataDigestOk: boolean): void {
    const pdu: RawPdu = { bhs: this.bhs, ahs: this.ahs, data, dataDigestOk };
    this.state = State.Header;
    this.onPdu(pdu);
  }

  private fail(error: PduError): void {
    this.stop();
    this.onError(error);
  }

  // ---- byte queue -------------------------------------------------------------------------

  private peekByte(index: number): number {
    let i = this.head + index;
    for (const c of this.chunks) {
      if (i < c.length) return c[i];
      i -= c.length;
    }
    throw new RangeError('peek beyond available data');
  }

  /** The next n bytes without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let offset = this.head;
    for (const c of this.chunks) {
      const m = Math.min(c.length - offset, n - written);
      c.copy(out, written, offset, offset + m);
      written += m;
      offset = 0;
      if (written === n) break;
    }
    return out;
  }

  /** Remove n bytes: a subarray when they lie in one chunk, else one assembled copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    this.copyOut(out, n);
    return out;
  }

  /** Copy n bytes into target and remove them. */
  private copyOut(target: Buffer, n: number): void {
    let written = 0;
    while (written < n) {
      const c = this.chunks[0];
      const m = Math.min(c.length - this.head, n - written);
      c.copy(target, written, this.head, this.head + m);
      written += m;
      this.advance(m);
    }
  }

  private discard(n: number): void {
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      const m = Math.min(c.length - this.head, left);
      left -= m;
      this.advance(m);
    }
  }

  private advance(n: number): void {
    this.head += n;
    this.available -= n;
    if (this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
