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
 *
 * And through the whole gateway (runStoreGatewayBench): one daemon exporting a store image and
 * a plain sparse file with the same controls, iscsi-perf 4k random read QD32 and qemu-img
 * bench 4k write QD32 against each, with the daemon's CPU per I/O:
 *
 *   node dist/bench/store.js --gateway [--seconds N] [--rounds N] [--dir DIR] [--json]
 *
 * Exports runStoreBench()/formatStoreBench() and runStoreGatewayBench()/formatStoreGatewayBench()
 * for the project's bench runner.
 */
import { fork, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../src/block/block-device';
import { FileBackstore } from '../src/block/file-backstore';
import { ImageStore } from '../src/store/store';
import { Daemon, ToolResult, cpuTimes, runTool } from './lib/proc';
import { median as medianOf } from './lib/report';
import { gatewayListening, spawnGateway } from './targets/gateway';
import { parseIscsiPerf } from './workloads/iscsi-perf';

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
  /** Median CPU time (user+system, all threads of this process) per I/O, microseconds. */
  readonly fileCpuUs: number;
  readonly storeCpuUs: number;
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

interface IoSample {
  readonly iops: number;
  /** CPU microseconds (user+system, every thread of this process) per I/O. */
  readonly cpuUs: number;
}

/** 4 KiB random I/O at queue depth `qd` for `seconds`: IOPS and CPU per I/O. */
async function randomIo(dev: BlockDevice, kind: 'read' | 'write', seconds: number, qd = 32, seed = 7): Promise<IoSample> {
  const r = rng(seed);
  const blocks = dev.size() / (4 * KiB);
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  const cpu0 = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpu0);
  if (kind === 'write') await dev.flush();
  return { iops: ops / secs, cpuUs: (cpu.user + cpu.system) / ops };
}

/** Write back all dirty data (sync(1)) so a run does not pay for the previous one. */
function settle(): void {
  spawnSync('sync');
}

/** Every regular file below `dir`. */
function filesBelow(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesBelow(p) : e.isFile() ? [p] : [];
  });
}

/**
 * Give every data file the same page-cache state: write back, evict (dd iflag=nocache count=0
 * is posix_fadvise(DONTNEED) on the whole file), read back sequentially. Without this the
 * comparison measures how each file's cache was filled, not the backstore: since Linux 6.x the
 * page cache uses large folios for large writes and readahead, and a 4 KiB overwrite of a
 * cached large folio costs the kernel ~2.5x the CPU of one on a 4 KiB folio (on ext4,
 * ext4_block_write_begin walks every buffer head of the folio: 77 % of the CPU in perf). A clone's head
 * filled by copy-up (copy_file_range) holds small folios, a file filled by 1 MiB writes large
 * ones — that alone made "clone writes" look 2x faster (or, with other timing, slower) than
 * the plain file.
 */
function sameCacheState(dir: string): void {
  settle();
  for (const f of filesBelow(dir)) {
    if (fs.statSync(f).size < MiB) continue; // maps and headers: tiny, and stay cached
    spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    spawnSync('dd', [`if=${f}`, 'of=/dev/null', 'bs=1M', 'status=none']);
  }
}

