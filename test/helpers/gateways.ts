/**
 * Gateway daemons under their own names on one shared data dir (the multi-gateway, API and
 * gwcli tests), and waiting until each has applied a configuration epoch.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readStatuses } from '../../src/daemon/status';
import { CLI } from './daemon';

export class GatewayProcess {
  out = '';
  err = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => proc.on('exit', (c) => r(c)));
  }

  /**
   * `serve --name name --portal portal [--api api]`; resolves once it listens (and serves its API).
   * `extra`: more arguments (e.g. --config) and environment (e.g. CEPH_CONF).
   */
  static async start(dataDir: string, name: string, portal: string, api?: string, extra: { readonly args?: readonly string[]; readonly env?: NodeJS.ProcessEnv } = {}): Promise<GatewayProcess> {
    const args = [CLI, 'serve', '--data', dataDir, '--name', name, '--portal', portal, ...(api ? ['--api', api] : []), ...(extra.args ?? [])];
    const proc = spawn(process.execPath, args, {
      env: { ...process.env, ISCSI_GATEWAY_LOG: process.env.ISCSI_GATEWAY_LOG ?? 'warn', ...extra.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const g = new GatewayProcess(proc);
    const ready = api ? 'REST API on' : 'listening on';
    const deadline = Date.now() + 30_000;
    while (!g.out.includes(ready)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`${name} did not start:\n${g.out}\n${g.err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return g;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Wait until every named gateway is up and has applied at least `epoch`. */
export async function waitApplied(dataDir: string, names: string[], epoch: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await readStatuses(dataDir);
    const behind = names.filter((n) => !st.some((s) => s.name === n && s.up && (s.appliedEpoch ?? -1) >= epoch));
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`not applied epoch ${epoch}: ${behind.join(', ')}; ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
