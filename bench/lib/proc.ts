/**
 * Child processes for the benchmark: tools run to completion (or stopped after a fixed time),
 * long-running targets, and a cleanup registry so no target outlives the harness — not on an
 * error, not on Ctrl-C.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface ToolResult {
  readonly command: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallMs: number;
  /** True when the harness stopped the tool with `stopSignal` after `stopAfterMs` (expected). */
  readonly stoppedByUs: boolean;
  /** True when the hard timeout killed it (a hang). */
  readonly timedOut: boolean;
  /** CPU seconds (user+system, all threads) the tool used, sampled from /proc every 100 ms. */
  readonly cpuSeconds: number;
}

export interface ToolOptions {
  /** Hard limit; SIGKILL after it. */
  readonly timeoutMs: number;
  /** Tools that run until interrupted (iscsi-perf): send `stopSignal` after this long. */
  readonly stopAfterMs?: number;
  readonly stopSignal?: NodeJS.Signals;
  readonly env?: NodeJS.ProcessEnv;
}

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function runTool(cmd: string, args: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const untrack = track(child);
    let stdout = '';
    let stderr = '';
    let stoppedByUs = false;
    let timedOut = false;
    let cpuTicks = 0;
    const sampleCpu = () => {
      const t = child.pid === undefined ? undefined : statTicks(`/proc/${child.pid}/stat`);
      if (t !== undefined) cpuTicks = Math.max(cpuTicks, t);
    };
    const cpuTimer = setInterval(sampleCpu, 100);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const stopTimer =
      opts.stopAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            sampleCpu();
            stoppedByUs = true;
            child.kill(opts.stopSignal ?? 'SIGINT');
          }, opts.stopAfterMs);
    const killTimer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    const done = () => {
      clearInterval(cpuTimer);
      clearTimeout(killTimer);
      if (stopTimer) clearTimeout(stopTimer);
      untrack();
    };
    child.on('error', (e) => {
      done();
      reject(e);
    });
    child.on('close', (code, signal) => {
      done();
      resolve({ command: commandLine(cmd, args), code, signal, stdout, stderr, wallMs: Date.now() - started, stoppedByUs, timedOut, cpuSeconds: cpuTicks / CLK_TCK });
    });
  });
}

/** A tool must have exited 0; otherwise throw with what it printed. */
export async function runChecked(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolResult> {
  const r = await runTool(cmd, args, { timeoutMs });
  if (r.code !== 0) {
    throw new Error(`${r.command} failed (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}):\n${tail(r.stdout + r.stderr)}`);
  }
  return r;
}

export function tail(text: string, lines = 15): string {
  return text.replace(/\r/g, '\n').trimEnd().split('\n').filter(Boolean).slice(-lines).join('\n');
}

// ---- long-running children and cleanup ------------------------------------------------

const live = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];

function track(child: ChildProcess): () => void {
  live.add(child);
  const untrack = () => live.delete(child);
  child.on('exit', untrack);
  return untrack;
}

/** A daemon the harness owns: output captured, killed with the harness. */
export class Daemon {
  private out = '';
  private err = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly command: string,
    readonly proc: ChildProcess,
  ) {
    track(proc);
    proc.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) =>
      proc.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      }),
    );
  }

  /** `leaves`: files the daemon may leave behind if killed (removed by a later run's reaper). */
  static spawn(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv, leaves: string[] = []): Daemon {
    const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (proc.pid !== undefined) recordDaemon(proc.pid, args.join(' '), leaves);
    return new Daemon(commandLine(cmd, args), proc);
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.command}: no pid (spawn failed)`);
    return this.proc.pid;
  }
  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get alive(): boolean {
    return this.exitInfo === undefined;
  }
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  /** Resolve once `predicate` holds; reject when the daemon exits first or time runs out. */
  async waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (!this.alive) throw new Error(`${this.command} exited (${describeExit(this.exitInfo)}) before ${what}:\n${tail(this.out + this.err, 40)}`);
      if (await predicate()) return;
      if (Date.now() > deadline) throw new Error(`${this.command}: no ${what} after ${timeoutMs} ms:\n${tail(this.out + this.err)}`);
      await sleep(50);
    }
  }

  /** Send `signal`, wait up to `graceMs`, then SIGKILL. Returns how it ended. */
  async stop(signal: NodeJS.Signals | null, graceMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    if (!this.alive) return { ...this.exitInfo!, killed: false };
    if (signal) this.proc.kill(signal);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs));
    const first = await Promise.race([this.exited, timer]);
    if (first !== 'timeout') return { ...first, killed: false };
    this.proc.kill('SIGKILL');
    const end = await this.exited;
    return { ...end, killed: true };
  }
}

export function describeExit(e: { code: number | null; signal: NodeJS.Signals | null } | undefined): string {
  if (!e) return 'running';
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

/** Register async cleanup (run in reverse order by `runCleanups`). */
export function onCleanup(fn: () => Promise<void>): () => void {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup failed: ${(e as Error).message}\n`);
    }
  }
}

