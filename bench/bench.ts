/**
 * `npm run bench`: the gateway side by side with tgtd on the same preconditioned image file,
 * the same client command lines, one target at a time; prints the table of figures and
 * gateway/tgt ratios and writes bench/results/latest.json. Not part of the test suite.
 *
 *   npm run bench                      full run (3 rounds, 12 s per figure)
 *   npm run bench -- --quick           1 round, 4 s per figure
 *   npm run bench -- --only 4k         rows whose id starts with "4k"
 *   npm run bench -- --targets tgt     only one side
 *   npm run bench -- --profile         CPU profile of the gateway per workload (4k rows by default)
 *   npm run bench -- --list            rows and workloads
 */
import { Command, InvalidArgumentError } from 'commander';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatProfileSummary, summarizeCpuProfile } from './lib/cpuprofile';
import { allocatedBytes, createPreconditionedImage } from './lib/image';
import { installSignalHandlers, onCleanup, reapLeftovers, recordScratch, runCleanups, runTool } from './lib/proc';
import { Failure, NOISY_PCT, runCells } from './lib/runner';
import { formatCpuTable, formatFailures, formatLimits, formatRowsTable, summarizeRows } from './lib/report';
import { DEFAULT_GATEWAY_CLI } from './targets/gateway';
import { createTargetKinds } from './targets';
import { BenchEnv, TargetKind } from './targets/target';
import { createRows, createWorkloads, selectRows } from './workloads';
import { WorkloadError } from './workloads/workload';
import { formatOffloadBench, runOffloadBench } from './offload';
import { formatAuthBench, runAuthBench } from './auth';
import { formatHostileBench, runHostileBench } from './hostile';
import { formatScaleBench, runScaleBench } from './scale';
import { formatStoreBench, formatStoreGatewayBench, runStoreBench, runStoreGatewayBench } from './store';
import { formatRbdBench, runRbdBench } from './rbd';
import { formatFailoverBench, runFailoverBench } from './failover';

/** Sections of a full run: the table against tgt, the store against a plain file, offloads. */
const SECTIONS = ['tgt', 'store', 'offload', 'auth', 'hostile', 'scale', 'rbd', 'failover'] as const;
type Section = (typeof SECTIONS)[number];

/** dist/bench -> repository root */
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

interface Options {
  quick?: boolean;
  runs?: number;
  duration?: number;
  warmup?: number;
  only?: string[];
  targets?: string[];
  list?: boolean;
  imageSize: number;
  dir: string;
  keep?: boolean;
  gatewayCli: string;
  gatewayLog: string;
  gatewayNodeArgs: string[];
  profile?: boolean;
  summarize?: string[];
  waitQuiet?: number;
  maxOther: number;
  noiseRetries?: number;
  out: string;
  sections?: string[];
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegative(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) throw new InvalidArgumentError('expected whole seconds (0 or more)');
  return n;
}

