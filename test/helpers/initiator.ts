/**
 * A deliberately small, independent iSCSI initiator for tests: it frames PDUs itself (not with
 * the product's codec) so it can send exactly the bytes a test wants — including malformed
 * ones — and observe exactly what comes back.
 */
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';

export interface Pdu {
  readonly bhs: Buffer;
  readonly data: Buffer;
  readonly opcode: number;
}

export interface LoginOptions {
  readonly initiatorName?: string;
  readonly targetName?: string;
  readonly sessionType?: 'Normal' | 'Discovery';
  readonly isid?: Buffer;
  /** Extra operational keys (e.g. HeaderDigest=CRC32C). */
  readonly keys?: Array<[string, string]>;
  /** Authenticate with CHAP instead of AuthMethod=None. */
  readonly chap?: ChapLogin;
}

export interface ChapLogin {
  readonly username: string;
  readonly secret: string;
  /** CHAP_A list as sent, e.g. "5" or "7,5". Default "5". */
  readonly algorithms?: string;
  /** Mutual CHAP: the name and secret the target must prove. */
  readonly mutual?: { readonly username: string; readonly secret: string };
}

/** CHAP_A -> node digest name (RFC 1994 MD5; SHA-1/SHA-256/SHA3-256 as Linux targets number them). */
export const CHAP_DIGESTS: Record<string, string> = { '5': 'md5', '6': 'sha1', '7': 'sha256', '8': 'sha3-256' };

/** RFC 1994: H(id || secret || challenge). */
export function chapDigest(algorithm: string, id: number, secret: string, challenge: Buffer): Buffer {
  return createHash(CHAP_DIGESTS[algorithm]).update(Buffer.from([id])).update(secret).update(challenge).digest();
}

/** A failed login: the status class and detail of the Login Response (or undefined if none came). */
export class LoginFailed extends Error {
  constructor(readonly stage: string, readonly status: number | undefined) {
    super(`login failed at ${stage}: status ${status === undefined ? 'none' : `0x${status.toString(16).padStart(4, '0')}`}`);
  }
}

function loginStatus(r: Pdu | undefined): number | undefined {
  return r ? r.bhs.readUInt16BE(36) : undefined;
}

export interface ScsiOutcome {
  readonly status: number;
  readonly sense: Buffer | undefined;
  readonly data: Buffer;
  readonly overflow: boolean;
  readonly underflow: boolean;
  readonly residual: number;
}

function pad4(n: number): number {
  return (4 - (n & 3)) & 3;
}

function le32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function textData(pairs: Array<[string, string]>): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''));
}

export function parsePairs(data: Buffer): Array<[string, string]> {
  return data
    .toString()
    .split('\0')
    .filter((s) => s.length > 0)
    .map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)] as [string, string]);
}

/** Target PDUs carrying MaxCmdSN at byte 32: NOP-In, SCSI Response, TMF Response, Login/Text/Logout Response, Data-In, R2T, Async, Reject. */
const MAX_CMDSN_OPCODES = new Set([0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f]);