/** Last resort: whatever is still running dies with us (synchronous; safe in 'exit'). */
export function killAllNow(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

let installed = false;
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  process.on('uncaughtException', (e) => {
    process.stderr.write(`bench: internal error: ${e.stack ?? e.message}\n`);
    void runCleanups().finally(() => {
      killAllNow();
      process.exit(2);
    });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping targets and cleaning up\n`);
      void runCleanups().finally(() => {
        killAllNow();
        process.exit(130);
      });
    });
  }
}

// ---- small helpers -----------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
    s.on('error', reject);
  });
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// ---- CPU accounting from /proc -----------------------------------------------------

export interface CpuTimes {
  /** user+system seconds of the whole process (all threads). */
  readonly process: number;
  /** user+system seconds of the main thread (the event loop of tgtd and of node). */
  readonly mainThread: number;
  /** Context switches of all threads so far (voluntary + involuntary). */
  readonly contextSwitches: number;
  readonly threads: number;
}

const CLK_TCK = 100; // USER_HZ on Linux; /proc/<pid>/stat counts in these ticks.

function statTicks(file: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the parenthesised comm (which may contain spaces): utime is the 14th field
  // overall, i.e. index 11 after ") ".
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

function contextSwitches(pid: number): { switches: number; threads: number } {
  let switches = 0;
  let threads = 0;
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return { switches, threads };
  }
  for (const t of tasks) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    } catch {
      continue; // thread ended meanwhile
    }
    threads++;
    for (const m of text.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) switches += Number(m[1]);
  }
  return { switches, threads };
}

export function cpuTimes(pid: number): CpuTimes | undefined {
  const p = statTicks(`/proc/${pid}/stat`);
  const m = statTicks(`/proc/${pid}/task/${pid}/stat`);
  if (p === undefined || m === undefined) return undefined;
  const cs = contextSwitches(pid);
  return { process: p / CLK_TCK, mainThread: m / CLK_TCK, contextSwitches: cs.switches, threads: cs.threads };
}

/** Busy seconds of the whole machine (all CPUs) so far, from /proc/stat. */
export function machineBusy(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

// ---- leftovers of a harness that was killed -9 -------------------------------------

/**
 * Daemons we start and scratch files we create are listed here with our pid; a later run
 * kills the daemons and removes the files of runs whose harness is gone (a SIGKILLed harness
 * cannot clean up after itself). Entries of a harness that is still running are left alone.
 */
const LEDGER = '/tmp/iscsi-gateway-bench.ledger';

interface LedgerEntry {
  readonly owner: number;
  /** A daemon: its pid and a piece of its command line (guards against pid reuse). */
  readonly pid?: number;
  readonly marker?: string;
  /** Files or directories to remove once the owner is gone. */
  readonly files?: string[];
}

/** Only what the benchmark itself creates may be removed by the reaper. */
function removable(file: string): boolean {
  return /^igw-bench-/.test(path.basename(file)) || /^\/var\/run\/tgtd\/socket\.\d+(\.lock)?$/.test(file);
}

function record(entry: Omit<LedgerEntry, 'owner'>): void {
  fs.appendFileSync(LEDGER, JSON.stringify({ owner: process.pid, ...entry }) + '\n');
}

export function recordDaemon(pid: number, marker: string, files: string[] = []): void {
  record({ pid, marker, files });
}

export function recordScratch(dir: string): void {
  record({ files: [dir] });
}

/** Alive and not a zombie (an init that does not reap leaves killed processes as zombies). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function reapLeftovers(log: (line: string) => void): void {
  let text: string;
  try {
    text = fs.readFileSync(LEDGER, 'utf8');
  } catch {
    return;
  }
  const keep: string[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    let entry: LedgerEntry;
    try {
      entry = JSON.parse(line) as LedgerEntry;
    } catch {
      continue;
    }
    if (entry.owner !== process.pid && running(entry.owner)) {
      keep.push(line);
      continue;
    }
    if (entry.pid !== undefined && entry.marker !== undefined) {
      let cmdline: string | undefined;
      try {
        cmdline = fs.readFileSync(`/proc/${entry.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      } catch {
        cmdline = undefined; // gone
      }
      if (cmdline?.includes(entry.marker)) {
        log(`killing benchmark daemon ${entry.pid} (${cmdline}) left by an earlier run`);
        try {
          process.kill(entry.pid, 'SIGKILL');
        } catch {
          // raced with its exit
        }
      }
    }
    for (const f of entry.files ?? []) {
      if (!removable(f) || !fs.existsSync(f)) continue;
      log(`removing ${f} left by an earlier run`);
      fs.rmSync(f, { recursive: true, force: true });
    }
  }
  fs.writeFileSync(LEDGER, keep.map((l) => l + '\n').join(''));
}

