/**
 * A target under test: something that, once started, serves the benchmark image as one LUN
 * on a loopback portal. Add a kind (e.g. the gateway on an embedded-store image) by
 * implementing `TargetKind` and listing it in `targets/index.ts`.
 */
import { probeLun } from '../lib/initiator';
import { CpuTimes, Daemon, cpuTimes, onCleanup, tail } from '../lib/proc';

export interface BenchEnv {
  /** The preconditioned image file every target serves. */
  readonly image: string;
  readonly imageSize: number;
  /** Scratch directory of this run (data dirs, logs). */
  readonly workDir: string;
  /** Progress output for people. */
  readonly log: (line: string) => void;
  /** Where the gateway writes a CPU profile, when profiling. */
  readonly cpuProfile?: { readonly dir: string; readonly name: string };
}

export interface RunningTarget {
  readonly kind: string;
  /** iscsi://127.0.0.1:PORT/IQN/LUN of the benchmark LUN. */
  readonly url: string;
  /** Logical block size the LUN reports (iscsi-perf counts in blocks). */
  readonly blockSize: number;
  /** Process ids whose CPU time is the target's (for "where the time goes"). */
  readonly pid: number;
  cpu(): CpuTimes | undefined;
  /** Still running (a crash shows up here). */
  alive(): boolean;
  /** What the target printed lately (stderr/stdout tail) — for failure reports. */
  diagnostics(): string;
  /** Stop cleanly; resolves to a note when the stop was not clean (killed, non-zero exit). */
  stop(): Promise<string | undefined>;
}

export interface TargetKind {
  readonly id: string;
  readonly title: string;
  /** Version or commit string recorded in the results. */
  describe(): Promise<string>;
  /** Things that would make the figures unrepresentative (printed before the run, kept in the JSON). */
  warnings?(): string[];
  start(env: BenchEnv): Promise<RunningTarget>;
}

/**
 * The life cycle every target process shares: `stop` runs at most once, also from the
 * harness's cleanup on Ctrl-C; `ready` waits for and configures the target and returns the
 * benchmark LUN's URL, which must report the image's size (or `expectedSize`). On any failure
 * the target is stopped.
 */
export async function superviseTarget(
  id: string,
  daemon: Daemon,
  env: BenchEnv,
  stopProcess: () => Promise<string | undefined>,
  ready: () => Promise<string>,
  /** The LUN's size; null when the target fixes its own (tgt's null store: 1 TiB). */
  expectedSize: number | null = env.imageSize,
): Promise<RunningTarget> {
  let stopped: Promise<string | undefined> | undefined;
  const stop = (): Promise<string | undefined> => (stopped ??= stopProcess());
  const unregister = onCleanup(async () => {
    await stop();
  });
  try {
    const url = await ready();
    const probe = await probeLun(url);
    if (expectedSize !== null && probe.sizeBytes !== expectedSize) throw new Error(`${id} reports ${probe.sizeBytes} bytes, expected ${expectedSize}`);
    return {
      kind: id,
      url,
      blockSize: probe.blockSize,
      pid: daemon.pid,
      cpu: () => cpuTimes(daemon.pid),
      alive: () => daemon.alive,
      diagnostics: () => tail(daemon.stdout + daemon.stderr, 20),
      stop: async () => {
        const note = await stop();
        unregister();
        return note;
      },
    };
  } catch (e) {
    await stop();
    unregister();
    throw e;
  }
}
