/**
 * Runs the cells of the selected rows: in each round, one target at a time (never two at
 * once: they would compete for the 2 cores), started fresh, all of its workloads, stopped.
 * Rounds alternate the target order so drift on a noisy machine does not favour one side.
 * Failures (a target that does not start, a tool error, a crash, an unclean stop) are
 * recorded with the command and output and the run goes on.
 */
import { Row } from '../workloads';
import { Measurement, Workload, WorkloadError } from '../workloads/workload';
import { BenchEnv, RunningTarget, TargetKind } from '../targets/target';
import { syncImage } from './image';
import { BackgroundLoad, OtherLoad, backgroundLoad, machineBusy, otherLoad, snapshotProcesses, tail } from './proc';

export interface CpuUse {
  /** Target process CPU (all threads) as % of one core over the tool run. */
  readonly processPct: number;
  /** Target main thread (event loop) as % of one core. */
  readonly mainThreadPct: number;
  /** Target CPU microseconds per I/O (all threads). */
  readonly usPerIo?: number;
  /** Target context switches per I/O (all threads): wake-ups of worker threads and the loop. */
  readonly switchesPerIo?: number;
  readonly threads?: number;
  /** Whole machine busy, % of all cores (client + target + everything else). */
  readonly machinePct: number;
  /** Client tool CPU as % of one core, and µs per I/O. */
  readonly clientPct?: number;
  readonly clientUsPerIo?: number;
}

export interface Sample extends Measurement {
  readonly round: number;
  readonly cpu?: CpuUse;
  /** Machine busy (% of all cores) in the quiet second before this target started. */
  readonly backgroundPct?: number;
  /** CPU other jobs used during this measurement (% of one core), and the busiest of them. */
  readonly otherPct?: number;
  readonly otherTop?: string[];
  /** Other jobs used more than the limit and the retries ran out: a suspect figure. */
  readonly contaminated?: boolean;
}

export interface Failure {
  readonly round: number;
  readonly target: string;
  readonly workload?: string;
  readonly phase: 'start' | 'run' | 'stop';
  readonly message: string;
  readonly command?: string;
  readonly toolOutput?: string;
  readonly targetOutput?: string;
}

export interface CellResult {
  readonly target: string;
  readonly workload: string;
  readonly samples: Sample[];
}

export interface RunnerOptions {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Wait up to this long before each target session for the machine to become quiet. */
  readonly quietWaitS: number;
  /** A measurement during which other jobs used more CPU than this (% of one core) is repeated... */
  readonly maxOtherPct: number;
  /** ...at most this many times. */
  readonly noiseRetries: number;
  readonly env: BenchEnv;
}

export interface RunnerResult {
  readonly cells: CellResult[];
  readonly failures: Failure[];
  /** Background load before each target session; above ~10% the figures are suspect. */
  readonly background: Array<BackgroundLoad & { round: number; target: string }>;
}

/** Background load (% of all cores) above which the run is flagged as noisy. */
export const NOISY_PCT = 10;

export function cellKey(target: string, workload: string): string {
  return `${target}/${workload}`;
}