// ---- is the machine quiet? ---------------------------------------------------------

export type ProcessSnapshot = Map<number, { ticks: number; comm: string; ppid: number }>;

export function snapshotProcesses(): ProcessSnapshot {
  const out: ProcessSnapshot = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    out.set(Number(name), { ticks: Number(rest[11]) + Number(rest[12]), comm, ppid: Number(rest[1]) });
  }
  return out;
}

export interface OtherLoad {
  /** CPU used by processes that are not part of the measurement, % of one core. */
  readonly pct: number;
  readonly top: string[];
}

/**
 * CPU that processes other than ours (the harness, its children — targets and tools — and
 * kernel threads such as writeback) used between two snapshots: other jobs on a shared
 * machine that compete with the measurement. Processes that started and ended in between are
 * not seen.
 */
export function otherLoad(p0: ProcessSnapshot, p1: ProcessSnapshot, seconds: number): OtherLoad {
  const ours = (pid: number, ppid: number) => pid === process.pid || ppid === process.pid || pid === 2 || ppid === 2;
  let ticks = 0;
  const top: Array<{ pid: number; comm: string; ticks: number }> = [];
  for (const [pid, v] of p1) {
    if (ours(pid, v.ppid)) continue;
    const d = v.ticks - (p0.get(pid)?.ticks ?? 0);
    if (d <= 0) continue;
    ticks += d;
    top.push({ pid, comm: v.comm, ticks: d });
  }
  top.sort((a, b) => b.ticks - a.ticks);
  const pct = (t: number) => (t / CLK_TCK / Math.max(seconds, 1e-9)) * 100;
  return { pct: pct(ticks), top: top.slice(0, 3).filter((t) => pct(t.ticks) >= 2).map((t) => `${t.comm} ${t.pid}: ${pct(t.ticks).toFixed(0)}%`) };
}

export interface BackgroundLoad {
  /** Machine busy over the window, % of all cores. */
  readonly busyPct: number;
  /** The busiest processes in the window ("comm pid: % of one core"). */
  readonly top: string[];
}

/** Sample the machine for `ms` while we do nothing: what else competes for the cores. */
export async function backgroundLoad(ms: number): Promise<BackgroundLoad> {
  const m0 = machineBusy();
  const p0 = snapshotProcesses();
  await sleep(ms);
  const m1 = machineBusy();
  const p1 = snapshotProcesses();
  const secs = Math.max(m1.total - m0.total, 1e-9);
  const deltas: Array<{ pid: number; comm: string; pct: number }> = [];
  for (const [pid, v] of p1) {
    const before = p0.get(pid)?.ticks ?? 0;
    const pct = ((v.ticks - before) / CLK_TCK / (ms / 1000)) * 100;
    if (pct >= 5) deltas.push({ pid, comm: v.comm, pct });
  }
  deltas.sort((a, b) => b.pct - a.pct);
  return { busyPct: ((m1.busy - m0.busy) / secs) * 100, top: deltas.slice(0, 3).map((d) => `${d.comm} ${d.pid}: ${d.pct.toFixed(0)}%`) };
}
