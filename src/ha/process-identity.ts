/**
 * Who holds a lock, precisely enough to fence it: pid plus the process's start time (in clock
 * ticks since boot, /proc/<pid>/stat field 22) plus the boot id, so a recycled pid or a
 * previous boot's record is never mistaken for the holder. Fencing on one host is what Ceph's
 * blocklist is across hosts: SIGKILL the stale holder and wait until it is gone, so that it
 * can never land another write.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface ProcessIdentity {
  readonly pid: number;
  /** /proc/<pid>/stat starttime (clock ticks after boot). */
  readonly startTime: number;
  /** /proc/sys/kernel/random/boot_id. */
  readonly bootId: string;
  readonly host: string;
}

export type Liveness = 'alive' | 'gone' | 'other-host';

export class FenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FenceError';
  }
}

let cachedBootId: string | undefined;

export function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = 'unknown';
    }
  }
  return cachedBootId;
}

/** State and start time of a process from /proc/<pid>/stat; undefined when there is none. */
export function procStat(pid: number): { readonly state: string; readonly startTime: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
  const startTime = Number(rest[19]);
  if (!rest[0] || !Number.isFinite(startTime)) return undefined;
  return { state: rest[0], startTime };
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  if (!self) {
    const st = procStat(process.pid);
    self = { pid: process.pid, startTime: st?.startTime ?? 0, bootId: bootId(), host: os.hostname() };
  }
  return self;
}

export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.startTime === b.startTime && a.bootId === b.bootId && a.host === b.host;
}

/**
 * Is the process `id` names still running? A zombie counts as gone: it holds no file, no lock
 * and can issue no write any more.
 */
export function liveness(id: ProcessIdentity): Liveness {
  if (id.host !== os.hostname()) return 'other-host';
  if (id.bootId !== bootId()) return 'gone';
  const st = procStat(id.pid);
  if (!st || st.startTime !== id.startTime) return 'gone';
  return st.state === 'Z' || st.state === 'X' ? 'gone' : 'alive';
}

/**
 * Fence a stale holder: SIGKILL exactly that process (verified by start time) and wait until it
 * is gone (exited or a zombie: its writes, locks and files are over). Resolves with how long it
 * took; rejects when the holder is on another host or outlives `timeoutMs`.
 */
export async function fence(id: ProcessIdentity, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  const l = liveness(id);
  if (l === 'gone') return 0;
  if (l === 'other-host') throw new FenceError(`cannot fence pid ${id.pid} on ${id.host} from ${os.hostname()}: the embedded store is shared by the gateways of one host only`);
  if (sameProcess(id, selfIdentity())) throw new FenceError('refusing to fence this process itself');
  try {
    process.kill(id.pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw new FenceError(`cannot kill pid ${id.pid}: ${(e as Error).message}`);
  }
  let wait = 2;
  while (liveness(id) === 'alive') {
    if (Date.now() - started > timeoutMs) throw new FenceError(`pid ${id.pid} is still alive ${timeoutMs} ms after SIGKILL`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 20);
  }
  return Date.now() - started;
}
