/**
 * libiscsi's `iscsi-perf`: reads only (random with -r, else sequential), a fixed number of
 * requests in flight, runs until SIGINT and prints one line per second:
 *   "00:00:07 - lba 1234, iops current 15012 (58 MB/s), iops average ..."
 * (its "MB" are MiB). We run warm-up + duration seconds, drop the warm-up seconds and average
 * the rest.
 */
import { INITIATOR_IQN } from '../lib/initiator';
import { runTool, tail } from '../lib/proc';
import { Measurement, Metric, RunContext, Workload, WorkloadError } from './workload';

export interface IscsiPerfSpec {
  readonly id: string;
  readonly title: string;
  readonly transferBytes: number;
  readonly depth: number;
  readonly random: boolean;
  readonly metric: Metric;
}

export interface PerSecond {
  readonly second: number;
  readonly iops: number;
}

export function parseIscsiPerf(output: string): PerSecond[] {
  const out: PerSecond[] = [];
  const re = /(\d+):(\d\d):(\d\d) - lba \d+, iops current (\d+)/g;
  for (let m = re.exec(output); m; m = re.exec(output)) {
    out.push({ second: Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]), iops: Number(m[4]) });
  }
  return out;
}

export class IscsiPerfWorkload implements Workload {
  readonly tool = 'iscsi-perf';
  constructor(private readonly spec: IscsiPerfSpec) {}

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
    const { transferBytes, depth, random } = this.spec;
    return { transferBytes, depth, random };
  }

  async run(ctx: RunContext): Promise<Measurement> {
    const { transferBytes, depth, random } = this.spec;
    const { blockSize, url } = ctx.target;
    if (transferBytes % blockSize !== 0) throw new Error(`${transferBytes}-byte requests do not fit ${blockSize}-byte blocks`);
    const args = ['-i', INITIATOR_IQN, '-m', String(depth), '-b', String(transferBytes / blockSize), ...(random ? ['-r'] : []), url];
    const runMs = (ctx.warmupS + ctx.durationS) * 1000 + 600; // the last whole second gets printed
    const r = await runTool('iscsi-perf', args, { stopAfterMs: runMs, stopSignal: 'SIGINT', timeoutMs: runMs + 30_000 });
    const output = r.stdout + r.stderr;
    if (!r.stoppedByUs) {
      throw new WorkloadError(`iscsi-perf ended by itself after ${(r.wallMs / 1000).toFixed(1)} s (exit ${r.code ?? r.signal})`, r.command, tail(output, 25));
    }
    if (r.timedOut) throw new WorkloadError('iscsi-perf did not stop on SIGINT', r.command, tail(output, 25));
    const expectBytes = new RegExp(`FIXED transfer size of \\d+ blocks \\(${transferBytes} byte\\)`);
    if (!expectBytes.test(output)) throw new WorkloadError(`iscsi-perf did not use ${transferBytes}-byte requests`, r.command, tail(output, 25));
    if (/error|fail/i.test(output.replace(/^.*press CTRL-C to abort\./s, ''))) {
      throw new WorkloadError('iscsi-perf reported errors', r.command, tail(output, 25));
    }
    const all = parseIscsiPerf(output);
    const measured = all.filter((s) => s.second > ctx.warmupS);
    if (measured.length < Math.max(1, ctx.durationS - 1)) {
      throw new WorkloadError(`iscsi-perf printed ${measured.length} per-second figures after warm-up, expected ${ctx.durationS}`, r.command, tail(output, 25));
    }
    const iopsValues = measured.map((s) => s.iops);
    const iops = iopsValues.reduce((a, b) => a + b, 0) / iopsValues.length;
    const mibPerSec = (iops * transferBytes) / (1 << 20);
    const totalIos = all.reduce((a, s) => a + s.iops, 0);
    return {
      value: this.spec.metric.unit === 'MiB/s' ? mibPerSec : iops,
      iops,
      mibPerSec,
      seconds: measured.length,
      totalIos,
      clientCpuSeconds: r.cpuSeconds,
      perSecond: {
        min: this.scale(Math.min(...iopsValues)),
        max: this.scale(Math.max(...iopsValues)),
        n: measured.length,
      },
      command: r.command,
    };
  }

  private scale(iops: number): number {
    return this.spec.metric.unit === 'MiB/s' ? (iops * this.spec.transferBytes) / (1 << 20) : iops;
  }
}
