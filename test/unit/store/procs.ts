/** Driving test children line by line. */
import { ChildProcess, spawn } from 'node:child_process';
import { childScript } from './helpers';

export class Child {
  readonly proc: ChildProcess;
  private buf = '';
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  exited: Promise<number | null>;
  private closed = false;

  constructor(script: string, args: string[]) {
    this.proc = spawn(process.execPath, [childScript(script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    this.exited = new Promise((r) => this.proc.on('close', (code) => {
      this.closed = true;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
      r(code);
    }));
  }

  /** Wait for a line matching re (consuming lines up to it). */
  async waitFor(re: RegExp, timeoutMs = 20000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => re.test(l));
      if (i >= 0) {
        const line = this.lines[i];
        this.lines.splice(0, i + 1);
        return line;
      }
      const err = this.lines.find((l) => l.startsWith('error '));
      if (err) throw new Error(`child failed: ${err}`);
      if (this.closed) throw new Error(`child exited (${this.proc.exitCode}) before printing ${re}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; saw: ${this.lines.join(' | ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }

  kill(): Promise<number | null> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }
}
