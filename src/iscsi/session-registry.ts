/**
 * All normal sessions of this gateway: TSIH allocation, lookup for session reinstatement
 * (same initiator, ISID and target: RFC 7143 §6.3.5) and for adding connections.
 */
import { LoginStatus } from '../pdu/opcodes';
import type { DataPathLimits } from './limits';
import type { Session } from './session';

/** No TSIH is free (65535 sessions): the login fails with Out of resources. */
export class TsihExhaustedError extends Error {
  readonly status = LoginStatus.OutOfResources;
  constructor() {
    super('no free TSIH: too many sessions');
    this.name = 'TsihExhaustedError';
  }
}

export class SessionRegistry {
  private readonly byKey = new Map<string, Session>();
  private readonly byTsih = new Map<number, Session>();
  private readonly perTarget = new Map<string, number>();
  private readonly reserved = new Set<number>();
  private readonly listeners = new Set<() => void>();
  private nextTsih = 1;

  /** Called after a session was added or removed (the daemon publishes its session list). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's failure is its own; the registry stays consistent
      }
    }
  }

  /**
   * A fresh non-zero TSIH not in use (by a session or a discovery login holding one). Tries each
   * of the 65535 values at most once, so it cannot loop forever.
   */
  allocateTsih(): number {
    for (let tries = 0; tries < 0xffff; tries++) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih === 0xffff ? 1 : this.nextTsih + 1;
      if (!this.byTsih.has(t) && !this.reserved.has(t)) return t;
    }
    throw new TsihExhaustedError();
  }

  /** Hold a TSIH for a session that is not in the registry (discovery) until released. */
  reserveTsih(tsih: number): void {
    this.reserved.add(tsih);
  }

  releaseTsih(tsih: number): void {
    this.reserved.delete(tsih);
  }

  /** Commands of all sessions of a target in the SCSI layer. */
  private readonly running = new Map<string, number>();

  tasksRunning(targetName: string, delta: number): void {
    const n = (this.running.get(targetName) ?? 0) + delta;
    if (n > 0) this.running.set(targetName, n);
    else this.running.delete(targetName);
  }

  /**
   * TASK SET FULL policy: a session may always have `minSessionTasks` commands in the SCSI layer;
   * beyond that only its share of the target's (`targetTasks` / sessions) and only while a quarter
   * of `targetTasks` stays free for the guaranteed commands of other (and new) sessions. Tasks
   * already running cannot be taken back, so the reserve is what keeps a newcomer from starving.
   */
  mayRun(targetName: string, running: number, limits: Pick<DataPathLimits, 'minSessionTasks' | 'targetTasks'>): boolean {
    if (running < limits.minSessionTasks) return true;
    const total = this.running.get(targetName) ?? 0;
    const share = Math.floor(limits.targetTasks / Math.max(1, this.countOfTarget(targetName)));
    return running < share && total < limits.targetTasks - Math.floor(limits.targetTasks / 4);
  }

  /** Normal sessions of a target (for its sessions' share of the task set). */
  countOfTarget(targetName: string): number {
    return this.perTarget.get(targetName) ?? 0;
  }

  findByKey(key: string): Session | undefined {
    return this.byKey.get(key);
  }

  findByTsih(tsih: number): Session | undefined {
    return this.byTsih.get(tsih);
  }

  add(session: Session): void {
    this.byKey.set(session.key, session);
    this.byTsih.set(session.tsih, session);
    this.perTarget.set(session.target.name, this.countOfTarget(session.target.name) + 1);
    this.changed();
  }

  remove(session: Session): void {
    if (this.byKey.get(session.key) === session) this.byKey.delete(session.key);
    if (this.byTsih.get(session.tsih) !== session) return;
    this.byTsih.delete(session.tsih);
    const n = this.countOfTarget(session.target.name) - 1;
    if (n > 0) this.perTarget.set(session.target.name, n);
    else this.perTarget.delete(session.target.name);
    this.changed();
  }

  all(): Session[] {
    return [...this.byTsih.values()];
  }

  ofTarget(targetName: string): Session[] {
    return this.all().filter((s) => s.target.name === targetName);
  }
}
