/**
 * The login phase of one connection (RFC 7143 §6.3, §11.12-11.13): security negotiation ->
 * operational negotiation -> full feature phase. Pure state machine: it consumes Login Request
 * PDUs and says what to answer; the connection sends, and binds the session on completion.
 */
import { LoginStage, LoginStatus } from '../pdu/opcodes';
import { LoginRequestPdu } from '../pdu/requests';
import { TextFormatError, TextPair, parseText } from '../pdu/text';
import { AuthContext, AuthError, AuthExchange, AuthMethodHandler } from './auth';
import { Negotiator, NegotiationError, SECURITY_KEYS } from './negotiation';
import { ConnectionParameters, SessionParameters } from './parameters';
import { PortalAddress } from '../transport/portal';
import { IscsiTargetNode, TargetCatalog, TargetPortBinding, TargetSettings, targetPortAt } from './target-node';

export class LoginError extends Error {
  constructor(
    message: string,
    readonly status: LoginStatus,
  ) {
    super(message);
    this.name = 'LoginError';
  }
}

/** What to send back for one Login Request. */
export interface LoginReply {
  readonly transit: boolean;
  readonly csg: number;
  readonly nsg: number;
  readonly keys: TextPair[];
  /** The login succeeded: this reply moves the connection to full feature phase. */
  readonly complete: boolean;
}

/** Identity and parameters of a completed login. */
export interface LoginResult {
  readonly isid: Buffer;
  readonly tsih: number;
  readonly cid: number;
  readonly initialCmdSN: number;
  readonly target: IscsiTargetNode | undefined;
  /** The SCSI target port the session is bound to (normal sessions). */
  readonly port: TargetPortBinding | undefined;
  readonly session: SessionParameters;
  readonly connection: ConnectionParameters;
  readonly settings: TargetSettings;
}