function size(v: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected bytes or a size like 512M, 1G');
  const unit = (m[2] ?? '').toUpperCase()[0];
  const mult = unit === 'K' ? 1 << 10 : unit === 'M' ? 1 << 20 : unit === 'G' ? 1 << 30 : 1;
  const n = Number(m[1]) * mult;
  if (n < 64 << 20) throw new InvalidArgumentError('the image must be at least 64M');
  return n;
}

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench --')
    .description('iscsi-gateway vs tgtd, side by side on the same image file and the same clients')
    .option('--quick', 'short run: 1 round, 1 s warm-up, 4 s per figure')
    .option('--runs <n>', 'rounds; each figure is the median over them (default 3, quick 1)', positiveInt)
    .option('--duration <s>', 'seconds per measurement (default 12, quick 4)', positiveInt)
    .option('--warmup <s>', 'warm-up seconds before each measurement (default 3, quick 1)', nonNegative)
    .option('--only <rows>', 'comma-separated row ids or prefixes (see --list)', list)
    .option('--targets <ids>', 'comma-separated target ids to run (default: all)', list)
    .option('--list', 'list rows and targets, then exit')
    .option('--image-size <size>', 'size of the image file', size, 1 << 30)
    .option('--dir <dir>', 'where the scratch directory (image, data dirs) is created', os.tmpdir())
    .option('--keep', 'keep the scratch directory')
    .option('--gateway-cli <path>', 'compiled gateway CLI to run', DEFAULT_GATEWAY_CLI)
    .option('--gateway-log <level>', 'ISCSI_GATEWAY_LOG for the gateway daemon', 'warn')
    .option('--gateway-node-args <args>', 'extra node flags for the gateway, space-separated', (v: string) => v.split(/\s+/).filter(Boolean), [])
    .option('--profile', 'instead of the comparison: CPU-profile the gateway once per selected workload (default rows: 4k-randread, 4k-write)')
    .option('--summarize <files...>', 'only print the summary of existing .cpuprofile files')
    .option('--wait-quiet <s>', 'before each target session wait up to this long for other load to stop (default 30, quick 0)', nonNegative)
    .option('--max-other <pct>', 'repeat a measurement during which other jobs used more than this % of a core', nonNegative, 25)
    .option('--noise-retries <n>', 'how often a measurement disturbed by other jobs is repeated (default 3, quick 1)', nonNegative)
    .option('--sections <list>', `comma-separated sections: ${SECTIONS.join(', ')} (default all; only "tgt" with --only, --targets or --profile)`, list)
    .option('--out <file>', 'results JSON', path.join(RESULTS_DIR, 'latest.json'))
    .allowExcessArguments(false);
  program.parse(argv);
  return program.opts<Options>();
}

async function toolVersions(): Promise<Record<string, string>> {
  const first = async (cmd: string, args: string[]) => {
    try {
      const r = await runTool(cmd, args, { timeoutMs: 5000 });
      return (r.stdout + r.stderr).split('\n').find((l) => l.trim())?.trim() ?? '';
    } catch (e) {
      return `unavailable: ${(e as Error).message}`;
    }
  };
  return {
    'qemu-img': await first('qemu-img', ['--version']),
    'iscsi-perf': await first('iscsi-perf', []).then((l) => l || 'iscsi-perf (libiscsi-bin)'),
    node: process.version,
  };
}

async function requireTools(): Promise<void> {
  for (const tool of ['iscsi-perf', 'qemu-img', 'iscsi-readcapacity16']) {
    const r = await runTool('sh', ['-c', `command -v ${tool}`], { timeoutMs: 5000 });
    if (r.code !== 0) throw new Error(`${tool} not found: run scripts/install-deps.sh (libiscsi-bin, qemu-utils, qemu-block-extra, tgt)`);
  }
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
}

function writeJson(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}