export async function runCells(rows: readonly Row[], kinds: readonly TargetKind[], workloads: readonly Workload[], opts: RunnerOptions): Promise<RunnerResult> {
  const { env } = opts;
  const cells = new Map<string, CellResult>();
  const perTarget = new Map<string, Workload[]>();
  for (const kind of kinds) {
    const wanted = new Set(rows.flatMap((r) => [r.baseline, r.candidate]).filter((c) => c.target === kind.id).map((c) => c.workload));
    const list = workloads.filter((w) => wanted.has(w.id));
    if (list.length === 0) continue;
    perTarget.set(kind.id, list);
    for (const w of list) cells.set(cellKey(kind.id, w.id), { target: kind.id, workload: w.id, samples: [] });
  }
  const failures: Failure[] = [];
  const background: RunnerResult['background'] = [];
  const active = kinds.filter((k) => perTarget.has(k.id));

  for (let round = 1; round <= opts.rounds; round++) {
    const order = round % 2 === 1 ? active : [...active].reverse();
    for (const kind of order) {
      const bg = await quietMachine(opts.quietWaitS, env.log);
      background.push({ ...bg, round, target: kind.id });
      const noisy = bg.busyPct > NOISY_PCT ? `  — NOT QUIET: ${bg.busyPct.toFixed(0)}% busy before start (${bg.top.join(', ')})` : '';
      env.log(`round ${round}/${opts.rounds}: starting ${kind.id}${noisy}`);
      let target: RunningTarget;
      try {
        target = await kind.start(env);
      } catch (e) {
        const message = (e as Error).message;
        env.log(`  ${kind.id} did not start: ${message.split('\n')[0]}`);
        failures.push({ round, target: kind.id, phase: 'start', message });
        continue;
      }
      env.log(`  ${kind.id} serves ${target.url} (${target.blockSize}-byte blocks, pid ${target.pid})`);
      for (const w of perTarget.get(kind.id)!) {
        if (!target.alive()) {
          failures.push({ round, target: kind.id, workload: w.id, phase: 'run', message: `${kind.id} is no longer running; ${w.id} skipped`, targetOutput: target.diagnostics() });
          break;
        }
        try {
          for (let attempt = 0; ; attempt++) {
            const { m, cpu, other } = await measure(target, w, opts);
            if (!target.alive()) throw new Error(`${kind.id} exited during ${w.id}`);
            const contaminated = other.pct > opts.maxOtherPct;
            const line = `    ${w.id.padEnd(14)} ${formatValue(m.value)} ${w.metric.unit}` + (cpu ? `  (target CPU ${cpu.processPct.toFixed(0)}%, main thread ${cpu.mainThreadPct.toFixed(0)}%)` : '');
            const otherNote = `other jobs used ${other.pct.toFixed(0)}% of a core: ${other.top.join(', ') || 'short-lived processes'}`;
            if (contaminated && attempt < opts.noiseRetries) {
              env.log(`${line} — discarded, ${otherNote}; repeating`);
              continue;
            }
            cells.get(cellKey(kind.id, w.id))!.samples.push({ ...m, round, cpu, backgroundPct: bg.busyPct, otherPct: other.pct, otherTop: other.top, contaminated });
            env.log(contaminated ? `${line} — kept although ${otherNote}` : line);
            break;
          }
        } catch (e) {
          const err = e as Error;
          const wf = e instanceof WorkloadError ? e : undefined;
          const alive = target.alive();
          const message = alive ? err.message : `${kind.id} died during ${w.id}: ${err.message}`;
          env.log(`    ${w.id.padEnd(14)} FAILED: ${message.split('\n')[0]}`);
          failures.push({ round, target: kind.id, workload: w.id, phase: 'run', message, command: wf?.command, toolOutput: wf?.output, targetOutput: target.diagnostics() });
        }
      }
      const note = await target.stop();
      if (note) {
        env.log(`  ${kind.id}: ${note.split('\n')[0]}`);
        failures.push({ round, target: kind.id, phase: 'stop', message: note, targetOutput: tail(target.diagnostics(), 20) });
      }
    }
  }
  return { cells: [...cells.values()], failures, background };
}

/** One run of a workload with the target's CPU use and the other jobs' load around it. */
async function measure(target: RunningTarget, w: Workload, opts: RunnerOptions): Promise<{ m: Measurement; cpu?: CpuUse; other: OtherLoad }> {
  await syncImage(opts.env.image);
  const cpu0 = target.cpu();
  const m0 = machineBusy();
  const p0 = snapshotProcesses();
  const t0 = process.hrtime.bigint();
  const m = await w.run({ target, env: opts.env, durationS: opts.durationS, warmupS: opts.warmupS });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = target.cpu();
  const m1 = machineBusy();
  const other = otherLoad(p0, snapshotProcesses(), wallS);
  const cpu: CpuUse | undefined =
    cpu0 && cpu1
      ? {
          processPct: ((cpu1.process - cpu0.process) / wallS) * 100,
          mainThreadPct: ((cpu1.mainThread - cpu0.mainThread) / wallS) * 100,
          usPerIo: m.totalIos ? ((cpu1.process - cpu0.process) / m.totalIos) * 1e6 : undefined,
          switchesPerIo: m.totalIos ? (cpu1.contextSwitches - cpu0.contextSwitches) / m.totalIos : undefined,
          threads: cpu1.threads,
          machinePct: ((m1.busy - m0.busy) / Math.max(m1.total - m0.total, 1e-9)) * 100,
          clientPct: m.clientCpuSeconds === undefined ? undefined : (m.clientCpuSeconds / wallS) * 100,
          clientUsPerIo: m.clientCpuSeconds === undefined || !m.totalIos ? undefined : (m.clientCpuSeconds / m.totalIos) * 1e6,
        }
      : undefined;
  return { m, cpu, other };
}

/** Sample the background load; while it is above NOISY_PCT, keep waiting up to `waitS`. */
async function quietMachine(waitS: number, log: (line: string) => void): Promise<BackgroundLoad> {
  const deadline = Date.now() + waitS * 1000;
  let bg = await backgroundLoad(1500);
  if (bg.busyPct > NOISY_PCT && waitS > 0) {
    log(`  machine busy (${bg.busyPct.toFixed(0)}%: ${bg.top.join(', ') || 'short-lived processes'}); waiting up to ${waitS} s for it to quieten`);
    while (bg.busyPct > NOISY_PCT && Date.now() < deadline) bg = await backgroundLoad(1500);
  }
  return bg;
}

export function formatValue(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
