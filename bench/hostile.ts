/**
 * The `hostile` section: a normal session's throughput on an idle gateway against the same
 * while 8 sessions flood 8 MiB READs without reading their sockets and 8 send 8 MiB WRITEs
 * without the data (issue 13), with the gateway's peak RSS. Also `node dist/bench/hostile.js`.
 *
 * The normal session: `qemu-img bench` 64 KiB reads, depth 8, from 512 MiB on in 4 KiB steps
 * (away from the abusers' first 128 MiB). Best of `rounds` each way: interference only slows.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onCleanup, runTool, tail } from './lib/proc';
import { DEFAULT_GATEWAY_CLI, gatewayListening, spawnGateway } from './targets/gateway';
import { abusers, rss } from '../test/helpers/hostile';
import type { TestInitiator } from '../test/helpers/initiator';

const MiB = 1 << 20;
const DEMO_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:demo';

export interface HostileResult {
  readonly count: number;
  readonly idleSeconds: number;
  readonly busySeconds: number;
  /** Normal session throughput under abuse / idle (1 = unaffected). */
  readonly ratio: number;
  readonly rssStartMiB: number;
  readonly rssPeakMiB: number;
  readonly abusiveConnections: number;
}

async function benchSeconds(url: string, count: number): Promise<number> {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(count), '-d', '8', '-s', '65536', '-S', '4096', '-o', String(512 * MiB), url];
  const r = await runTool('qemu-img', args, { timeoutMs: 300_000 });
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`qemu-img bench failed (exit ${r.code}): ${tail(r.stdout + r.stderr, 10)}`);
  return Number(m[1]);
}

export async function runHostileBench(options: { seconds: number; rounds: number; dir?: string; cli?: string; log: (line: string) => void }): Promise<HostileResult> {
  const dataDir = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'igw-hostile-'));
  onCleanup(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  // An empty data dir on loopback: the gateway creates its demo target (1 GiB thin image).
  const { daemon, port } = await spawnGateway(options.cli ?? DEFAULT_GATEWAY_CLI, dataDir);
  try {
    await gatewayListening(daemon);
    const url = `iscsi://127.0.0.1:${port}/${DEMO_IQN}/0`;
    await benchSeconds(url, 2000); // warm-up: the first run after start is slow
    const probe = await benchSeconds(url, 4000) / 2;
    const count = Math.min(120_000, Math.max(2000, Math.round((2000 * options.seconds) / Math.max(probe, 0.05))));
    const best = async () => {
      let s = Infinity;
      for (let r = 0; r < options.rounds; r++) s = Math.min(s, await benchSeconds(url, count));
      return s;
    };
    const idleSeconds = await best();
    const rssStart = rss(daemon.pid);
    options.log(`  idle: ${count} x 64 KiB reads in ${idleSeconds.toFixed(2)} s; RSS ${(rssStart / MiB).toFixed(0)} MiB`);
    const live = new Set<TestInitiator>();
    let peak = rssStart;
    const sampler = setInterval(() => (peak = Math.max(peak, rss(daemon.pid))), 100);
    let active = true;
    const running = abusers(port, DEMO_IQN, 8, () => active, live);
    let busySeconds: number;
    try {
      await new Promise((r) => setTimeout(r, 1500));
      busySeconds = await best();
    } finally {
      active = false;
      for (const i of live) i.close();
      clearInterval(sampler);
    }
    // The abusers notice within half a second (or a login timeout).
    const connections = (await Promise.all(running)).reduce((a, b) => a + b, 0);
    return {
      count,
      idleSeconds,
      busySeconds,
      ratio: idleSeconds / busySeconds,
      rssStartMiB: rssStart / MiB,
      rssPeakMiB: peak / MiB,
      abusiveConnections: connections,
    };
  } finally {
    await daemon.stop('SIGTERM', 15_000);
  }
}

export function formatHostileBench(r: HostileResult): string {
  return [
    `normal session, ${r.count} x 64 KiB reads QD8: idle ${r.idleSeconds.toFixed(2)} s, under abuse ${r.busySeconds.toFixed(2)} s`,
    `throughput under abuse / idle: ${r.ratio.toFixed(2)} (goal >= 0.80)`,
    `gateway RSS: ${r.rssStartMiB.toFixed(0)} MiB idle, peak ${r.rssPeakMiB.toFixed(0)} MiB under abuse (${r.abusiveConnections} abusive connections)`,
  ].join('\n');
}

if (require.main === module) {
  runHostileBench({ seconds: 4, rounds: 2, log: (l) => console.log(l) }).then(
    (r) => console.log(formatHostileBench(r)),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
