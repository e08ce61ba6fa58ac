/**
 * Integration-test helpers: a free loopback port, the real gateway daemon as a child process,
 * and external tools (libiscsi, qemu) run with a timeout.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const DEMO_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:demo';

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

export function tempDir(prefix = 'igw-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export class Daemon {
  private exited: Promise<number | null>;
  stdout = '';
  stderr = '';

  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly dataDir: string,
  ) {
    proc.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  }

  get url(): string {
    return `iscsi://127.0.0.1:${this.port}/${DEMO_IQN}/0`;
  }

  /**
   * Start `iscsi-gateway serve` on a free loopback port. Resolves once it is listening.
   * `dataDir` persists across restarts when given.
   */
  static async start(opts: { dataDir?: string; port?: number; env?: NodeJS.ProcessEnv; extraArgs?: string[] } = {}): Promise<Daemon> {
    const port = opts.port ?? (await freePort());
    const dataDir = opts.dataDir ?? tempDir();
    const proc = spawn(process.execPath, [CLI, 'serve', '--data', dataDir, '--portal', `127.0.0.1:${port}`, ...(opts.extraArgs ?? [])], {
      env: { ...process.env, ISCSI_GATEWAY_LOG: process.env.ISCSI_GATEWAY_LOG ?? 'warn', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const d = new Daemon(proc, port, dataDir);
    const deadline = Date.now() + 30_000;
    while (!d.stdout.includes('listening on')) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`daemon did not start (exit ${proc.exitCode}):\n${d.stdout}\n${d.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return d;
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** kill -9 (crash). */
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
}
