/**
 * `qemu-img bench` through QEMU's iSCSI driver: a fixed number of requests (sequential,
 * step = request size, wrapping at the end of the image), `depth` in flight, cache=none
 * (no host cache, no FUA); prints "Run completed in X seconds."
 *
 * It counts requests, not seconds, so the count is calibrated once per run on the first
 * target measured (a short probe run) to last about `duration` seconds there, and then kept
 * for every target and repetition: the command lines are identical.
 */
import { runTool, tail } from '../lib/proc';
import { Measurement, Metric, RunContext, Workload, WorkloadError } from './workload';

export interface QemuImgBenchSpec {
  readonly id: string;
  readonly title: string;
  readonly write: boolean;
  readonly transferBytes: number;
  readonly depth: number;
  readonly metric: Metric;
  /** Requests in the calibration probe. */
  readonly probeCount: number;
}

/** Pattern byte for written data: not zero, so no backstore can treat the writes as holes. */
const PATTERN = 0xa5;

export function parseQemuImgBench(output: string): number | undefined {
  const m = /Run completed in ([\d.]+) seconds/.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** Round to two significant digits (a readable request count). */
function roundCount(n: number): number {
  const p = Math.pow(10, Math.max(0, Math.floor(Math.log10(n)) - 1));
  return Math.max(p, Math.round(n / p) * p);
}

export class QemuImgBenchWorkload implements Workload {
  readonly tool = 'qemu-img bench';
  private count: number | undefined;
  private calibratedOn: string | undefined;

  constructor(private readonly spec: QemuImgBenchSpec) {}

  get id(): string {
    return this.spec.id;
  }
  get title(): string {
    return this.spec.title;
  }
  get metric(): Metric {
    return this.spec.metric;
  }

  parameters(): Record<string, unknown> {
    const { write, transferBytes, depth } = this.spec;
    return { write, transferBytes, depth, count: this.count, calibratedOn: this.calibratedOn };
  }

  private args(count: number, url: string): string[] {
    const { write, transferBytes, depth } = this.spec;
    return [
      'bench',
      '-f', 'raw',
      '-t', 'none',
      ...(write ? ['-w', `--pattern=${PATTERN}`] : []),
      '-c', String(count),
      '-d', String(depth),
      '-s', String(transferBytes),
      url,
    ];
  }

  private async once(count: number, url: string, timeoutMs: number): Promise<{ seconds: number; command: string; cpuSeconds: number }> {
    const r = await runTool('qemu-img', this.args(count, url), { timeoutMs });
    const seconds = parseQemuImgBench(r.stdout);
    if (r.timedOut) throw new WorkloadError(`qemu-img bench did not finish in ${timeoutMs / 1000} s`, r.command, tail(r.stdout + r.stderr, 25));
    if (r.code !== 0 || seconds === undefined || r.stderr.trim() !== '') {
      throw new WorkloadError(`qemu-img bench failed (exit ${r.code ?? r.signal})`, r.command, tail(r.stdout + r.stderr, 25));
    }
    return { seconds, command: r.command, cpuSeconds: r.cpuSeconds };
  }

  async run(ctx: RunContext): Promise<Measurement> {
    const url = ctx.target.url;
    let requests = 0; // everything this run sent, for CPU per I/O
    let clientCpu = 0;
    if (this.count === undefined) {
      const probe = await this.once(this.spec.probeCount, url, 300_000);
      clientCpu += probe.cpuSeconds;
      const rate = this.spec.probeCount / Math.max(probe.seconds, 0.001);
      this.count = roundCount(Math.max(this.spec.probeCount, rate * ctx.durationS));
      this.calibratedOn = ctx.target.kind;
      requests += this.spec.probeCount;
      ctx.env.log(`    calibrated ${this.id} on ${ctx.target.kind}: ${Math.round(rate)} req/s -> -c ${this.count}`);
    }
    const count = this.count;
    // Warm-up: about `warmupS` seconds of the same requests.
    if (ctx.warmupS > 0) {
      const warm = roundCount(Math.max(1, (count * ctx.warmupS) / ctx.durationS));
      clientCpu += (await this.once(warm, url, 300_000)).cpuSeconds;
      requests += warm;
    }
    // Generous limit: a target 20x slower than the calibration still completes.
    const timeoutMs = Math.max(120_000, ctx.durationS * 20_000);
    const { seconds, command, cpuSeconds } = await this.once(count, url, timeoutMs);
    clientCpu += cpuSeconds;
    const iops = count / seconds;
    const mibPerSec = (iops * this.spec.transferBytes) / (1 << 20);
    return {
      value: this.spec.metric.unit === 'MiB/s' ? mibPerSec : iops,
      iops,
      mibPerSec,
      seconds,
      totalIos: requests + count,
      clientCpuSeconds: clientCpu,
      command,
    };
  }
}
