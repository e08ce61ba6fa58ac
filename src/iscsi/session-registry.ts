/**
 * All normal sessions of this gateway: TSIH allocation, lookup for session reinstatement
 * (same initiator, ISID and target: RFC 7143 §6.3.5) and for adding connections.
 */
import type { Session } from './session';

export class SessionRegistry {
  private readonly byKey = new Map<string, Session>();
  private readonly byTsih = new Map<number, Session>();
  private nextTsih = 1;

  /** A fresh non-zero TSIH not in use. */
  allocateTsih(): number {
    for (;;) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih === 0xffff ? 1 : this.nextTsih + 1;
      if (!this.byTsih.has(t)) return t;
    }
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
  }

  remove(session: Session): void {
    if (this.byKey.get(session.key) === session) this.byKey.delete(session.key);
    if (this.byTsih.get(session.tsih) === session) this.byTsih.delete(session.tsih);
  }

  all(): Session[] {
    return [...this.byTsih.values()];
  }

  ofTarget(targetName: string): Session[] {
    return this.all().filter((s) => s.target.name === targetName);
  }
}