async function main(): Promise<number> {
  // A closed stdout (e.g. piped into head) must not kill the run: the results file still counts.
  process.stdout.on('error', () => undefined);
  const o = parseOptions(process.argv);
  const quick = o.quick ?? false;
  const rounds = o.runs ?? (quick ? 1 : 3);
  const durationS = o.duration ?? (quick ? 4 : 12);
  const warmupS = o.warmup ?? (quick ? 1 : 3);
  const quietWaitS = o.waitQuiet ?? (quick ? 0 : 30);
  const noiseRetries = o.noiseRetries ?? (quick ? 1 : 3);
  const log = (line: string) => process.stdout.write(line + '\n');

  const workloads = createWorkloads();
  const allRows = createRows(workloads);
  let kinds: TargetKind[] = createTargetKinds({ cli: path.resolve(o.gatewayCli), logLevel: o.gatewayLog, nodeArgs: o.gatewayNodeArgs });
  if (o.summarize) {
    for (const f of o.summarize) log(`== ${f} ==\n${formatProfileSummary(summarizeCpuProfile(f, REPO_ROOT))}\n`);
    return 0;
  }
  if (o.list) {
    log('rows (baseline -> candidate):');
    for (const r of allRows) log(`  ${r.id.padEnd(14)} ${r.title}  [${r.baseline.target}/${r.baseline.workload} -> ${r.candidate.target}/${r.candidate.workload}]`);
    log('targets:');
    for (const k of kinds) log(`  ${k.id.padEnd(14)} ${k.title}`);
    return 0;
  }
  const rows = selectRows(allRows, o.only ?? (o.profile ? ['4k-randread', '4k-write'] : undefined));
  if (o.targets) {
    const unknown = o.targets.filter((t) => !kinds.some((k) => k.id === t));
    if (unknown.length) throw new Error(`unknown target(s) ${unknown.join(', ')}; targets: ${kinds.map((k) => k.id).join(', ')}`);
    kinds = kinds.filter((k) => o.targets!.includes(k.id));
  }

  const narrowed = o.only !== undefined || o.targets !== undefined || o.profile === true;
  const sections = new Set<Section>((o.sections ?? (narrowed ? ['tgt'] : [...SECTIONS])).map((x) => {
    if (!(SECTIONS as readonly string[]).includes(x)) throw new Error(`unknown section "${x}"; sections: ${SECTIONS.join(', ')}`);
    return x as Section;
  }));

  const warnings = [...new Set(kinds.flatMap((k) => k.warnings?.() ?? []))];
  for (const w of warnings) log(`WARNING: ${w}`);

  installSignalHandlers();
  reapLeftovers(log);
  await requireTools();

  const started = new Date();
  const output: Record<string, unknown> = {
    started: started.toISOString(),
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / (1 << 30)), kernel: os.release() },
    tools: await toolVersions(),
    sections: [...sections],
  };
  let failures = 0;
  const cli = path.resolve(o.gatewayCli);

  if (sections.has('tgt')) {
    const workDir = fs.mkdtempSync(path.join(o.dir, 'igw-bench-'));
    if (!o.keep) {
      recordScratch(workDir);
      onCleanup(async () => fs.rmSync(workDir, { recursive: true, force: true }));
    }
    const image = path.join(workDir, 'bench.img');
    log(`scratch ${workDir}; preconditioning a ${o.imageSize / (1 << 20)} MiB image (sparse, then fully written once) ...`);
    const t0 = Date.now();
    await createPreconditionedImage(image, o.imageSize);
    log(`  done in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${Math.round(allocatedBytes(image) / (1 << 20))} MiB allocated`);
    const env: BenchEnv = { image, imageSize: o.imageSize, workDir, log };

    if (o.profile) return profileMode(o, rows.map((r) => r.candidate.workload), workloads, kinds, env, durationS, warmupS);

    const involved = kinds.filter((k) => rows.some((r) => r.baseline.target === k.id || r.candidate.target === k.id));
    log(`${rows.length} row(s): ${rows.map((r) => r.id).join(', ')}; targets ${involved.map((k) => k.id).join(', ')}; ${rounds} round(s) × (${warmupS} s warm-up + ${durationS} s)`);
    const result = await runCells(rows, kinds, workloads, { rounds, durationS, warmupS, quietWaitS, maxOtherPct: o.maxOther, noiseRetries, env });
    const summaries = summarizeRows(rows, result.cells, workloads);

    const targetInfo: Record<string, string> = {};
    const used = new Set(rows.flatMap((r) => [r.baseline.target, r.candidate.target]));
    for (const k of kinds) if (used.has(k.id)) targetInfo[k.id] = await k.describe();
    output.vsTgt = {
      targets: targetInfo,
      warnings,
      options: { rounds, durationS, warmupS, quietWaitS, maxOtherPct: o.maxOther, noiseRetries, imageSize: o.imageSize, imageDir: o.dir, quick, gatewayLog: o.gatewayLog, gatewayNodeArgs: o.gatewayNodeArgs },
      workloads: Object.fromEntries(workloads.filter((w) => rows.some((r) => r.candidate.workload === w.id || r.baseline.workload === w.id)).map((w) => [w.id, { title: w.title, tool: w.tool, unit: w.metric.unit, ...w.parameters() }])),
      rows: summaries,
      failures: result.failures,
      background: result.background,
    };
    failures += result.failures.length;
    log('');
    log(`iscsi-gateway vs tgt — same ${o.imageSize / (1 << 20)} MiB preconditioned image, same clients, one target at a time; median of ${rounds} round(s)`);
    log('');
    log(formatRowsTable(summaries));
    if (summaries.some((r) => r.baseline.contaminatedRuns + r.candidate.contaminatedRuns > 0)) {
      log('* includes a measurement disturbed by other jobs on the machine (retries ran out; see "other jobs" below and the JSON)');
    }
    const limits = formatLimits(summaries);
    if (limits) {
      log('');
      log('the limit of this machine: the same clients against null backstores (no storage), and the share of it each target reaches with its real store:');
      log(limits);
    }
    log('');
    log('where the time goes (medians; CPU as % of one core over each tool run, warm-up included; machine busy as % of both cores):');
    log(formatCpuTable(summaries));
    log('');
    for (const [id, d] of Object.entries(targetInfo)) log(`${id}: ${d}`);
    for (const w of workloads) {
      const p = w.parameters();
      if (p.count !== undefined) log(`${w.id}: qemu-img bench -c ${String(p.count)} (calibrated on ${String(p.calibratedOn)})`);
    }
    const noisy = result.background.filter((b) => b.busyPct > NOISY_PCT);
    if (noisy.length) {
      log('');
      log(`WARNING: the machine was not quiet before ${noisy.length} of ${result.background.length} target sessions (figures are noisier):`);
      for (const b of noisy) log(`  round ${b.round} ${b.target}: ${b.busyPct.toFixed(0)}% busy — ${b.top.join(', ')}`);
    }
    if (result.failures.length) {
      log('');
      log(`FAILURES (${result.failures.length}):`);
      log(formatFailures(result.failures));
    }
  }

  if (sections.has('store')) {
    log('');
    log('== the embedded store against a plain sparse file ==');
    try {
      const device = await runStoreBench({ seconds: quick ? 1 : 2, dir: o.dir, log });
      log(formatStoreBench(device));
      const gateway = await runStoreGatewayBench({ seconds: quick ? 3 : 6, warmup: quick ? 1 : 2, rounds: quick ? 1 : 3, dir: o.dir, cli, log });
      log('');
      log(formatStoreGatewayBench(gateway));
      output.store = { device, gateway };
    } catch (e) {
      failures++;
      output.store = { failure: (e as Error).message };
      log(`FAILURE (store section): ${(e as Error).message}`);
    }
  }

  if (sections.has('rbd')) {
    log('');
    log('== Ceph RBD: the gateway against QEMU\'s own rbd driver on the same image ==');
    try {
      const rbd = await runRbdBench({ seconds: quick ? 3 : 8, rounds: quick ? 1 : 3, dir: o.dir, cli, log });
      log(formatRbdBench(rbd));
      output.rbd = rbd;
    } catch (e) {
      failures++;
      output.rbd = { failure: (e as Error).message };
      log(`FAILURE (rbd section): ${(e as Error).message}`);
    }
  }

  if (sections.has('offload')) {
    log('');
    log('== offloads (WRITE SAME, UNMAP, EXTENDED COPY) against the same work through the initiator ==');
    try {
      const offload = await runOffloadBench({ rounds: quick ? 1 : 3, dir: o.dir, cli, log });
      log(formatOffloadBench(offload));
      output.offload = offload;
    } catch (e) {
      failures++;
      output.offload = { failure: (e as Error).message };
      log(`FAILURE (offload section): ${(e as Error).message}`);
    }
  }

  if (sections.has('auth')) {
    log('');
    log('== failed logins (CHAP guessing) against an established session ==');
    try {
      const auth = await runAuthBench({ rounds: quick ? 1 : 3, failures: 1000, dir: o.dir, cli, log });
      log(formatAuthBench(auth));
      output.auth = auth;
    } catch (e) {
      failures++;
      output.auth = { failure: (e as Error).message };
      log(`FAILURE (auth section): ${(e as Error).message}`);
    }
  }

  if (sections.has('hostile')) {
    log('');
    log('== a normal session while 8 stalled readers and 8 data-withholding writers abuse the gateway ==');
    try {
      const hostile = await runHostileBench({ seconds: quick ? 2 : 4, rounds: quick ? 1 : 2, dir: o.dir, cli, log });
      log(formatHostileBench(hostile));
      output.hostile = hostile;
    } catch (e) {
      failures++;
      output.hostile = { failure: (e as Error).message };
      log(`FAILURE (hostile section): ${(e as Error).message}`);
    }
  }

  if (sections.has('scale')) {
    log('');
    log('== scale: the 1000th disk through the REST API of a running gateway; its memory with 1024 LUNs and 64 sessions ==');
    try {
      const scale = await runScaleBench({ rounds: quick ? 3 : 5, dir: o.dir, cli, nodeArgs: o.gatewayNodeArgs, log });
      log(formatScaleBench(scale));
      output.scale = scale;
    } catch (e) {
      failures++;
      output.scale = { failure: (e as Error).message };
      log(`FAILURE (scale section): ${(e as Error).message}`);
    }
  }

  if (sections.has('failover')) {
    log('');
    log('== failover: the kernel initiator\'s I/O pause when the owner gateway is killed, cut off, restarted (dm-multipath in a VM) ==');
    try {
      const failover = await runFailoverBench({ rounds: quick ? 2 : 5, log });
      log(formatFailoverBench(failover));
      output.failover = failover;
      if (failover.failures.length) failures++;
    } catch (e) {
      failures++;
      output.failover = { failure: (e as Error).message };
      log(`FAILURE (failover section): ${(e as Error).message}`);
    }
  }

  output.finished = new Date().toISOString();
  writeJson(o.out, output);
  // History next to latest.json; an explicit --out gets exactly that one file.
  if (path.resolve(o.out) === path.join(RESULTS_DIR, 'latest.json')) writeJson(path.join(RESULTS_DIR, `bench-${stamp(started)}.json`), output);
  log('');
  log(`results: ${o.out}`);
  return failures ? 1 : 0;
}

