/**
 * A workload: one client command line run against a running target, giving one figure.
 * Rows of the report compare two (target, workload) cells; see `workloads/index.ts`.
 */
import { BenchEnv, RunningTarget } from '../targets/target';

export type Unit = 'IOPS' | 'MiB/s' | 's';

export interface Metric {
  readonly unit: Unit;
  /** IOPS and MiB/s: higher is better; seconds: lower is better. */
  readonly higherIsBetter: boolean;
}

export interface RunContext {
  readonly target: RunningTarget;
  readonly env: BenchEnv;
  /** Seconds a timed workload measures, after `warmupS`. */
  readonly durationS: number;
  readonly warmupS: number;
}

export interface Measurement {
  /** The figure, in the workload's metric unit. */
  readonly value: number;
  readonly iops?: number;
  readonly mibPerSec?: number;
  /** Measured interval (excluding warm-up). */
  readonly seconds: number;
  /** I/Os the target served during the whole tool run (warm-up included): CPU per I/O. */
  readonly totalIos?: number;
  /** CPU seconds the client tool(s) used during the whole run (warm-up included). */
  readonly clientCpuSeconds?: number;
  /** Spread inside one run (iscsi-perf's per-second figures). */
  readonly perSecond?: { readonly min: number; readonly max: number; readonly n: number };
  /** The exact client command line. */
  readonly command: string;
}

export interface Workload {
  readonly id: string;
  readonly title: string;
  readonly metric: Metric;
  /** Client tool, for the report. */
  readonly tool: string;
  run(ctx: RunContext): Promise<Measurement>;
  /** Parameters fixed during the run (e.g. a calibrated request count), for the results file. */
  parameters(): Record<string, unknown>;
}

export class WorkloadError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly output: string,
  ) {
    super(message);
    this.name = 'WorkloadError';
  }
}
