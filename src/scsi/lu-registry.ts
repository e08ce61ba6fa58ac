/**
 * Every logical unit of the gateway process, by its NAA designator (VPD 83h). EXTENDED COPY
 * names its source and destination by designator, which may belong to another target of
 * the same gateway; this is where one LU finds the other.
 */
import type { LogicalUnit } from './logical-unit';

export class LogicalUnitRegistry {
  private readonly byNaa = new Map<string, Set<LogicalUnit>>();

  register(lu: LogicalUnit): void {
    const key = lu.naa.toString('hex');
    let set = this.byNaa.get(key);
    if (!set) this.byNaa.set(key, (set = new Set()));
    set.add(lu);
  }

  unregister(lu: LogicalUnit): void {
    const key = lu.naa.toString('hex');
    const set = this.byNaa.get(key);
    set?.delete(lu);
    if (set?.size === 0) this.byNaa.delete(key);
  }

  /** A logical unit with this NAA designator (the same image may be exported twice) that passes `accept`. */
  findByNaa(naa: Buffer, accept: (lu: LogicalUnit) => boolean = () => true): LogicalUnit | undefined {
    const set = this.byNaa.get(naa.toString('hex'));
    if (!set) return undefined;
    for (const lu of set) if (accept(lu)) return lu;
    return undefined;
  }
}

/** The registry of this process, shared by every ScsiTarget unless one is given. */
export const gatewayRegistry = new LogicalUnitRegistry();