async function profileMode(o: Options, workloadIds: string[], workloads: ReturnType<typeof createWorkloads>, kinds: TargetKind[], env: BenchEnv, durationS: number, warmupS: number): Promise<number> {
  // The first gateway variant left by --targets (default: "gateway"; --targets gateway-wce for that one).
  const kind = kinds.find((k) => k.id.startsWith('gateway'));
  if (!kind) throw new Error('--profile profiles a gateway variant; --targets excludes them all');
  const dir = path.join(path.dirname(o.out), `profile-${stamp()}`);
  const failures: Failure[] = [];
  const reports: string[] = [];
  for (const id of [...new Set(workloadIds)]) {
    const w = workloads.find((x) => x.id === id)!;
    const name = `${kind.id}-${w.id}.cpuprofile`;
    let figure = 'no figure';
    env.log(`profiling ${kind.id} under ${w.id} (${warmupS} s warm-up + ${durationS} s) ...`);
    const target = await kind.start({ ...env, cpuProfile: { dir, name } });
    try {
      const m = await w.run({ target, env, durationS, warmupS });
      figure = `${Math.round(m.value)} ${w.metric.unit} under the profiler`;
      env.log(`  ${w.id}: ${figure}`);
    } catch (e) {
      const wf = e instanceof WorkloadError ? e : undefined;
      failures.push({ round: 1, target: kind.id, workload: w.id, phase: 'run', message: (e as Error).message, command: wf?.command, toolOutput: wf?.output, targetOutput: target.diagnostics() });
    }
    const note = await target.stop();
    if (note) failures.push({ round: 1, target: kind.id, workload: w.id, phase: 'stop', message: note });
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      failures.push({ round: 1, target: kind.id, workload: w.id, phase: 'stop', message: `no profile written at ${file}` });
      continue;
    }
    const text = `== ${kind.id} CPU profile (main thread, V8 sampling) under ${w.title}: ${figure} ==\n${formatProfileSummary(summarizeCpuProfile(file, REPO_ROOT))}\n`;
    fs.writeFileSync(path.join(dir, `${kind.id}-${w.id}.txt`), text);
    reports.push(text);
  }
  env.log('');
  for (const r of reports) env.log(r);
  env.log(`profiles and summaries: ${dir} (open the .cpuprofile files in Chrome DevTools or speedscope)`);
  if (failures.length) {
    env.log(`FAILURES (${failures.length}):`);
    env.log(formatFailures(failures));
  }
  return failures.length ? 1 : 0;
}

main()
  .then(
    async (code) => {
      await runCleanups();
      process.exitCode = code;
    },
    async (e: unknown) => {
      process.stderr.write(`bench: ${(e as Error).message}\n`);
      await runCleanups();
      process.exitCode = 2;
    },
  )
  .finally(() => {
    // Nothing may keep us (or a target) alive after the report.
    setTimeout(() => process.exit(), 100).unref();
  });
