/**
 * Offloads against doing the same work through the initiator, on one gateway daemon with two
 * 1 GiB store images (LUN 0 = source, full of data; LUN 1 = destination) and the demo's
 * controls (thin, write-back cache):
 *
 *   - zeroing 1 GiB with WRITE SAME 16 + UNMAP (`qemu-io write -z -u`), with WRITE SAME 16
 *     alone (`write -z`) and deallocating it with UNMAP (`discard`), each against writing
 *     1 GiB of zeros through the initiator (`qemu-img bench -w`, 128 KiB, QD16);
 *   - copying 1 GiB with EXTENDED COPY (`qemu-img convert -C`, QEMU's copy offload) against
 *     `qemu-img convert` reading and writing through the initiator.
 *
 * Before every measurement the destination is rewritten with data (untimed), so the offload
 * has real work to do; after it the destination is read back and checked (untimed) and its
 * space reported by `iscsi-gateway rbd du`. Times are the client's wall time, login included
 * (the same for both sides); medians over the rounds.
 *
 *   node dist/bench/offload.js [--rounds N] [--dir DIR] [--json]
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, ToolResult, commandLine, onCleanup, runTool, tail } from './lib/proc';
import { median as medianOf } from './lib/report';
import { gatewayListening, spawnGateway } from './targets/gateway';

const MiB = 1 << 20;
const GiB = 1 << 30;
const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:bench-offload';
/** The demo LUN's controls: thin provisioning on, write-back cache. */
const CONTROLS = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1, emulate_write_cache: 1 };
const SOURCE_PATTERN = 0x5a;
const FILL_PATTERN = 0xc3;

export interface OffloadRow {
  readonly id: string;
  readonly title: string;
  readonly offloadCommand: string;
  readonly initiatorCommand: string;
  /** Median wall seconds. */
  readonly offloadS: number;
  readonly initiatorS: number;
  /** initiator time / offload time: > 1 means the offload is faster. */
  readonly speedup: number;
  readonly offloadRuns: number[];
  readonly initiatorRuns: number[];
  /** Destination bytes allocated after the offload and after the initiator's version. */
  readonly usedAfterOffload: number;
  readonly usedAfterInitiator: number;
}

export interface OffloadResult {
  readonly rounds: number;
  readonly size: number;
  readonly controls: Record<string, number>;
  readonly rows: OffloadRow[];
}

async function checked(cmd: string, args: string[], timeoutMs = 300_000): Promise<ToolResult> {
  const r = await runTool(cmd, args, { timeoutMs });
  const out = r.stdout + r.stderr;
  // qemu-io reports a failed verification or I/O error on stdout with exit code 0.
  if (r.code !== 0 || /Pattern verification failed|error/i.test(out)) {
    throw new Error(`${r.command} failed (exit ${String(r.code)}):\n${tail(out)}`);
  }
  return r;
}

interface Op {
  readonly cmd: string;
  readonly args: (src: string, dst: string) => string[];
}

interface Spec {
  readonly id: string;
  readonly title: string;
  readonly offload: Op;
  readonly initiator: Op;
  /** What the destination holds afterwards. */
  readonly expect: number;
}

/** 1 GiB of zeros through the initiator: qemu-img bench writes 8192 × 128 KiB at QD16. */
const WRITE_ZEROS: Op = {
  cmd: 'qemu-img',
  args: (_s, d) => ['bench', '-f', 'raw', '-t', 'none', '-w', '--pattern=0', '-c', String(GiB / (128 * 1024)), '-d', '16', '-s', '131072', d],
};

const SPECS: Spec[] = [
  {
    id: 'zero-ws-unmap',
    title: 'zero 1 GiB: WRITE SAME 16 + UNMAP vs writing zeros',
    offload: { cmd: 'qemu-io', args: (_s, d) => ['-f', 'raw', '-c', 'write -z -u 0 1G', d] },
    initiator: WRITE_ZEROS,
    expect: 0,
  },
  {
    id: 'zero-ws',
    title: 'zero 1 GiB: WRITE SAME 16 vs writing zeros',
    offload: { cmd: 'qemu-io', args: (_s, d) => ['-f', 'raw', '-c', 'write -z 0 1G', d] },
    initiator: WRITE_ZEROS,
    expect: 0,
  },
  {
    id: 'unmap',
    title: 'deallocate 1 GiB: UNMAP vs writing zeros',
    offload: { cmd: 'qemu-io', args: (_s, d) => ['-f', 'raw', '-c', 'discard 0 1G', d] },
    initiator: WRITE_ZEROS,
    expect: 0,
  },
  {
    id: 'xcopy',
    title: 'copy 1 GiB LUN 0 -> LUN 1: EXTENDED COPY vs read + write',
    // -W: out-of-order writes, else qemu-img issues one copy (or write) at a time.
    offload: { cmd: 'qemu-img', args: (s, d) => ['convert', '-C', '-W', '-n', '-f', 'raw', '-O', 'raw', s, d] },
    initiator: { cmd: 'qemu-img', args: (s, d) => ['convert', '-W', '-n', '-f', 'raw', '-O', 'raw', s, d] },
    expect: SOURCE_PATTERN,
  },
];

/** Median of a non-empty list (NaN for none). */
function median(xs: readonly number[]): number {
  return medianOf(xs) ?? NaN;
}