/** Median of a non-empty list (NaN for none). */
function median(xs: readonly number[]): number {
  return medianOf(xs) ?? NaN;
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
    sameCacheState(base);

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
      const runs = new Map<string, IoSample[]>(devices.map(([n]) => [n, []]));
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < devices.length; j++) {
          const [name, dev] = devices[(i + j) % devices.length];
          settle();
          runs.get(name)!.push(await randomIo(dev, kind, seconds, 32, 11 + i));
        }
      }
      const m = (n: string): number => median(runs.get(n)!.map((x) => x.iops));
      const b = (n: string): number => Math.max(...runs.get(n)!.map((x) => x.iops));
      const c = (n: string): number => median(runs.get(n)!.map((x) => x.cpuUs));
      log(`4k rand${kind}: ` + devices.map(([n]) => `${n} ${runs.get(n)!.map((x) => `${x.iops.toFixed(0)}@${x.cpuUs.toFixed(1)}us`).join('/')}`).join('  '));
      const row = (workload: string, n: string): StoreBenchRow => ({
        workload,
        file: m('file'),
        store: m(n),
        ratio: m(n) / m('file'),
        fileBest: b('file'),
        storeBest: b(n),
        ratioBest: b(n) / b('file'),
        unit: 'IOPS',
        fileCpuUs: c('file'),
        storeCpuUs: c(n),
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
  const rows = r.io.map((x) => [
    x.workload, x.file.toFixed(0), x.store.toFixed(0), pc(x.ratio), x.fileBest.toFixed(0), x.storeBest.toFixed(0), pc(x.ratioBest),
    x.fileCpuUs.toFixed(1), x.storeCpuUs.toFixed(1), pc(x.fileCpuUs / x.storeCpuUs),
  ]);
  const head = ['workload (BlockDevice level, 1 GiB)', 'file IOPS', 'store IOPS', 'store/file', 'best file', 'best store', 'best ratio', 'file us/IO', 'store us/IO', 'file/store CPU'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  const ms = (xs: number[]): string => `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
  return [
    'medians and best of 5 rounds; every round runs all devices, rotated; page cache of every file',
    'in the same state (written back, evicted, read back sequentially); us/IO = CPU of this process',
    line(head),
    ...rows.map(line),
    '',
    'snapshot create, 100 GiB image holding 1 GiB of data:',
    `  image open in this process (daemon API)    ${ms(r.snapshotCreateMs.inProcess)}`,
    `  image open in another process (CLI)        ${ms(r.snapshotCreateMs.otherProcess)}`,
    `  image not open                             ${ms(r.snapshotCreateMs.notOpen)}`,
  ].join('\n');
}

// ------------------------------------------------------------------ through the gateway

const GATEWAY_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:';
const BENCH_INITIATOR = 'iqn.2024-01.org.iscsi-gateway:store-bench';
/** The demo image's controls: thin provisioning, write-back cache (SYNCHRONIZE CACHE = fdatasync). */
const THIN_CONTROLS = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1, emulate_write_cache: 1 };

export interface GatewayBenchRow {
  readonly workload: string;
  readonly command: string;
  readonly unit: string;
  /** Medians over the rounds. */
  readonly file: number;
  readonly store: number;
  readonly ratio: number;
  /** Daemon CPU (user+system, all threads) per I/O, microseconds, medians. */
  readonly fileCpuUs: number;
  readonly storeCpuUs: number;
  /** Best round of each (less sensitive to other load on the machine). */
  readonly fileBest: number;
  readonly storeBest: number;
  readonly samples: { readonly file: number[]; readonly store: number[] };
}

export interface StoreGatewayBenchResult {
  readonly rows: GatewayBenchRow[];
  readonly rounds: number;
  readonly seconds: number;
  readonly controls: Record<string, number>;
}

interface GwSample {
  readonly value: number;
  readonly cpuUs: number;
}

/** CPU seconds (user+system, all threads) of a live process. */
function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  if (!t) throw new Error(`process ${pid} is gone`);
  return t.process;
}

/** What a client tool printed, both streams. */
function output(r: ToolResult): string {
  return r.stdout + r.stderr;
}

/**
 * The store against a plain sparse file through the whole gateway: one daemon, two targets
 * (LUN 0 on a 1 GiB store image, LUN 0 on a 1 GiB sparse file), identical disk controls
 * (the demo's: thin, write-back cache), both prefilled and given the same page-cache state.
 * Clients as in the project bench: `iscsi-perf` 4 KiB random read QD32, `qemu-img bench` 4 KiB
 * writes QD32 — scattered (a large prime step, as close to random as qemu-img bench gets) and
 * sequential. Rounds alternate which LUN goes first; medians; daemon CPU per I/O from /proc.
 */
export async function runStoreGatewayBench(
  options: { seconds?: number; warmup?: number; rounds?: number; dir?: string; cli?: string; log?: (s: string) => void } = {},
): Promise<StoreGatewayBenchResult> {
  const seconds = options.seconds ?? 6;
  const warmup = options.warmup ?? 2;
  const rounds = options.rounds ?? 5;
  const log = options.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const cli = options.cli ?? path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} not found: build first (npm run build)`);
  const base = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'store-gw-bench-'));
  const dataDir = path.join(base, 'data');
  const size = GiB;
  let gw: Daemon | undefined;
  try {
    log('gateway bench: prefilling a 1 GiB store image and a 1 GiB sparse file...');
    const store = await ImageStore.open(path.join(dataDir, 'store'), { client: 'bench' });
    await store.createImage('bench/img', { size, createPool: true });
    const img = await store.openImage('bench/img');
    await prefill(img);
    await img.close();
    await store.close();
    const fileDev = await FileBackstore.open({ path: path.join(base, 'plain.img'), createSize: size });
    await prefill(fileDev);
    await fileDev.close();
    const config = {
      version: 1,
      epoch: 0,
      disks: {
        'bench/img': { backstore: 'store', pool: 'bench', image: 'img', wwn: randomUUID(), controls: THIN_CONTROLS },
        'file/plain': { backstore: 'file', path: path.join(base, 'plain.img'), wwn: randomUUID(), controls: THIN_CONTROLS },
      },
      targets: Object.fromEntries(
        [
          ['store', 'bench/img'],
          ['file', 'file/plain'],
        ].map(([t, d]) => [`${GATEWAY_IQN}bench-${t}`, { portal_group_tag: 1, acl_enabled: false, controls: {}, disks: { [d]: { lun_id: 0 } }, clients: {} }]),
      ),
    };
    fs.writeFileSync(path.join(dataDir, 'gateway.json'), JSON.stringify(config, null, 2) + '\n');
    sameCacheState(base);
    const started = await spawnGateway(cli, dataDir);
    gw = started.daemon;
    await gatewayListening(gw);
    const pid = gw.pid;
    const url = (which: string): string => `iscsi://127.0.0.1:${started.port}/${GATEWAY_IQN}bench-${which}/0`;

    const perf = async (which: string): Promise<GwSample> => {
      const args = ['-i', BENCH_INITIATOR, '-m', '32', '-b', '8', '-r', url(which)];
      const c0 = cpuSeconds(pid);
      const r = await runTool('iscsi-perf', args, { stopAfterMs: (warmup + seconds) * 1000 + 600, timeoutMs: (warmup + seconds) * 1000 + 30_000 });
      const c1 = cpuSeconds(pid);
      const out = output(r);
      const per = parseIscsiPerf(out);
      const measured = per.filter((x) => x.second > warmup).map((x) => x.iops);
      if (!r.stoppedByUs || measured.length === 0 || /error|fail/i.test(out.replace(/^.*press CTRL-C to abort\./s, ''))) {
        throw new Error(`iscsi-perf ${args.join(' ')} failed:\n${out.slice(-2000)}`);
      }
      const total = per.reduce((a, x) => a + x.iops, 0);
      return { value: measured.reduce((a, b) => a + b, 0) / measured.length, cpuUs: ((c1 - c0) * 1e6) / Math.max(1, total) };
    };
    // qemu-img bench has no random mode: besides its sequential writes, a step of 48271 blocks
    // (prime, so coprime with the block count: every block once per pass) scatters the 4 KiB
    // writes 188 MiB apart — no locality, no merging, like random writes.
    const SCATTER_STEP = 48271 * 4096;
    const counts = new Map<string, number>();
    const qemuBench = async (which: string, count: number, step: number | undefined): Promise<GwSample> => {
      const args = ['bench', '-f', 'raw', '-t', 'none', '-w', '--pattern=165', '-c', String(count), '-d', '32', '-s', '4096', ...(step ? ['-S', String(step)] : []), url(which)];
      settle();
      const c0 = cpuSeconds(pid);
      const r = await runTool('qemu-img', args, { timeoutMs: 600_000 });
      const c1 = cpuSeconds(pid);
      const m = /Run completed in ([\d.]+) seconds/.exec(output(r));
      if (r.code !== 0 || !m) throw new Error(`qemu-img ${args.join(' ')} failed (exit ${String(r.code)}):\n${output(r).slice(-2000)}`);
      return { value: count / Number(m[1]), cpuUs: ((c1 - c0) * 1e6) / count };
    };
    /** qemu-img bench counts requests: calibrate once (first LUN measured) to about `seconds`, then keep the count. */
    const write = (step: number | undefined) => async (which: string): Promise<GwSample> => {
      const key = String(step ?? 0);
      if (!counts.has(key)) {
        const probe = await qemuBench(which, 20_000, step);
        counts.set(key, Math.max(20_000, Math.round((probe.value * seconds) / 1000) * 1000));
        log(`  qemu-img bench${step ? ` -S ${step}` : ''} calibrated on the ${which} LUN: -c ${counts.get(key)}`);
      }
      const count = counts.get(key)!;
      await qemuBench(which, Math.max(1000, Math.round((count * warmup) / seconds)), step);
      return qemuBench(which, count, step);
    };
    const qemuCmd = (step: number | undefined): string =>
      `qemu-img bench -f raw -t none -w --pattern=165 -c ${counts.get(String(step ?? 0)) ?? '?'} -d 32 -s 4096${step ? ` -S ${step}` : ''} URL`;

    const workloads: Array<{ name: string; unit: string; command: () => string; run: (which: string) => Promise<GwSample> }> = [
      { name: '4k randread QD32 (iscsi-perf)', unit: 'IOPS', command: () => 'iscsi-perf -m 32 -b 8 -r URL', run: perf },
      { name: '4k scattered write QD32 (qemu-img bench -S)', unit: 'IOPS', command: () => qemuCmd(SCATTER_STEP), run: write(SCATTER_STEP) },
      { name: '4k sequential write QD32 (qemu-img bench)', unit: 'IOPS', command: () => qemuCmd(undefined), run: write(undefined) },
    ];
    const rows: GatewayBenchRow[] = [];
    for (const w of workloads) {
      const samples = { file: [] as GwSample[], store: [] as GwSample[] };
      for (let round = 0; round < rounds; round++) {
        for (const which of round % 2 === 0 ? (['file', 'store'] as const) : (['store', 'file'] as const)) {
          const s = await w.run(which);
          samples[which].push(s);
          log(`  ${w.name} round ${round + 1} ${which}: ${s.value.toFixed(0)} ${w.unit}, daemon ${s.cpuUs.toFixed(1)} us CPU/IO`);
        }
      }
      const med = (xs: GwSample[], k: keyof GwSample): number => median(xs.map((x) => x[k]));
      rows.push({
        workload: w.name,
        command: w.command(),
        unit: w.unit,
        file: med(samples.file, 'value'),
        store: med(samples.store, 'value'),
        ratio: med(samples.store, 'value') / med(samples.file, 'value'),
        fileCpuUs: med(samples.file, 'cpuUs'),
        storeCpuUs: med(samples.store, 'cpuUs'),
        fileBest: Math.max(...samples.file.map((x) => x.value)),
        storeBest: Math.max(...samples.store.map((x) => x.value)),
        samples: { file: samples.file.map((x) => x.value), store: samples.store.map((x) => x.value) },
      });
    }
    return { rows, rounds, seconds, controls: THIN_CONTROLS };
  } finally {
    await gw?.stop('SIGTERM', 15_000);
    fs.rmSync(base, { recursive: true, force: true });
  }
}

