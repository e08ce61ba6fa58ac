/**
 * One iSCSI connection (RFC 7143 §7 state machine, simplified for ErrorRecoveryLevel 0):
 * framing through the PDU reader, the login phase, then full feature phase dispatch to the
 * session; NOP-In pings, Logout, Text, Reject, timers. A protocol error ends this connection
 * (and so, at ERL 0, its session) and nothing else.
 */
import type { Socket } from 'node:net';
import { PduError } from '../pdu/errors';
import {
  BHS_LENGTH,
  InitiatorOpcode,
  LoginStatus,
  LogoutReason,
  LogoutResponseCode,
  RejectReason,
  RESERVED_TAG,
} from '../pdu/opcodes';
import { PduReader, PduReaderSettings, RawPdu } from '../pdu/pdu-reader';
import {
  LoginRequestPdu,
  LogoutRequestPdu,
  NopOutPdu,
  RequestPdu,
  TextRequestPdu,
  decodeRequest,
  opcodeOf,
} from '../pdu/requests';
import {
  AsyncEvent,
  encodeAsyncMessage,
  encodeLoginResponse,
  encodeLogoutResponse,
  encodeNopIn,
  encodeReject,
  encodeTextResponse,
} from '../pdu/responses';
import { encodeText } from '../pdu/text';
import { dataBuffers } from '../util/buffer-pool';
import { Logger, peerEvents } from '../util/log';
import { FaultOwner, boundTo } from '../util/process-guard';
import { CommandWindow } from './command-window';
import { DataOutBudget, DataPathLimits } from './limits';
import { Transmitter } from './transmitter';
import { Liveness } from './liveness';
import { LoginError, LoginReply, LoginStateMachine } from './login';
import { Negotiator } from './negotiation';
import { SessionParameters } from './parameters';
import { Session, SessionTransport, sessionKey } from './session';
import { SessionRegistry, TsihExhaustedError } from './session-registry';
import { PortalAddress } from '../transport/portal';
import { TargetCatalog, TargetSettings } from './target-node';
import { TextExchange, TextExchangeError } from './text-exchange';
import { LoginThrottle } from './login-throttle';
import { countLoginFailure, loginFailureReason } from '../metrics/stats';

export interface ConnectionContext {
  readonly catalog: TargetCatalog;
  readonly sessions: SessionRegistry;
  readonly log: Logger;
  /** Every live connection (for shutdown and cold reset). */
  readonly connections: Set<Connection>;
  /** Failed-login accounting and per-address throttling. */
  readonly throttle?: LoginThrottle;
  readonly limits: DataPathLimits;
  readonly dataOut: DataOutBudget;
  /** Why this connection must be refused at its first Login Request (connection limits), if so. */
  readonly refusal?: string;
  /** Called once when the connection closes (it no longer counts against connection limits). */
  readonly onClosed?: () => void;
}

const enum State {
  Login,
  /** Login complete, session being bound (reinstatement may be waiting for the old one). */
  Binding,
  FullFeature,
  LoggingOut,
  Closed,
}

const ZERO_LUN = Buffer.alloc(8);
const TICK_MS = 1000;
const GRACEFUL_CLOSE_MS = 5000;

let nextConnectionId = 1;

