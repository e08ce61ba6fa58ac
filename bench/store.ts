/**
 * Store micro-benchmark at the BlockDevice level (no iSCSI):
 *   - 4 KiB random writes and reads at queue depth 32 on a store image versus the same
 *     workload on a plain sparse file through FileBackstore (same size, same offsets);
 *   - the same on a store image with a snapshot (steady state, every object already
 *     preserved) and on a clone (every object already copied up), for information;
 *   - snapshot creation time on a 100 GiB image holding data, with the image open in the
 *     same process (the daemon's API) and open in another process (the CLI case).
 *
 *   node dist/bench/store.js [--seconds N] [--dir DIR] [--json]
 * Exports runStoreBench() for the project's bench runner.
 */
import { fork, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../src/block/block-device';
import { FileBackstore } from '../src/block/file-backstore';
import { ImageStore } from '../src/store/store';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export interface StoreBenchRow {
  readonly workload: string;
  /** Medians over the rounds. */
  readonly file: number;
  readonly store: number;
  readonly ratio: number;
  /** Best round of each (less sensitive to other load on the machine). */
  readonly fileBest: number;
  readonly storeBest: number;
  readonly ratioBest: number;
  readonly unit: string;
}

export interface StoreBenchResult {
  readonly io: StoreBenchRow[];
  readonly snapshotCreateMs: { readonly inProcess: number[]; readonly otherProcess: number[]; readonly notOpen: number[] };
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function prefill(dev: BlockDevice): Promise<void> {
  const chunk = Buffer.alloc(MiB, 0x5a);
  for (let off = 0; off < dev.size(); off += MiB) await dev.write(off, chunk);
  await dev.flush();
}

/** IOPS of 4 KiB random I/O at queue depth `qd` for `seconds`. */
async function randomIo(dev: BlockDevice, kind: 'read' | 'write', seconds: number, qd = 32, seed = 7): Promise<number> {
  const r = rng(seed);
  const blocks = dev.size() / (4 * KiB);
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    const buf = Buffer.alloc(4 * KiB, 0xa5);
    while (process.hrtime.bigint() < deadline) {
      const off = Math.floor(r() * blocks) * 4 * KiB;
      if (kind === 'write') await dev.write(off, buf);
      else await dev.read(off, 4 * KiB, buf);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: qd }, worker));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (kind === 'write') await dev.flush();
  return ops / secs;
}