export function formatStoreGatewayBench(r: StoreGatewayBenchResult): string {
  const pc = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const head = ['through the gateway (1 GiB LUNs)', 'file', 'store', 'store/file', 'best ratio', 'file us/IO', 'store us/IO', 'file/store CPU'];
  const rows = r.rows.map((x) => [
    x.workload, x.file.toFixed(0), x.store.toFixed(0), pc(x.ratio), pc(x.storeBest / x.fileBest),
    x.fileCpuUs.toFixed(1), x.storeCpuUs.toFixed(1), pc(x.fileCpuUs / x.storeCpuUs),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  return [
    `one daemon, a store-image LUN and a sparse-file LUN, controls ${JSON.stringify(r.controls)};`,
    `medians of ${r.rounds} rounds x ${r.seconds} s (order alternating); us/IO = daemon CPU (all threads) per I/O`,
    line(head),
    ...rows.map(line),
    ...r.rows.map((x) => `  ${x.workload}: ${x.command}; file ${x.samples.file.map((v) => v.toFixed(0)).join('/')}, store ${x.samples.store.map((v) => v.toFixed(0)).join('/')}`),
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
    const seconds = get('--seconds') ? Number(get('--seconds')) : undefined;
    const job = args.includes('--gateway')
      ? runStoreGatewayBench({ seconds, rounds: get('--rounds') ? Number(get('--rounds')) : undefined, dir: get('--dir') }).then((r) => ({ r, text: formatStoreGatewayBench(r) }))
      : runStoreBench({ seconds, dir: get('--dir') }).then((r) => ({ r, text: formatStoreBench(r) }));
    job
      .then(({ r, text }) => {
        if (args.includes('--json')) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        else process.stdout.write(text + '\n');
      })
      .catch((e) => {
        process.stderr.write(`store bench failed: ${(e as Error).stack}\n`);
        process.exit(1);
      });
  }
}