export class TestInitiator {
  private buf = Buffer.alloc(0);
  private readonly queue: Pdu[] = [];
  private waiters: Array<(p: Pdu | undefined) => void> = [];
  closed = false;
  headerDigest = false;
  dataDigest = false;
  cmdSN = 1;
  expStatSN = 0;
  private itt = 1;
  maxRecv = 8192;
  /** ITT of the last SCSI command sent. */
  lastItt = 0;
  /** Highest MaxCmdSN the target has announced (any PDU that carries it). */
  maxCmdSN: number | undefined;
  /** R2Ts seen (offset, length), for tests of solicitation. */
  r2ts: Array<{ offset: number; length: number }> = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => this.onData(c));
    const end = () => {
      this.closed = true;
      for (const w of this.waiters) w(undefined);
      this.waiters = [];
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  /** `localAddress` picks the source address (e.g. 127.0.0.5, to act as another host). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<TestInitiator> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) }, () => resolve(new TestInitiator(s)));
      s.once('error', reject);
    });
  }

  nextItt(): number {
    return this.itt++;
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const hd = this.headerDigest ? 4 : 0;
      if (this.buf.length < 48) return;
      const ahs = this.buf[4] * 4;
      const dsl = this.buf.readUIntBE(5, 3);
      const dd = this.dataDigest && dsl > 0 ? 4 : 0;
      const total = 48 + ahs + hd + dsl + pad4(dsl) + dd;
      if (this.buf.length < total) return;
      const bhs = Buffer.from(this.buf.subarray(0, 48));
      const data = Buffer.from(this.buf.subarray(48 + ahs + hd, 48 + ahs + hd + dsl));
      this.buf = this.buf.subarray(total);
      const pdu = { bhs, data, opcode: bhs[0] & 0x3f };
      if (MAX_CMDSN_OPCODES.has(pdu.opcode)) {
        const m = bhs.readUInt32BE(32);
        if (this.maxCmdSN === undefined || ((m - this.maxCmdSN) | 0) > 0) this.maxCmdSN = m;
      }
      const w = this.waiters.shift();
      if (w) w(pdu);
      else this.queue.push(pdu);
    }
  }

  /** Next PDU from the target, or undefined if the connection closed or `ms` passed. */
  receive(ms = 5000): Promise<Pdu | undefined> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(undefined);
      }, ms);
      const done = (p: Pdu | undefined) => {
        clearTimeout(timer);
        resolve(p);
      };
      this.waiters.push(done);
    });
  }

  /** Wait for the target to close the connection (true) or `ms` to pass (false). */
  async waitClosed(ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      const p = await this.receive(Math.max(1, deadline - Date.now()));
      if (!p && !this.closed) return false;
    }
    return this.closed;
  }

  /** Send a BHS (+AHS) and data exactly as given, adding digests if enabled. */
  sendRaw(bhs: Buffer, data: Buffer = Buffer.alloc(0), opts: { corruptHeaderDigest?: boolean; corruptDataDigest?: boolean } = {}): void {
    const parts: Buffer[] = [bhs];
    if (this.headerDigest) {
      const d = le32(crc32c(bhs));
      if (opts.corruptHeaderDigest) d[0] ^= 0xff;
      parts.push(d);
    }
    if (data.length > 0) {
      const padded = Buffer.concat([data, Buffer.alloc(pad4(data.length))]);
      parts.push(padded);
      if (this.dataDigest) {
        const d = le32(crc32c(padded));
        if (opts.corruptDataDigest) d[1] ^= 0xff;
        parts.push(d);
      }
    }
    this.socket.write(Buffer.concat(parts));
  }

  /** Build a 48-byte BHS. */
  static bhs(opcode: number, flags: number, dataLength: number, fill: (b: Buffer) => void = () => undefined): Buffer {
    const b = Buffer.alloc(48);
    b[0] = opcode;
    b[1] = flags;
    b.writeUIntBE(dataLength, 5, 3);
    fill(b);
    return b;
  }

  /** Send one Login Request; returns the response. */
  async loginStep(flags: number, pairs: Array<[string, string]>, isid: Buffer, tsih = 0): Promise<Pdu | undefined> {
    const data = textData(pairs);
    const b = TestInitiator.bhs(0x43, flags, data.length, (h) => {
      isid.copy(h, 8);
      h.writeUInt16BE(tsih, 14);
      h.writeUInt32BE(0, 16);
      h.writeUInt32BE(this.cmdSN, 24);
      h.writeUInt32BE(this.expStatSN, 28);
    });
    this.sendRaw(b, data);
    const r = await this.receive();
    if (r) this.expStatSN = (r.bhs.readUInt32BE(24) + 1) >>> 0;
    return r;
  }

  /** Full login (security stage with AuthMethod=None, then operational). Throws on failure. */
  async login(opts: LoginOptions = {}): Promise<{ tsih: number; keys: Record<string, string> }> {
    const isid = opts.isid ?? Buffer.from('800000000001', 'hex');
    const first: Array<[string, string]> = [
      ['InitiatorName', opts.initiatorName ?? 'iqn.2024-01.test:initiator'],
      ['SessionType', opts.sessionType ?? 'Normal'],
      ['AuthMethod', opts.chap ? 'CHAP,None' : 'None'],
    ];
    if ((opts.sessionType ?? 'Normal') === 'Normal') first.splice(1, 0, ['TargetName', opts.targetName ?? '']);
    let r1 = await this.loginStep(0x81, first, isid); // T=1 CSG=0 NSG=1
    if (!r1 || loginStatus(r1) !== 0) throw new LoginFailed('security stage', loginStatus(r1));
    if (opts.chap) r1 = await this.chapExchange(opts.chap, isid);
    const defaults: Array<[string, string]> = [
      ['HeaderDigest', 'None'],
      ['DataDigest', 'None'],
      ['MaxRecvDataSegmentLength', String(this.maxRecv)],
    ];
    const extra = opts.keys ?? [];
    let keys: Array<[string, string]> = [...defaults.filter(([k]) => !extra.some(([e]) => e === k)), ...extra];
    const sent = new Set<string>();
    const all: Record<string, string> = Object.fromEntries(parsePairs(r1.data));
    for (let round = 0; round < 4; round++) {
      const r = await this.loginStep(0x87, keys, isid); // T=1 CSG=1 NSG=3
      if (!r || loginStatus(r) !== 0) throw new LoginFailed('operational stage', loginStatus(r));
      const got = parsePairs(r.data);
      Object.assign(all, Object.fromEntries(got));
      if (r.bhs[1] & 0x80 && (r.bhs[1] & 0x03) === 3) {
        this.headerDigest = all.HeaderDigest === 'CRC32C';
        this.dataDigest = all.DataDigest === 'CRC32C';
        this.cmdSN = r.bhs.readUInt32BE(28);
        return { tsih: r.bhs.readUInt16BE(14), keys: all };
      }
      // The target offered keys: accept its values. Its answers to our own keys are not
      // offers; sending them back would re-negotiate them (RFC 7143 §6.2 forbids it).
      for (const [k] of keys) sent.add(k);
      keys = got.filter(([k]) => k !== 'MaxRecvDataSegmentLength' && !sent.has(k));
    }
    throw new Error('login did not complete');
  }

  /** The CHAP steps of the security stage (after AuthMethod=CHAP was agreed); returns the last response. */
  private async chapExchange(chap: ChapLogin, isid: Buffer): Promise<Pdu> {
    const r2 = await this.loginStep(0x81, [['CHAP_A', chap.algorithms ?? '5']], isid);
    if (!r2 || loginStatus(r2) !== 0) throw new LoginFailed('CHAP_A', loginStatus(r2));
    const got = Object.fromEntries(parsePairs(r2.data));
    const challenge = Buffer.from(got.CHAP_C.slice(2), 'hex');
    const response = chapDigest(got.CHAP_A, Number(got.CHAP_I), chap.secret, challenge);
    const keys: Array<[string, string]> = [['CHAP_N', chap.username], ['CHAP_R', `0x${response.toString('hex')}`]];
    const myChallenge = randomBytes(16);
    const myId = 0x5a;
    if (chap.mutual) keys.push(['CHAP_I', String(myId)], ['CHAP_C', `0x${myChallenge.toString('hex')}`]);
    const r3 = await this.loginStep(0x81, keys, isid);
    if (!r3 || loginStatus(r3) !== 0) throw new LoginFailed('CHAP_R', loginStatus(r3));
    if (chap.mutual) {
      const answer = Object.fromEntries(parsePairs(r3.data));
      const expected = chapDigest(got.CHAP_A, myId, chap.mutual.secret, myChallenge);
      if (answer.CHAP_N !== chap.mutual.username || answer.CHAP_R !== `0x${expected.toString('hex')}`) {
        throw new LoginFailed('mutual CHAP (the target did not prove itself)', 0);
      }
    }
    return r3;
  }

  /**
   * Run a SCSI command: immediate data for writes (up to `immediate` bytes), the rest answering
   * R2Ts. Returns status, sense, Data-In and residuals.
   */
  async scsi(
    cdb: Buffer,
    opts: {
      read?: number;
      write?: Buffer;
      edtl?: number;
      lun?: number;
      immediate?: number;
      /** Bytes (after the immediate data) to send as unsolicited Data-Out (needs InitialR2T=No). */
      unsolicited?: number;
      /** Data-Out segment size (the target's MaxRecvDataSegmentLength). */
      segment?: number;
      /** Do not answer R2Ts (to test aborts and timeouts); resolves after the first R2T. */
      stallOnR2T?: boolean;
      attr?: number;
    } = {},
  ): Promise<ScsiOutcome> {
    const itt = this.nextItt();
    const write = opts.write;
    const edtl = opts.edtl ?? (write ? write.length : (opts.read ?? 0));
    const immediateLen = write ? Math.min(write.length, opts.immediate ?? 0, edtl) : 0;
    const cdb16 = Buffer.alloc(16);
    cdb.copy(cdb16, 0, 0, Math.min(16, cdb.length));
    const unsolicited = write ? Math.min(opts.unsolicited ?? 0, edtl - immediateLen) : 0;
    const segment = opts.segment ?? 8192;
    const flags = (unsolicited > 0 ? 0 : 0x80) | (opts.read !== undefined ? 0x40 : 0) | (write ? 0x20 : 0) | (opts.attr ?? 0x01);
    const bhs = TestInitiator.bhs(0x01, flags, immediateLen, (h) => {
      h[9] = opts.lun ?? 0;
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(edtl, 20);
      h.writeUInt32BE(this.cmdSN, 24);
      h.writeUInt32BE(this.expStatSN, 28);
      cdb16.copy(h, 32);
    });
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    this.sendRaw(bhs, write ? write.subarray(0, immediateLen) : Buffer.alloc(0));
    for (let sent = 0, dataSN = 0; sent < unsolicited; dataSN++) {
      const n = Math.min(segment, unsolicited - sent);
      const offset = immediateLen + sent;
      const d = TestInitiator.bhs(0x05, sent + n === unsolicited ? 0x80 : 0, n, (h) => {
        h[9] = opts.lun ?? 0;
        h.writeUInt32BE(itt, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(this.expStatSN, 28);
        h.writeUInt32BE(dataSN, 36);
        h.writeUInt32BE(offset, 40);
      });
      this.sendRaw(d, write!.subarray(offset, offset + n));
      sent += n;
    }
    this.lastItt = itt;
    const dataIn: Buffer[] = [];
    for (;;) {
      const p = await this.receive();
      if (!p) throw new Error('connection closed or timed out during a SCSI command');
      if (p.opcode === 0x20) {
        // NOP-In ping from the target: answer it.
        const ttt = p.bhs.readUInt32BE(20);
        if (ttt !== 0xffffffff) this.nopOutReply(ttt);
        continue;
      }
      if (p.bhs.readUInt32BE(16) !== itt) throw new Error(`unexpected PDU opcode 0x${p.opcode.toString(16)} for ITT ${p.bhs.readUInt32BE(16)}`);
      if (p.opcode === 0x31) {
        this.r2ts.push({ offset: p.bhs.readUInt32BE(40), length: p.bhs.readUInt32BE(44) });
        if (opts.stallOnR2T) return { status: -1, sense: undefined, data: Buffer.alloc(0), overflow: false, underflow: false, residual: 0 };
        const ttt = p.bhs.readUInt32BE(20);
        const offset = p.bhs.readUInt32BE(40);
        const length = p.bhs.readUInt32BE(44);
        let sent = 0;
        let dataSN = 0;
        while (sent < length) {
          const n = Math.min(segment, length - sent);
          const chunk = write!.subarray(offset + sent, offset + sent + n);
          const d = TestInitiator.bhs(0x05, sent + n === length ? 0x80 : 0, chunk.length, (h) => {
            h[9] = opts.lun ?? 0;
            h.writeUInt32BE(itt, 16);
            h.writeUInt32BE(ttt, 20);
            h.writeUInt32BE(this.expStatSN, 28);
            h.writeUInt32BE(dataSN++, 36);
            h.writeUInt32BE(offset + sent, 40);
          });
          this.sendRaw(d, chunk);
          sent += n;
        }
        continue;
      }
      if (p.opcode === 0x25) {
        dataIn.push(p.data);
        if (p.bhs[1] & 0x01) {
          this.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
          return {
            status: p.bhs[3],
            sense: undefined,
            data: Buffer.concat(dataIn),
            overflow: (p.bhs[1] & 0x04) !== 0,
            underflow: (p.bhs[1] & 0x02) !== 0,
            residual: p.bhs.readUInt32BE(44),
          };
        }
        continue;
      }
      if (p.opcode === 0x21) {
        this.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
        const senseLen = p.data.length >= 2 ? p.data.readUInt16BE(0) : 0;
        return {
          status: p.bhs[3],
          sense: senseLen > 0 ? p.data.subarray(2, 2 + senseLen) : undefined,
          data: Buffer.concat(dataIn),
          overflow: (p.bhs[1] & 0x04) !== 0,
          underflow: (p.bhs[1] & 0x02) !== 0,
          residual: p.bhs.readUInt32BE(44),
        };
      }
      throw new Error(`unexpected PDU opcode 0x${p.opcode.toString(16)}`);
    }
  }

  /** TEST UNIT READY until GOOD: consumes the unit attentions a new I_T nexus may carry. */
  async clearUnitAttentions(lun = 0): Promise<void> {
    for (let i = 0; i < 8; i++) {
      const r = await this.scsi(Buffer.alloc(6), { lun });
      if (r.status === 0) return;
      if (r.status !== 2 || !r.sense || (r.sense[2] & 0x0f) !== 0x06) {
        throw new Error(`TEST UNIT READY: status ${r.status}, sense ${r.sense?.toString('hex')}`);
      }
    }
    throw new Error('unit attentions do not clear');
  }

  nopOutReply(ttt: number): void {
    this.sendRaw(
      TestInitiator.bhs(0x40, 0x80, 0, (h) => {
        h.writeUInt32BE(0xffffffff, 16);
        h.writeUInt32BE(ttt, 20);
        h.writeUInt32BE(this.cmdSN, 24);
        h.writeUInt32BE(this.expStatSN, 28);
      }),
    );
  }

  /** NOP-Out ping; resolves with the NOP-In echo data (or undefined). */
  async ping(data = Buffer.from('ping')): Promise<Buffer | undefined> {
    const itt = this.nextItt();
    this.sendRaw(
      TestInitiator.bhs(0x40, 0x80, data.length, (h) => {
        h.writeUInt32BE(itt, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(this.cmdSN, 24);
        h.writeUInt32BE(this.expStatSN, 28);
      }),
      data,
    );
    for (;;) {
      const p = await this.receive();
      if (!p) return undefined;
      if (p.opcode === 0x20 && p.bhs.readUInt32BE(16) === itt) {
        this.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
        return p.data;
      }
    }
  }

  /** One Text Request (final, no continuation); returns the pairs of the Text Response. */
  async text(pairs: Array<[string, string]>): Promise<Array<[string, string]>> {
    const itt = this.nextItt();
    const data = textData(pairs);
    this.sendRaw(
      TestInitiator.bhs(0x44, 0x80, data.length, (h) => {
        h.writeUInt32BE(itt, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(this.cmdSN, 24);
        h.writeUInt32BE(this.expStatSN, 28);
      }),
      data,
    );
    this.cmdSN++;
    for (;;) {
      const p = await this.receive();
      if (!p) throw new Error('no Text Response');
      if (p.opcode === 0x24 && p.bhs.readUInt32BE(16) === itt) {
        this.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
        return parsePairs(p.data);
      }
    }
  }

  async logout(): Promise<Pdu | undefined> {
    const itt = this.nextItt();
    this.sendRaw(
      TestInitiator.bhs(0x46, 0x80, 0, (h) => {
        h.writeUInt32BE(itt, 16);
        h.writeUInt32BE(this.cmdSN, 24);
        h.writeUInt32BE(this.expStatSN, 28);
      }),
    );
    return this.receive();
  }

  close(): void {
    this.socket.destroy();
  }

  // ---- Hostile behaviour (for back-pressure and memory tests) ---------------------------------

  /** Stop reading the socket: what the target sends piles up in its send queue. */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Bytes this side has queued but the kernel has not taken (the target is not reading). */
  get sendBacklog(): number {
    return this.socket.writableLength;
  }

  /** Run `fn` with the socket corked: everything it sends leaves in one write (one TCP segment on loopback). */
  batch<T>(fn: () => T): T {
    this.socket.cork();
    try {
      return fn();
    } finally {
      this.socket.uncork();
    }
  }

  /** A bare NOP-Out (immediate, ITT 0xffffffff): no answer, no CmdSN; shows whether the socket still works. */
  noOp(): void {
    if (this.closed) return;
    this.sendRaw(
      TestInitiator.bhs(0x40, 0x80, 0, (h) => {
        h.writeUInt32BE(0xffffffff, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(this.cmdSN, 24);
        h.writeUInt32BE(this.expStatSN, 28);
      }),
    );
  }

  /** PDUs received so far and not yet taken by receive() (drains the queue). */
  drain(): Pdu[] {
    return this.queue.splice(0);
  }

  /**
   * Send a SCSI command and do not wait for anything. `read`/`write`: expected Data-In/Data-Out
   * length; no Data-Out is ever sent for a write (unless `immediate` bytes are given).
   */
  issue(cdb: Buffer, opts: { read?: number; write?: number; immediate?: Buffer; immediateBit?: boolean; lun?: number } = {}): number {
    const itt = this.nextItt();
    const cdb16 = Buffer.alloc(16);
    cdb.copy(cdb16, 0, 0, Math.min(16, cdb.length));
    const data = opts.immediate ?? Buffer.alloc(0);
    const flags = 0x80 | (opts.read !== undefined ? 0x40 : 0) | (opts.write !== undefined ? 0x20 : 0) | 0x01;
    const bhs = TestInitiator.bhs(0x01 | (opts.immediateBit ? 0x40 : 0), flags, data.length, (h) => {
      h[9] = opts.lun ?? 0;
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(opts.read ?? opts.write ?? 0, 20);
      h.writeUInt32BE(this.cmdSN, 24);
      h.writeUInt32BE(this.expStatSN, 28);
      cdb16.copy(h, 32);
    });
    if (!opts.immediateBit) this.cmdSN = (this.cmdSN + 1) >>> 0;
    this.sendRaw(bhs, data);
    return itt;
  }
}