/** Write back all dirty data (sync(1)) so a run does not pay for the previous one. */
function settle(): void {
  spawnSync('sync');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Child mode: hold an image open for writing (the gateway) until told to stop. */
async function holder(root: string, spec: string): Promise<void> {
  const store = await ImageStore.open(root, { client: 'bench-holder' });
  const dev = await store.openImage(spec);
  process.send?.('ready');
  process.on('message', async (m) => {
    if (m === 'stop') {
      await dev.close();
      process.exit(0);
    }
  });
}

export async function runStoreBench(options: { seconds?: number; dir?: string; log?: (s: string) => void } = {}): Promise<StoreBenchResult> {
  const seconds = options.seconds ?? 2;
  const log = options.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const base = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'store-bench-'));
  const size = GiB;
  try {
    const store = await ImageStore.open(path.join(base, 'store'), { client: 'bench' });
    await store.createPool('bench');
    const file = await FileBackstore.open({ path: path.join(base, 'plain.img'), createSize: size });
    await store.createImage('bench/plain', { size });
    const img = await store.openImage('bench/plain');
    log('prefilling 1 GiB on both...');
    await prefill(file);
    await prefill(img);

    // Steady-state variants: a snapshot whose objects are all preserved, a clone fully copied up.
    await store.createImage('bench/snapped', { size });
    const snapped = await store.openImage('bench/snapped');
    await prefill(snapped);
    await store.createSnapshot('bench/snapped@s');
    await prefill(snapped);
    await store.createImage('bench/golden', { size });
    const golden = await store.openImage('bench/golden');
    await prefill(golden);
    await golden.close();
    await store.createSnapshot('bench/golden@gold');
    await store.protectSnapshot('bench/golden@gold');
    await store.cloneImage('bench/golden@gold', 'bench/clone');
    const clone = await store.openImage('bench/clone');
    await prefill(clone);

    const io: StoreBenchRow[] = [];
    const devices: Array<[string, BlockDevice]> = [
      ['file', file],
      ['store', img],
      ['snapshot', snapped],
      ['clone', clone],
    ];
    for (const kind of ['write', 'read'] as const) {
      // Every round runs every device, in a rotated order, each starting with no dirty data
      // anywhere; medians over the rounds. Drift and writeback noise then hit all alike.
      const runs = new Map<string, number[]>(devices.map(([n]) => [n, []]));
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < devices.length; j++) {
          const [name, dev] = devices[(i + j) % devices.length];
          settle();
          runs.get(name)!.push(await randomIo(dev, kind, seconds, 32, 11 + i));
        }
      }
      const m = (n: string): number => median(runs.get(n)!);
      const b = (n: string): number => Math.max(...runs.get(n)!);
      log(`4k rand${kind}: ` + devices.map(([n]) => `${n} ${runs.get(n)!.map((x) => x.toFixed(0)).join('/')}`).join('  '));
      const row = (workload: string, n: string): StoreBenchRow => ({
        workload,
        file: m('file'),
        store: m(n),
        ratio: m(n) / m('file'),
        fileBest: b('file'),
        storeBest: b(n),
        ratioBest: b(n) / b('file'),
        unit: 'IOPS',
      });
      io.push(row(`4k rand${kind} QD32`, 'store'));
      io.push(row(`4k rand${kind} QD32, image with a snapshot`, 'snapshot'));
      io.push(row(`4k rand${kind} QD32, clone (copied up)`, 'clone'));
    }
    await snapped.close();
    await clone.close();
    await img.close();
    await file.close();

    // Snapshot creation on a 100 GiB image holding 1 GiB of data spread over it.
    log('writing 1 GiB spread over a 100 GiB image...');
    await store.createImage('bench/big', { size: 100 * GiB });
    let big = await store.openImage('bench/big');
    const chunk = Buffer.alloc(MiB, 0x77);
    for (let i = 0; i < 1024; i++) await big.write(Math.floor((i * 100 * GiB) / 1024 / MiB) * MiB, chunk);
    await big.flush();
    const time = async (name: string): Promise<number> => {
      const t0 = process.hrtime.bigint();
      await store.createSnapshot(`bench/big@${name}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const touch = async (dev: BlockDevice, i: number): Promise<void> => {
      for (let k = 0; k < 8; k++) await dev.write(((i * 8 + k) * 997 * MiB) % (100 * GiB), Buffer.alloc(4 * KiB, i));
      await dev.flush();
    };
    const inProcess: number[] = [];
    for (let i = 0; i < 5; i++) {
      await touch(big, i);
      inProcess.push(await time(`in${i}`));
    }
    await big.close();
    const notOpen: number[] = [];
    for (let i = 0; i < 5; i++) notOpen.push(await time(`closed${i}`));
    const otherProcess: number[] = [];
    const child = fork(__filename, ['--holder', path.join(base, 'store'), 'bench/big'], { stdio: 'inherit' });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
    });
    for (let i = 0; i < 5; i++) otherProcess.push(await time(`other${i}`));
    child.send('stop');
    await new Promise((r) => child.once('exit', r));
    big = await store.openImage('bench/big');
    await big.close();
    await store.close();
    return { io, snapshotCreateMs: { inProcess, otherProcess, notOpen } };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

export function formatStoreBench(r: StoreBenchResult): string {
  const pc = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const rows = r.io.map((x) => [x.workload, x.file.toFixed(0), x.store.toFixed(0), pc(x.ratio), x.fileBest.toFixed(0), x.storeBest.toFixed(0), pc(x.ratioBest)]);
  const head = ['workload (BlockDevice level, 1 GiB)', 'file IOPS', 'store IOPS', 'store/file', 'best file', 'best store', 'best ratio'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  const ms = (xs: number[]): string => `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
  return [
    'medians and best of 5 rounds; every round runs all devices, rotated',
    line(head),
    ...rows.map(line),
    '',
    'snapshot create, 100 GiB image holding 1 GiB of data:',
    `  image open in this process (daemon API)    ${ms(r.snapshotCreateMs.inProcess)}`,
    `  image open in another process (CLI)        ${ms(r.snapshotCreateMs.otherProcess)}`,
    `  image not open                             ${ms(r.snapshotCreateMs.notOpen)}`,
  ].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--holder') {
    void holder(args[1], args[2]);
  } else {
    const get = (name: string): string | undefined => {
      const i = args.indexOf(name);
      return i >= 0 ? args[i + 1] : undefined;
    };
    runStoreBench({ seconds: get('--seconds') ? Number(get('--seconds')) : undefined, dir: get('--dir') })
      .then((r) => {
        if (args.includes('--json')) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        else process.stdout.write(formatStoreBench(r) + '\n');
      })
      .catch((e) => {
        process.stderr.write(`store bench failed: ${(e as Error).stack}\n`);
        process.exit(1);
      });
  }
}
