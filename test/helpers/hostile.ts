/**
 * Hostile initiators for memory and back-pressure tests and the benchmark: sessions that flood
 * 8 MiB READs and never read their sockets, and sessions that send 8 MiB WRITEs and never send
 * the data. They come back whenever the target drops them, until told to stop.
 */
import * as fs from 'node:fs';
import { TestInitiator } from './initiator';
import { cdb10 } from './cdb';

export const MIB = 1024 * 1024;
const IO = 8 * MIB;
const BLOCKS = IO / 512;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** VmRSS of a process, in bytes. */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

async function loggedIn(port: number, target: string, isid: string): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  try {
    await i.login({ targetName: target, isid: Buffer.from(isid, 'hex'), initiatorName: `iqn.2024-01.test:hostile-${isid}` });
    await i.clearUnitAttentions();
  } catch (e) {
    i.close();
    throw e;
  }
  return i;
}

/**
 * One abusive initiator: log in, stop reading, fill the CmdSN window with 8 MiB commands (READs
 * in the LU's first 64 MiB, or WRITEs in the next 64 MiB whose data never comes), and when
 * dropped, come back, while `active()`. Returns the number of connections it made.
 */
export async function abuse(port: number, target: string, isid: string, kind: 'read' | 'write', active: () => boolean, live: Set<TestInitiator>): Promise<number> {
  let connections = 0;
  while (active()) {
    let i: TestInitiator;
    try {
      i = await loggedIn(port, target, isid);
    } catch {
      await sleep(100); // refused (limits) or dropped during login: try again
      continue;
    }
    connections++;
    live.add(i);
    i.stopReading();
    const window = (((i.maxCmdSN ?? i.cmdSN) - i.cmdSN + 1) >>> 0) & 0xffff;
    i.batch(() => {
      for (let n = 0; n < Math.max(1, window); n++) {
        // Apart from each other and from the normal session's region: a WRITE whose data never
        // comes rightly holds back overlapping commands (SBC ordering), which is not starvation.
        const lba = ((n % 8) + (kind === 'write' ? 8 : 0)) * BLOCKS;
        if (kind === 'read') i.issue(cdb10(0x28, lba, BLOCKS), { read: IO });
        else i.issue(cdb10(0x2a, lba, BLOCKS), { write: IO });
      }
    });
    // A paused socket does not see the target's FIN: a bare immediate NOP-Out every half second
    // (no answer, no CmdSN) fails with EPIPE once the target has dropped us.
    while (!i.closed && active()) {
      await sleep(500);
      i.noOp();
    }
    live.delete(i);
    i.close();
  }
  return connections;
}

/** `sessions` stalled readers and as many data-withholding writers while `active()`. */
export function abusers(port: number, target: string, sessions: number, active: () => boolean, live: Set<TestInitiator>): Array<Promise<number>> {
  const all: Array<Promise<number>> = [];
  for (let n = 0; n < sessions; n++) {
    all.push(abuse(port, target, `8000000a${n.toString(16).padStart(4, '0')}`, 'read', active, live));
    all.push(abuse(port, target, `8000000b${n.toString(16).padStart(4, '0')}`, 'write', active, live));
  }
  return all;
}
