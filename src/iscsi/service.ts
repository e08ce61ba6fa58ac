/**
 * The iSCSI target service of one gateway: accepts connections from the portals, keeps the
 * session registry, and shuts down cleanly (initiators asked to log out, then dropped).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../util/log';
import { Connection } from './connection';
import { SessionRegistry } from './session-registry';
import { TargetCatalog } from './target-node';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, LoginThrottleOptions } from './login-throttle';

export class IscsiService {
  readonly sessions = new SessionRegistry();
  /** Failed logins by class and per-address throttling (read by metrics). */
  readonly loginThrottle: LoginThrottle;
  private readonly connections = new Set<Connection>();

  constructor(
    private readonly catalog: TargetCatalog,
    private readonly log: Logger,
    throttle: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE,
  ) {
    this.loginThrottle = new LoginThrottle(throttle);
  }

  accept(socket: Socket): void {
    new Connection(socket, {
      catalog: this.catalog,
      sessions: this.sessions,
      log: this.log,
      connections: this.connections,
      throttle: this.loginThrottle,
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Drop every session of a target (target removed or reconfigured). */
  async closeTarget(targetName: string, reason: string): Promise<void> {
    await Promise.all(this.sessions.ofTarget(targetName).map((s) => s.terminate(reason)));
  }

  /**
   * Clean shutdown: ask initiators to log out (Async Message), wait up to `graceMs` for them,
   * then close whatever is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    for (const c of this.connections) c.requestLogout(Math.ceil(graceMs / 1000));
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all([...this.connections].map((c) => c.close('gateway shutting down')));
  }
}
