/**
 * The iSCSI target service of one gateway: accepts connections from the portals, keeps the
 * session registry, and shuts down cleanly (initiators asked to log out, then dropped).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../util/log';
import { Connection } from './connection';
import { DataOutBudget, DataPathLimits, limitsFromEnv } from './limits';
import { SessionRegistry } from './session-registry';
import { TargetCatalog } from './target-node';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, LoginThrottleOptions } from './login-throttle';
import { RateLimitedLog } from '../util/log';

export class IscsiService {
  readonly sessions = new SessionRegistry();
  /** Failed logins by class and per-address throttling (read by metrics). */
  readonly loginThrottle: LoginThrottle;
  private readonly connections = new Set<Connection>();
  readonly limits: DataPathLimits;
  private readonly dataOut: DataOutBudget;
  /** Open connections per local portal ("host:port") and per initiator address. */
  private readonly perPortal = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private readonly refusals: RateLimitedLog;

  constructor(
    private readonly catalog: TargetCatalog,
    private readonly log: Logger,
    throttle: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE,
    limits?: DataPathLimits,
  ) {
    this.loginThrottle = new LoginThrottle(throttle);
    this.limits = limits ?? limitsFromEnv();
    this.dataOut = new DataOutBudget(this.limits);
    this.refusals = new RateLimitedLog(log);
  }

  accept(socket: Socket): void {
    const portal = `${socket.localAddress}:${socket.localPort}`;
    const address = socket.remoteAddress ?? '';
    const onPortal = this.perPortal.get(portal) ?? 0;
    const fromAddress = this.perAddress.get(address) ?? 0;
    let refusal: string | undefined;
    if (onPortal >= this.limits.connectionsPerPortal) refusal = `portal ${portal} has ${onPortal} connections (limit ${this.limits.connectionsPerPortal})`;
    else if (fromAddress >= this.limits.connectionsPerAddress) {
      refusal = `initiator address ${address} has ${fromAddress} connections (limit ${this.limits.connectionsPerAddress})`;
    }
    if (refusal) {
      this.refusals.warn('connection-limit', { peer: `${address}:${socket.remotePort}` }, `connection refused: ${refusal}`);
      // Far over the limit: not even a login answer (each refused connection costs memory too).
      if (onPortal >= 2 * this.limits.connectionsPerPortal || fromAddress >= 2 * this.limits.connectionsPerAddress) {
        socket.destroy();
        return;
      }
    }
    const count = (map: Map<string, number>, key: string, delta: number) => {
      const n = (map.get(key) ?? 0) + delta;
      if (n > 0) map.set(key, n);
      else map.delete(key);
    };
    count(this.perPortal, portal, 1);
    count(this.perAddress, address, 1);
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      count(this.perPortal, portal, -1);
      count(this.perAddress, address, -1);
    };
    socket.once('close', uncount);
    new Connection(socket, {
      catalog: this.catalog,
      sessions: this.sessions,
      log: this.log,
      connections: this.connections,
      throttle: this.loginThrottle,
      limits: this.limits,
      dataOut: this.dataOut,
      refusal,
      onClosed: uncount,
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