const NAME_RE = /^(iqn\.\d{4}-\d{2}\.[^\s]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$/;

/** iSCSI names (RFC 7143 §4.2.7): iqn., eui. or naa. format, at most 223 bytes, no spaces. */
export function isValidIscsiName(name: string): boolean {
  return Buffer.byteLength(name) <= 223 && NAME_RE.test(name);
}

export class LoginStateMachine {
  private stage: LoginStage | undefined;
  private first: LoginRequestPdu | undefined;
  private pendingText: Buffer[] = [];
  private negotiator: Negotiator | undefined;
  private target: IscsiTargetNode | undefined;
  private port: TargetPortBinding | undefined;
  private settings: TargetSettings | undefined;
  private sessionType: 'Normal' | 'Discovery' = 'Normal';
  private initiatorName = '';
  private authMethods: readonly AuthMethodHandler[] = [];
  private auth: AuthExchange | undefined;
  private authenticated = false;
  private offersSent = false;

  /** `local`: the address the connection arrived at (selects the target port and its TPGT). */
  constructor(
    private readonly catalog: TargetCatalog,
    private readonly local?: PortalAddress,
  ) {}

  /** Settings that govern this login (known after the first request). */
  currentSettings(): TargetSettings {
    return this.settings ?? this.catalog.discoverySettings();
  }

  get firstRequest(): LoginRequestPdu | undefined {
    return this.first;
  }

  /**
   * Handle one Login Request. Throws LoginError when the login must fail (the caller sends a
   * Login Response with that status and closes the connection).
   */
  handle(pdu: LoginRequestPdu): LoginReply {
    if (!this.first) this.begin(pdu);
    else this.checkConsistent(pdu);

    if (pdu.csg !== this.stage) {
      throw new LoginError(`login request for stage ${pdu.csg} while in stage ${this.stage}`, LoginStatus.InitiatorError);
    }
    if (pdu.transit && (pdu.nsg === 2 || pdu.nsg <= pdu.csg)) {
      throw new LoginError(`invalid stage transition ${pdu.csg} -> ${pdu.nsg}`, LoginStatus.InitiatorError);
    }
    if (pdu.transit && pdu.continue) {
      throw new LoginError('login request with both T and C bits set', LoginStatus.InitiatorError);
    }

    // Text spanning several PDUs (C bit): acknowledge with an empty response until complete.
    this.pendingText.push(pdu.data);
    if (pdu.continue) {
      if (this.pendingText.reduce((n, b) => n + b.length, 0) > 65536) {
        throw new LoginError('login text too long', LoginStatus.InitiatorError);
      }
      return { transit: false, csg: pdu.csg, nsg: 0, keys: [], complete: false };
    }
    const data = this.pendingText.length === 1 ? this.pendingText[0] : Buffer.concat(this.pendingText);
    this.pendingText = [];
    let pairs: TextPair[];
    try {
      pairs = parseText(data);
    } catch (e) {
      throw new LoginError((e as TextFormatError).message, LoginStatus.InitiatorError);
    }

    // RFC 7143 §6.1/§6.2: a key appears at most once (security keys included: a Map would
    // silently keep the last one).
    const seen = new Set<string>();
    for (const [k] of pairs) {
      if (seen.has(k)) throw new LoginError(`key ${k} appears twice in one login request`, LoginStatus.InitiatorError);
      seen.add(k);
    }

    const isFirstText = this.negotiator === undefined;
    if (isFirstText) this.identify(pairs);
    const negotiator = this.negotiator!;

    const security = pairs.filter(([k]) => SECURITY_KEYS.test(k));
    const operational = pairs.filter(([k]) => !SECURITY_KEYS.test(k));
    const keys: TextPair[] = [];

    if (this.stage === LoginStage.Security) {
      keys.push(...this.authenticate(security));
    } else if (security.length > 0) {
      throw new LoginError(`security key ${security[0][0]} outside the security stage`, LoginStatus.InitiatorError);
    }

    try {
      keys.push(...negotiator.respond(operational));
    } catch (e) {
      if (e instanceof NegotiationError) throw new LoginError(e.message, e.status);
      throw e;
    }

    if (isFirstText && this.sessionType === 'Normal' && this.target) {
      keys.push(['TargetPortalGroupTag', String(this.port?.tpgt ?? this.target.portalGroupTag)]);
      if (this.target.alias) keys.push(['TargetAlias', this.target.alias]);
    }

    if (this.stage === LoginStage.Operational || (pdu.transit && pdu.nsg === LoginStage.FullFeature)) {
      keys.push(...negotiator.declarations());
    }

    if (!pdu.transit) {
      return { transit: false, csg: this.stage!, nsg: 0, keys, complete: false };
    }

    // The initiator wants to move on.
    if (this.stage === LoginStage.Security && !this.authenticated) {
      // Exchange not finished: stay (the initiator continues with the next CHAP step).
      return { transit: false, csg: this.stage, nsg: 0, keys, complete: false };
    }
    let nsg = pdu.nsg as LoginStage;
    // Our own offers belong to the operational stage (or to a jump straight to full feature).
    if (!this.offersSent && (this.stage === LoginStage.Operational || nsg === LoginStage.FullFeature)) {
      this.offersSent = true;
      const offers = negotiator.targetOffers();
      if (offers.length > 0) {
        keys.push(...offers);
        if (this.stage === LoginStage.Security) {
          // Enter the operational stage, where the initiator answers our offers.
          this.stage = LoginStage.Operational;
          return { transit: true, csg: LoginStage.Security, nsg: LoginStage.Operational, keys, complete: false };
        }
        return { transit: false, csg: this.stage!, nsg: 0, keys, complete: false };
      }
    }
    if (negotiator.awaitingAnswers()) {
      return { transit: false, csg: this.stage!, nsg: 0, keys, complete: false };
    }
    const csg = this.stage!;
    if (nsg === LoginStage.FullFeature) {
      return { transit: true, csg, nsg, keys, complete: true };
    }
    nsg = LoginStage.Operational;
    this.stage = nsg;
    return { transit: true, csg, nsg, keys, complete: false };
  }

  private begin(pdu: LoginRequestPdu): void {
    this.first = pdu;
    // We speak version 0x00 only (RFC 7143 §11.12.4): a Version-min above it, or a Version-max
    // below Version-min, leaves no common version.
    if (pdu.versionMin > 0x00 || pdu.versionMax < pdu.versionMin) {
      throw new LoginError(`unsupported iSCSI version range ${pdu.versionMin}..${pdu.versionMax}`, LoginStatus.UnsupportedVersion);
    }
    if (pdu.csg !== LoginStage.Security && pdu.csg !== LoginStage.Operational) {
      throw new LoginError(`login cannot start in stage ${pdu.csg}`, LoginStatus.InitiatorError);
    }
    this.stage = pdu.csg as LoginStage;
  }

  private checkConsistent(pdu: LoginRequestPdu): void {
    const f = this.first!;
    if (!pdu.isid.equals(f.isid) || pdu.tsih !== f.tsih || pdu.cid !== f.cid) {
      throw new LoginError('ISID, TSIH or CID changed during login', LoginStatus.InitiatorError);
    }
    // RFC 7143 §11.12.4/§11.12.5: Version-max and Version-min are the same in every request.
    if (pdu.versionMax !== f.versionMax || pdu.versionMin !== f.versionMin) {
      throw new LoginError('Version-max or Version-min changed during login', LoginStatus.InitiatorError);
    }
  }

  /** First text of the login: who is this and which target? */
  private identify(pairs: TextPair[]): void {
    const get = (k: string) => pairs.find(([key]) => key === k)?.[1];
    const initiatorName = get('InitiatorName');
    if (initiatorName === undefined) {
      throw new LoginError('InitiatorName missing from the first login request', LoginStatus.MissingParameter);
    }
    if (!isValidIscsiName(initiatorName)) {
      throw new LoginError(`invalid InitiatorName "${initiatorName.slice(0, 64)}"`, LoginStatus.InitiatorError);
    }
    this.initiatorName = initiatorName;
    const sessionType = get('SessionType') ?? 'Normal';
    if (sessionType !== 'Normal' && sessionType !== 'Discovery') {
      throw new LoginError(`unsupported SessionType "${sessionType.slice(0, 32)}"`, LoginStatus.SessionTypeNotSupported);
    }
    this.sessionType = sessionType;
    if (sessionType === 'Normal') {
      const targetName = get('TargetName');
      if (targetName === undefined) {
        throw new LoginError('TargetName missing from the first login request', LoginStatus.MissingParameter);
      }
      const target = this.catalog.find(targetName);
      if (!target) throw new LoginError(`target ${targetName.slice(0, 224)} not found`, LoginStatus.NotFound);
      if (!target.allows(initiatorName)) {
        throw new LoginError(`initiator ${initiatorName} is not allowed on ${targetName}`, LoginStatus.AuthorizationFailure);
      }
      // The portal the initiator came in through must be one of the target's (RFC 7143 §4.4.1).
      const port = targetPortAt(target, this.local);
      if (!port) {
        const where = this.local ? `${this.local.host}:${this.local.port}` : 'this portal';
        throw new LoginError(`target ${targetName.slice(0, 224)} is not served on ${where}`, LoginStatus.NotFound);
      }
      this.target = target;
      this.port = port;
      this.settings = target.settings();
    } else {
      this.settings = this.catalog.discoverySettings();
    }
    this.negotiator = new Negotiator(this.settings.offer);
    this.negotiator.sessionType = sessionType;
    const context: AuthContext = { initiatorName, targetName: this.target?.name, sessionType };
    this.authMethods = this.catalog.auth.methodsFor(context);
    if (this.stage === LoginStage.Operational) {
      // The initiator skipped security negotiation: only acceptable without authentication.
      if (!this.authMethods.some((m) => m.name === 'None')) {
        throw new LoginError('authentication required', LoginStatus.AuthenticationFailure);
      }
      this.authenticated = true;
    }
  }

  private authenticate(security: TextPair[]): TextPair[] {
    const keys = new Map(security);
    if (keys.size !== security.length) {
      // A repeated CHAP_C/CHAP_R would otherwise silently override the first one.
      throw new LoginError('security key repeated in one login request', LoginStatus.InitiatorError);
    }
    const response: TextPair[] = [];
    const context: AuthContext = {
      initiatorName: this.initiatorName,
      targetName: this.target?.name,
      sessionType: this.sessionType,
    };
    try {
      const offered = keys.get('AuthMethod');
      if (offered !== undefined) {
        if (this.auth) throw new AuthError('AuthMethod negotiated twice', LoginStatus.InitiatorError);
        const wanted = offered.split(',');
        const method = wanted.map((w) => this.authMethods.find((m) => m.name === w)).find((m) => m !== undefined);
        if (!method) {
          throw new AuthError(`no acceptable AuthMethod in "${offered.slice(0, 64)}"`, LoginStatus.AuthenticationFailure);
        }
        response.push(['AuthMethod', method.name]);
        this.auth = method.start(context);
        keys.delete('AuthMethod');
      }
      if (!this.auth) {
        if (keys.size > 0) throw new AuthError('security keys before AuthMethod', LoginStatus.InitiatorError);
        // No AuthMethod offered: acceptable only when the policy allows None.
        if (this.authMethods.some((m) => m.name === 'None')) this.authenticated = true;
        else throw new AuthError('authentication required', LoginStatus.AuthenticationFailure);
        return response;
      }
      const step = this.auth.step(keys);
      response.push(...step.response);
      if (step.done) this.authenticated = true;
      return response;
    } catch (e) {
      if (e instanceof AuthError) throw new LoginError(e.message, e.status);
      throw e;
    }
  }

  /** The negotiator, which keeps serving Text requests in full feature phase. */
  negotiatorForFullFeature(): Negotiator {
    return this.negotiator!;
  }

  /** Parameters of the completed login. */
  result(tsih: number): LoginResult {
    const f = this.first!;
    return {
      isid: Buffer.from(f.isid),
      tsih,
      cid: f.cid,
      initialCmdSN: f.cmdSN,
      target: this.target,
      port: this.port,
      session: this.negotiator!.sessionParameters(),
      connection: this.negotiator!.connectionParameters(),
      settings: this.settings!,
    };
  }
}