export async function runOffloadBench(
  options: { rounds?: number; dir?: string; cli?: string; only?: string[]; log?: (s: string) => void } = {},
): Promise<OffloadResult> {
  const rounds = options.rounds ?? 3;
  const log = options.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const cli = options.cli ?? path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} not found: build first (npm run build)`);
  const specs = options.only ? SPECS.filter((s) => options.only!.some((o) => s.id.startsWith(o))) : SPECS;
  const base = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'igw-offload-'));
  const dropScratch = onCleanup(async () => fs.rmSync(base, { recursive: true, force: true }));
  const dataDir = path.join(base, 'data');
  const rbd = (args: string[]) => checked(process.execPath, [cli, 'rbd', '--data', dataDir, ...args]);
  let daemon: Daemon | undefined;
  const stopDaemon = onCleanup(async () => {
    await daemon?.stop('SIGTERM', 20_000);
  });
  try {
    await rbd(['pool', 'create', 'bench']);
    for (const name of ['src', 'dst']) await rbd(['create', '--size', '1G', `bench/${name}`]);
    const disk = (image: string) => ({ backstore: 'store', pool: 'bench', image, wwn: randomUUID(), controls: CONTROLS });
    const config = {
      version: 1,
      epoch: 0,
      disks: { 'bench/src': disk('src'), 'bench/dst': disk('dst') },
      targets: {
        [IQN]: { portal_group_tag: 1, acl_enabled: false, controls: {}, disks: { 'bench/src': { lun_id: 0 }, 'bench/dst': { lun_id: 1 } }, clients: {} },
      },
    };
    fs.writeFileSync(path.join(dataDir, 'gateway.json'), JSON.stringify(config, null, 2) + '\n');
    const started = await spawnGateway(cli, dataDir);
    daemon = started.daemon;
    const port = started.port;
    await gatewayListening(daemon);
    const src = `iscsi://127.0.0.1:${port}/${IQN}/0`;
    const dst = `iscsi://127.0.0.1:${port}/${IQN}/1`;
    const fill = (url: string, pattern: number) =>
      checked('qemu-img', ['bench', '-f', 'raw', '-t', 'none', '-w', `--pattern=${pattern}`, '-c', String(GiB / (128 * 1024)), '-d', '16', '-s', '131072', url]);
    const used = async (): Promise<number> => {
      const r = await rbd(['du', 'bench/dst', '--format', 'json']);
      return (JSON.parse(r.stdout) as { images: Array<{ used_size: number }> }).images[0].used_size;
    };
    log(`offload bench: filling the 1 GiB source LUN with 0x${SOURCE_PATTERN.toString(16)} ...`);
    await fill(src, SOURCE_PATTERN);

    const rows: OffloadRow[] = [];
    for (const spec of specs) {
      const runs = { offload: [] as number[], initiator: [] as number[] };
      const usedAfter = { offload: 0, initiator: 0 };
      for (let round = 0; round < rounds; round++) {
        for (const side of round % 2 === 0 ? (['offload', 'initiator'] as const) : (['initiator', 'offload'] as const)) {
          await fill(dst, FILL_PATTERN);
          const op = spec[side];
          const r = await checked(op.cmd, op.args(src, dst));
          runs[side].push(r.wallMs / 1000);
          await checked('qemu-io', ['-f', 'raw', '-c', `read -P ${spec.expect} 0 1G`, dst]);
          usedAfter[side] = await used();
          log(`  ${spec.id} round ${round + 1} ${side}: ${(r.wallMs / 1000).toFixed(2)} s, destination uses ${(usedAfter[side] / MiB).toFixed(0)} MiB`);
        }
      }
      const offloadS = median(runs.offload);
      const initiatorS = median(runs.initiator);
      rows.push({
        id: spec.id,
        title: spec.title,
        offloadCommand: commandLine(spec.offload.cmd, spec.offload.args('SRC', 'DST')),
        initiatorCommand: commandLine(spec.initiator.cmd, spec.initiator.args('SRC', 'DST')),
        offloadS,
        initiatorS,
        speedup: initiatorS / offloadS,
        offloadRuns: runs.offload,
        initiatorRuns: runs.initiator,
        usedAfterOffload: usedAfter.offload,
        usedAfterInitiator: usedAfter.initiator,
      });
    }
    return { rounds, size: GiB, controls: CONTROLS, rows };
  } finally {
    await daemon?.stop('SIGTERM', 20_000);
    stopDaemon();
    fs.rmSync(base, { recursive: true, force: true });
    dropScratch();
  }
}

export function formatOffloadBench(r: OffloadResult): string {
  const head = ['operation', 'offload s', 'initiator s', 'speedup', 'dst MiB after (offload / initiator)'];
  const rows = r.rows.map((x) => [
    x.title, x.offloadS.toFixed(2), x.initiatorS.toFixed(2), `${x.speedup.toFixed(1)}x`,
    `${(x.usedAfterOffload / MiB).toFixed(0)} / ${(x.usedAfterInitiator / MiB).toFixed(0)}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  return [
    `one daemon, two 1 GiB store-image LUNs, controls ${JSON.stringify(r.controls)}; medians of ${r.rounds} rounds, client wall time incl. login`,
    line(head),
    ...rows.map(line),
    ...r.rows.flatMap((x) => [`  ${x.id}: offload   ${x.offloadCommand}  (${x.offloadRuns.map((v) => v.toFixed(2)).join('/')} s)`, `  ${x.id}: initiator ${x.initiatorCommand}  (${x.initiatorRuns.map((v) => v.toFixed(2)).join('/')} s)`]),
  ].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  runOffloadBench({ rounds: get('--rounds') ? Number(get('--rounds')) : undefined, dir: get('--dir'), only: get('--only')?.split(',') })
    .then((r) => process.stdout.write((args.includes('--json') ? JSON.stringify(r, null, 2) : formatOffloadBench(r)) + '\n'))
    .catch((e: unknown) => {
      process.stderr.write(`offload bench failed: ${(e as Error).stack}\n`);
      process.exitCode = 1;
    });
}