export class Connection implements SessionTransport, FaultOwner {
  readonly id = nextConnectionId++;
  private state = State.Login;
  private readonly readerSettings: PduReaderSettings;
  private readonly reader: PduReader;
  private statSN = 1;
  private readonly login: LoginStateMachine;
  private session: Session | undefined;
  private window: CommandWindow | undefined;
  private sessionType: 'Normal' | 'Discovery' = 'Normal';
  private initiatorName = '';
  private negotiator: Negotiator | undefined;
  private text: TextExchange | undefined;
  private readonly tx: Transmitter;
  private maxXmit = 8192;
  private cid = 0;
  private readonly startedAt = Date.now();
  private readonly liveness = new Liveness();
  private readonly timer: NodeJS.Timeout;
  private readonly log: Logger;
  private closing: Promise<void> | undefined;
  readonly local: PortalAddress;
  readonly remote: string;
  /** The initiator's IP address (IPv4-mapped IPv6 unwrapped), the unit of login throttling. */
  private readonly remoteAddress: string;
  private loginAdmitted = false;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ConnectionContext,
  ) {
    this.local = { host: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.remoteAddress = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.log = ctx.log.child({ conn: this.id, peer: this.remote });
    this.login = new LoginStateMachine(ctx.catalog, this.local);
    this.readerSettings = {
      maxDataSegmentLength: 8192, // RFC 7143: the default during login
      headerDigest: false,
      dataDigest: false,
      placeData: (bhs, length) =>
        this.session && opcodeOf(bhs) === InitiatorOpcode.DataOut ? this.session.placeDataOut(bhs, length) : undefined,
      allocate: (length) => dataBuffers.take(length),
      checkHeader: (bhs) =>
        this.state === State.Login && opcodeOf(bhs) !== InitiatorOpcode.LoginRequest
          ? new PduError(`opcode 0x${opcodeOf(bhs).toString(16)} during login`, RejectReason.ProtocolError, true)
          : undefined,
    };
    this.reader = new PduReader(
      this.readerSettings,
      (pdu) => this.onPdu(pdu),
      (error) => this.onPduError(error),
    );
    this.tx = new Transmitter(socket, ctx.limits, (reopened) => this.onTransmitDrain(reopened));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // Everything done for this connection runs in its fault scope: an internal error that
    // escapes (a throw in a callback, a rejection nobody handled) closes this connection only.
    socket.on('data', boundTo(this, (chunk: Buffer) => this.reader.push(chunk)));
    socket.on('error', (err) => void this.close(`socket error: ${err.message}`));
    socket.on('end', () => void this.close('initiator closed the connection'));
    socket.on('close', () => void this.close('connection closed'));
    this.timer = setInterval(boundTo(this, () => this.tick()), TICK_MS);
    this.timer.unref();
    ctx.connections.add(this);
    this.log.debug('connection accepted');
  }

  get faultName(): string {
    return `connection ${this.id} from ${this.remote}`;
  }

  fault(reason: string): void {
    void this.close(reason);
  }

  // ---- Sending -------------------------------------------------------------------------------

  /** Queue a PDU (see Transmitter.send). */
  send(header: Buffer, data?: Buffer, onSent?: () => void): void {
    this.tx.send(header, data, onSent);
  }

  reserveDataIn(bytes: number): boolean {
    return this.tx.tryReserve(bytes);
  }

  releaseDataIn(bytes: number): void {
    this.tx.release(bytes);
  }

  get transmitCongested(): boolean {
    return this.state !== State.Closed && this.tx.congested;
  }

  /** The send queue drained below its bound: held commands go on, the window may reopen. */
  private onTransmitDrain(reopened: boolean): void {
    if (this.state !== State.FullFeature && this.state !== State.LoggingOut) return;
    this.session?.onTransmitReady();
    if (reopened && this.window?.wouldOpen()) {
      // Nothing else may be on its way to tell the initiator: a NOP-In that is not a ping
      // (ITT and TTT reserved) carries the new MaxCmdSN (RFC 7143 §11.19).
      this.send(
        encodeNopIn(
          { lun: ZERO_LUN, itt: RESERVED_TAG, ttt: RESERVED_TAG, statSN: this.peekStatSN(), expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN },
          0,
        ),
      );
    }
  }

  takeStatSN(): number {
    const sn = this.statSN;
    this.statSN = (this.statSN + 1) >>> 0;
    return sn;
  }

  peekStatSN(): number {
    return this.statSN;
  }

  private get expCmdSN(): number {
    return this.window?.expCmdSN ?? this.login.firstRequest?.cmdSN ?? 0;
  }

  private get maxCmdSN(): number {
    return this.window?.maxCmdSN ?? this.expCmdSN;
  }

  reject(reason: RejectReason, bhs: Buffer, message: string): void {
    peerEvents().warn('reject', { reason, opcode: bhs[0] & 0x3f }, `Reject: ${message}`, this.log);
    const data = Buffer.from(bhs.subarray(0, BHS_LENGTH));
    this.send(
      encodeReject({ reason, statSN: this.takeStatSN(), expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN, dataSN: 0 }, data.length),
      data,
    );
  }

  fail(message: string): void {
    peerEvents().warn('connection-failed', {}, `connection failed: ${message}`, this.log);
    void this.close(message);
  }

  // ---- Receiving -----------------------------------------------------------------------------

  private onPduError(error: PduError): void {
    if (error.fatal) {
      this.fail(error.message);
      return;
    }
    // Oversized data segment: framing is intact but the PDU is unusable. During login, or
    // for a SCSI command or its data, the exchange cannot continue: Reject, then fail.
    if (error.bhs) this.reject(error.reason, error.bhs, error.message);
    const op = error.bhs ? opcodeOf(error.bhs) : -1;
    if (this.state !== State.FullFeature || op === InitiatorOpcode.ScsiCommand || op === InitiatorOpcode.DataOut) {
      this.fail(error.message);
    }
  }

  private onPdu(raw: RawPdu): void {
    this.liveness.received();
    try {
      this.dispatch(raw);
    } catch (error) {
      // A bug must cost one connection, never the gateway.
      this.log.error({ err: error }, 'internal error handling a PDU');
      void this.close('internal error');
    }
  }

  private dispatch(raw: RawPdu): void {
    if (this.state === State.Closed || this.state === State.Binding) return;
    let pdu: RequestPdu;
    try {
      pdu = decodeRequest(raw);
    } catch (error) {
      if (error instanceof PduError) {
        this.reject(error.reason, raw.bhs, error.message);
        if (this.state === State.Login) this.fail(error.message);
        return;
      }
      throw error;
    }
    if (this.state === State.Login) {
      if (pdu.opcode !== InitiatorOpcode.LoginRequest) {
        this.fail(`opcode 0x${pdu.opcode.toString(16)} during login`);
        return;
      }
      this.onLogin(pdu);
      return;
    }
    if (!raw.dataDigestOk) {
      this.reject(RejectReason.DataDigestError, raw.bhs, 'data digest error');
      // A command or its data cannot be recovered at ERL 0; a NOP or Text simply is dropped.
      if (pdu.opcode === InitiatorOpcode.ScsiCommand || pdu.opcode === InitiatorOpcode.DataOut) {
        this.fail('data digest error on SCSI data');
      }
      return;
    }
    if (this.state === State.LoggingOut && pdu.opcode === InitiatorOpcode.ScsiCommand) {
      this.reject(RejectReason.WaitingForLogout, raw.bhs, 'command after Logout');
      return;
    }
    switch (pdu.opcode) {
      case InitiatorOpcode.ScsiCommand:
        if (!this.session) return this.reject(RejectReason.ProtocolError, raw.bhs, 'SCSI command in a discovery session');
        return this.session.onScsiCommand(pdu, raw.bhs);
      case InitiatorOpcode.DataOut:
        if (!this.session) return this.reject(RejectReason.ProtocolError, raw.bhs, 'Data-Out in a discovery session');
        return this.session.onDataOut(pdu, raw.bhs);
      case InitiatorOpcode.TaskManagementRequest:
        if (!this.session) return this.reject(RejectReason.ProtocolError, raw.bhs, 'task management in a discovery session');
        return this.session.onTaskManagement(pdu);
      case InitiatorOpcode.NopOut:
        return this.onNopOut(pdu, raw.bhs);
      case InitiatorOpcode.TextRequest:
        return this.onText(pdu, raw.bhs);
      case InitiatorOpcode.LogoutRequest:
        return this.onLogout(pdu);
      case InitiatorOpcode.LoginRequest:
        return this.reject(RejectReason.ProtocolError, raw.bhs, 'Login Request in full feature phase');
      case InitiatorOpcode.SnackRequest:
        return this.reject(RejectReason.ProtocolError, raw.bhs, 'SNACK is not supported at ErrorRecoveryLevel 0');
    }
  }

  // ---- Login ---------------------------------------------------------------------------------

  private onLogin(pdu: LoginRequestPdu): void {
    if (this.ctx.refusal) {
      this.failLogin(pdu, LoginStatus.OutOfResources, this.ctx.refusal);
      return;
    }
    const throttle = this.ctx.throttle;
    if (throttle && !this.loginAdmitted) {
      // An address with many failed logins waits before its next login is looked at.
      this.loginAdmitted = true;
      const wait = throttle.admit(this.remoteAddress);
      if (wait === 'refuse') {
        void this.close('login refused: too many failed logins from this address', true);
        return;
      }
      if (wait > 0) {
        setTimeout(() => {
          throttle.waited(this.remoteAddress);
          if (this.state === State.Login) this.onLogin(pdu);
        }, wait).unref();
        return;
      }
    }
    let reply: LoginReply;
    try {
      reply = this.login.handle(pdu);
    } catch (error) {
      if (error instanceof LoginError) {
        this.failLogin(pdu, error.status, error.message);
        return;
      }
      throw error;
    }
    if (!reply.complete) {
      this.sendLoginResponse(pdu, reply, 0, LoginStatus.Success);
      return;
    }
    this.state = State.Binding;
    this.bind(pdu, reply).catch((error: unknown) => {
      if (error instanceof LoginError) this.failLogin(pdu, error.status, error.message);
      else {
        this.log.error({ err: error }, 'login failed');
        this.failLogin(pdu, LoginStatus.TargetError, 'target error');
      }
    });
  }

  private sendLoginResponse(pdu: LoginRequestPdu, reply: LoginReply, tsih: number, status: LoginStatus): void {
    const data = encodeText(reply.keys);
    const header = encodeLoginResponse(
      {
        transit: reply.transit,
        continue: false,
        csg: reply.csg,
        nsg: reply.nsg,
        versionMax: 0x00,
        versionActive: 0x00,
        isid: pdu.isid,
        tsih,
        itt: pdu.itt,
        status,
        statSN: this.takeStatSN(),
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
      },
      data.length,
    );
    this.send(header, data);
  }

  private failLogin(pdu: LoginRequestPdu, status: LoginStatus, message: string): void {
    this.ctx.throttle?.failed(this.remoteAddress, status);
    countLoginFailure(loginFailureReason(status));
    peerEvents().warn('login-failed', { status: status.toString(16).padStart(4, '0') }, `login failed: ${message}`, this.log);
    this.sendLoginResponse(pdu, { transit: false, csg: pdu.csg, nsg: 0, keys: [], complete: false }, 0, status);
    void this.close(`login failed: ${message}`, true);
  }

  /** The login succeeded: create (or reinstate) the session, then enter full feature phase. */
  private async bind(pdu: LoginRequestPdu, reply: LoginReply): Promise<void> {
    const first = this.login.firstRequest!;
    const sessions = this.ctx.sessions;
    const loginResult = this.login.result(0);
    const target = loginResult.target;
    this.cid = first.cid;
    this.sessionType = loginResult.session.sessionType;
    this.initiatorName = loginResult.session.initiatorName;
    let tsih: number;
    if (this.sessionType === 'Normal' && target) {
      if (first.tsih !== 0) {
        // Adding a connection to a session: we run one connection per session, and at
        // ErrorRecoveryLevel 0 a session does not outlive its connection. An old connection
        // still hanging on is closed; the initiator then starts a new session (TSIH 0).
        const existing = sessions.findByTsih(first.tsih);
        if (existing && existing.key === sessionKey(this.initiatorName, first.isid, target.name)) {
          await existing.terminate('connection reinstatement by the initiator');
        }
        throw new LoginError(`session 0x${first.tsih.toString(16)} does not exist`, LoginStatus.SessionDoesNotExist);
      }
      const existing = sessions.findByKey(sessionKey(this.initiatorName, first.isid, target.name));
      if (existing) await existing.terminate('session reinstatement');
      if (this.state !== State.Binding) return; // closed meanwhile
      tsih = this.allocateTsih();
      const limits = this.ctx.limits;
      const session = new Session(tsih, first.isid, target, loginResult.session, first.cmdSN, this, this.log, {
        port: loginResult.port,
        limits,
        dataOut: this.ctx.dataOut,
        // Each session's share of the target's task set, so no initiator can starve the others.
        mayRun: (running) => sessions.mayRun(target.name, running, limits),
        running: (delta) => sessions.tasksRunning(target.name, delta),
      });
      session.setMaxXmit(loginResult.connection.maxXmitDataSegmentLength);
      session.onColdReset = () => {
        // The issuer's connection is closed after its TMF response has left (RFC 7143 §11.5.1).
        for (const other of sessions.ofTarget(target.name)) void other.terminate('TARGET COLD RESET', other === session);
      };
      sessions.add(session);
      this.session = session;
      this.window = session.window;
    } else {
      tsih = this.allocateTsih();
      sessions.reserveTsih(tsih);
      this.discoveryTsih = tsih;
      const settings = loginResult.settings;
      this.window = new CommandWindow(first.cmdSN, () => settings.cmdsnDepth);
    }
    this.negotiator = this.login.negotiatorForFullFeature();
    this.sendLoginResponse(pdu, reply, tsih, LoginStatus.Success);
    // Digests and the larger MaxRecvDataSegmentLength apply from the next PDU on.
    const c = loginResult.connection;
    this.tx.headerDigests = c.headerDigest;
    this.tx.dataDigests = c.dataDigest;
    this.maxXmit = c.maxXmitDataSegmentLength;
    this.readerSettings.headerDigest = c.headerDigest;
    this.readerSettings.dataDigest = c.dataDigest;
    this.readerSettings.maxDataSegmentLength = c.maxRecvDataSegmentLength;
    this.state = State.FullFeature;
    this.log.info(
      { tsih, type: this.sessionType, initiator: this.initiatorName, target: target?.name, hd: c.headerDigest, dd: c.dataDigest },
      'login complete',
    );
  }

  private discoveryTsih = 0;

  private allocateTsih(): number {
    try {
      return this.ctx.sessions.allocateTsih();
    } catch (error) {
      if (error instanceof TsihExhaustedError) throw new LoginError(error.message, error.status);
      throw error;
    }
  }

  private settings(): TargetSettings {
    return this.session?.settings() ?? this.login.currentSettings();
  }

  // ---- NOP, Text, Logout -------------------------------------------------------------------

  private onNopOut(pdu: NopOutPdu, bhs: Buffer): void {
    if (pdu.itt === RESERVED_TAG) {
      // Answer to our ping (or a bare no-op): must be immediate, consumes no CmdSN.
      if (!pdu.immediate) this.reject(RejectReason.ProtocolError, bhs, 'NOP-Out with ITT 0xffffffff must be immediate');
      return;
    }
    if (pdu.ttt !== RESERVED_TAG) {
      this.reject(RejectReason.InvalidPduField, bhs, 'NOP-Out ping with a Target Transfer Tag');
      return;
    }
    const ping = Buffer.from(pdu.data.subarray(0, this.maxXmit));
    this.window!.order(pdu.cmdSN, pdu.immediate, () => {
      this.send(
        encodeNopIn(
          { lun: pdu.lun, itt: pdu.itt, ttt: RESERVED_TAG, statSN: this.takeStatSN(), expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN },
          ping.length,
        ),
        ping,
      );
    }, false);
  }

  private onText(pdu: TextRequestPdu, bhs: Buffer): void {
    if (!this.text) {
      this.text = new TextExchange({
        catalog: this.ctx.catalog,
        sessionType: this.sessionType,
        initiatorName: this.initiatorName,
        target: this.session?.target,
        local: this.local,
        negotiator: this.negotiator!,
        maxXmit: () => this.maxXmit,
      });
    }
    const text = this.text;
    this.window!.order(pdu.cmdSN, pdu.immediate, () => {
      try {
        const reply = text.handle(pdu);
        // MaxRecvDataSegmentLength may have been redeclared.
        this.maxXmit = this.negotiator!.connectionParameters().maxXmitDataSegmentLength;
        this.session?.setMaxXmit(this.maxXmit);
        this.send(
          encodeTextResponse(
            {
              final: reply.final,
              continue: reply.continue,
              lun: pdu.lun,
              itt: pdu.itt,
              ttt: reply.ttt,
              statSN: this.takeStatSN(),
              expCmdSN: this.expCmdSN,
              maxCmdSN: this.maxCmdSN,
            },
            reply.data.length,
          ),
          reply.data,
        );
      } catch (error) {
        if (error instanceof TextExchangeError) this.reject(RejectReason.ProtocolError, bhs, error.message);
        else throw error;
      }
    }, false);
  }

  private onLogout(pdu: LogoutRequestPdu): void {
    this.window!.order(
      pdu.cmdSN,
      pdu.immediate,
      () =>
        void this.logout(pdu).catch((error: unknown) => {
          this.log.error({ err: error }, 'logout failed');
          void this.close('logout failed');
        }),
      false,
    );
  }

  private async logout(pdu: LogoutRequestPdu): Promise<void> {
    let response = LogoutResponseCode.Success;
    if (pdu.reasonCode === LogoutReason.RemoveConnectionForRecovery) response = LogoutResponseCode.RecoveryNotSupported;
    else if (pdu.reasonCode === LogoutReason.CloseConnection && pdu.cid !== this.cid) response = LogoutResponseCode.CidNotFound;
    else if (pdu.reasonCode > LogoutReason.RemoveConnectionForRecovery) response = LogoutResponseCode.CleanupFailed;
    if (response === LogoutResponseCode.Success) {
      this.state = State.LoggingOut;
      // Let commands already running finish so their status reaches the initiator.
      const deadline = Date.now() + 10_000;
      while (this.session && this.session.runningTasks > 0 && Date.now() < deadline && !this.isClosed) {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (this.isClosed) return;
    const params: SessionParameters | undefined = this.session?.params;
    this.send(
      encodeLogoutResponse({
        itt: pdu.itt,
        response,
        time2Wait: params?.defaultTime2Wait ?? 0,
        time2Retain: 0,
        statSN: this.takeStatSN(),
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
      }),
    );
    if (response === LogoutResponseCode.Success) {
      this.log.info({ reason: pdu.reasonCode }, 'logout');
      await this.close('logout', true);
    }
  }

  /** Ask the initiator to log out (shutdown): Async Message, event 1 (RFC 7143 §11.9.1). */
  requestLogout(seconds: number): void {
    if (this.state !== State.FullFeature) return;
    this.send(
      encodeAsyncMessage(
        {
          lun: ZERO_LUN,
          asyncEvent: AsyncEvent.LogoutRequest,
          asyncVCode: 0,
          parameter1: 0,
          parameter2: 0,
          parameter3: seconds,
          statSN: this.takeStatSN(),
          expCmdSN: this.expCmdSN,
          maxCmdSN: this.maxCmdSN,
        },
        0,
      ),
    );
  }

  // ---- Timers --------------------------------------------------------------------------------

  private tick(): void {
    if (this.state === State.Closed) return;
    const now = Date.now();
    const s = this.settings();
    if (this.state === State.Login || this.state === State.Binding) {
      if (now - this.startedAt > s.loginTimeout * 1000) this.fail(`login not completed within ${s.loginTimeout} s`);
      return;
    }
    const verdict = this.liveness.check(now, s, this.tx.stalledFor(now), this.tx.backlog, this.session?.dataOutTimedOut(now)?.tag);
    if (verdict && 'fail' in verdict) this.fail(verdict.fail);
    else if (verdict) {
      this.send(
        encodeNopIn(
          { lun: ZERO_LUN, itt: RESERVED_TAG, ttt: verdict.ping, statSN: this.peekStatSN(), expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN },
          0,
        ),
      );
    }
  }

  // ---- Teardown ------------------------------------------------------------------------------

  get isClosed(): boolean {
    return this.state === State.Closed;
  }

  /** Close the connection; at ERL 0 this ends its session. `graceful` flushes pending output. */
  close(reason: string, graceful = false): Promise<void> {
    if (this.closing) return this.closing;
    this.state = State.Closed;
    this.tx.close();
    clearInterval(this.timer);
    this.reader.stop();
    this.ctx.connections.delete(this);
    if (graceful) {
      this.socket.end();
      // A peer that never closes its side must not keep the socket (and its buffers) forever.
      setTimeout(() => this.socket.destroy(), GRACEFUL_CLOSE_MS).unref();
    } else {
      this.socket.destroy();
    }
    this.ctx.onClosed?.();
    this.log.debug({ reason }, 'connection closed');
    const session = this.session;
    if (this.discoveryTsih) this.ctx.sessions.releaseTsih(this.discoveryTsih);
    this.closing = (async () => {
      if (session) {
        this.ctx.sessions.remove(session);
        await session.close(reason);
      }
    })().catch((error: unknown) => {
      // Closing never fails for the caller: the connection is gone either way.
      this.log.error({ err: error }, 'closing the session failed');
    });
    return this.closing;
  }
}
