/**
 * Authentication during the security negotiation stage (RFC 7143 §6.3, §12.1). The login
 * state machine negotiates AuthMethod from the methods a policy allows, then feeds the
 * security keys of each request to the chosen method's exchange until it completes.
 * `None` lives here; CHAP plugs in as another AuthMethodHandler.
 */
import { LoginStatus } from '../pdu/opcodes';
import { TextPair } from '../pdu/text';

export interface AuthContext {
  readonly initiatorName: string;
  /** Undefined for discovery sessions. */
  readonly targetName: string | undefined;
  readonly sessionType: 'Normal' | 'Discovery';
}

export interface AuthStepResult {
  /** Keys to send back. */
  readonly response: TextPair[];
  /** The exchange completed successfully: the initiator may leave the security stage. */
  readonly done: boolean;
}

/** One running exchange (per connection login). Throw AuthError to fail the login. */
export interface AuthExchange {
  step(keys: ReadonlyMap<string, string>): AuthStepResult;
}

export interface AuthMethodHandler {
  /** AuthMethod value, e.g. "None" or "CHAP". */
  readonly name: string;
  start(context: AuthContext): AuthExchange;
}

/** Which methods are acceptable for a login, in the target's order of preference. */
export interface AuthPolicy {
  methodsFor(context: AuthContext): readonly AuthMethodHandler[];
}

export class AuthError extends Error {
  constructor(
    message: string,
    readonly status: LoginStatus = LoginStatus.AuthenticationFailure,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export const NO_AUTHENTICATION: AuthMethodHandler = {
  name: 'None',
  start: () => ({ step: () => ({ response: [], done: true }) }),
};

/** The policy of a gateway without credentials configured: everyone may log in without CHAP. */
export const OPEN_POLICY: AuthPolicy = {
  methodsFor: () => [NO_AUTHENTICATION],
};
