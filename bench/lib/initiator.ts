/**
 * What the harness asks a target through libiscsi before measuring it: is the LUN served,
 * with which block size and capacity.
 */
import { runTool, sleep, tail } from './proc';

export const INITIATOR_IQN = 'iqn.2024-01.localhost.iscsi-gateway-bench:initiator';

export interface LunProbe {
  readonly blockSize: number;
  readonly sizeBytes: number;
}

function parseReadCapacity(out: string): LunProbe | undefined {
  const block = /LOGICAL BLOCK LENGTH IN BYTES:(\d+)/.exec(out);
  const size = /Total size:(\d+)/.exec(out);
  if (!block || !size) return undefined;
  return { blockSize: Number(block[1]), sizeBytes: Number(size[1]) };
}

/**
 * READ CAPACITY(16) through iscsi-readcapacity16, retried until `timeoutMs` (a target may
 * accept connections a moment before its LUNs are ready).
 */
export async function probeLun(url: string, timeoutMs = 15_000): Promise<LunProbe> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  while (true) {
    const r = await runTool('iscsi-readcapacity16', ['-i', INITIATOR_IQN, url], { timeoutMs: 10_000 });
    const probe = r.code === 0 ? parseReadCapacity(r.stdout) : undefined;
    if (probe) return probe;
    last = `${r.command}: ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n${tail(r.stdout + r.stderr, 8)}`;
    if (Date.now() > deadline) throw new Error(`LUN not served: ${last}`);
    await sleep(200);
  }
}
