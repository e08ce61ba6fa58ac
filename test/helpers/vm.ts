/**
 * The Linux kernel initiator for the HA tests: a small QEMU VM (Debian's kernel, open-iscsi,
 * dm-multipath; built by scripts/vm/build.sh) on a bridge inside a network namespace of its
 * own, next to gateway processes that run inside the same namespace on their own addresses.
 * A gateway is cut off from the VM with iptables rules on the bridge while it keeps running
 * (and stays reachable from the namespace's loopback for the test's own checks).
 *
 * Commands run in the guest through the agent on a virtio-serial port (scripts/vm/agent.sh):
 * one request per line, the answer framed by BEGIN/END markers with the exit status; requests
 * run concurrently in the guest and answers never interleave.
 * Everything has a bounded timeout; `kill()` always ends QEMU and `destroy()` the namespace.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CLI, ROOT, run, tempDir } from './daemon';

export interface GuestResult {
  code: number;
  out: string;
}

/** Build (or find in the cache) the VM's kernel and initramfs; returns their directory. */
export async function buildVm(): Promise<{ dir: string; ms: number }> {
  const t0 = Date.now();
  const r = await run(path.join(ROOT, 'scripts', 'vm', 'build.sh'), [], { timeoutMs: 20 * 60_000 });
  if (r.code !== 0) throw new Error(`scripts/vm/build.sh failed (${r.code}):\n${r.stderr}`);
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(path.join(dir, 'vmlinuz'))) throw new Error(`scripts/vm/build.sh printed no build dir:\n${r.stdout}`);
  return { dir, ms: Date.now() - t0 };
}

async function sh(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A network namespace with a bridge (br0, holding the gateways' addresses) and a tap for the VM. */
export class Netns {
  private constructor(readonly name: string) {}

  static async create(addresses: readonly string[], prefix = 24): Promise<Netns> {
    const name = `igw-vm-${process.pid}-${Date.now() % 100000}`;
    await sh('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    // If the test process exits without its `after` (an uncaught error, a timeout), the
    // namespace still goes.
    process.once('exit', ns.onExit);
    try {
      await ns.exec('ip', ['link', 'set', 'lo', 'up']);
      await ns.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
      for (const a of addresses) await ns.exec('ip', ['addr', 'add', `${a}/${prefix}`, 'dev', 'br0']);
      await ns.exec('ip', ['link', 'set', 'br0', 'up']);
      await ns.exec('ip', ['tuntap', 'add', 'tap0', 'mode', 'tap']);
      await ns.exec('ip', ['link', 'set', 'tap0', 'master', 'br0']);
      await ns.exec('ip', ['link', 'set', 'tap0', 'up']);
    } catch (e) {
      await ns.destroy();
      throw e;
    }
    return ns;
  }

  exec(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], timeoutMs);
  }

  /** Drop every packet between the VM's bridge and `address` (the process there keeps running). */
  async cut(address: string): Promise<void> {
    await this.exec('iptables', ['-I', 'INPUT', '-i', 'br0', '-d', address, '-j', 'DROP']);
    await this.exec('iptables', ['-I', 'OUTPUT', '-o', 'br0', '-s', address, '-j', 'DROP']);
  }

  async restore(address: string): Promise<void> {
    await this.exec('iptables', ['-D', 'INPUT', '-i', 'br0', '-d', address, '-j', 'DROP']);
    await this.exec('iptables', ['-D', 'OUTPUT', '-o', 'br0', '-s', address, '-j', 'DROP']);
  }

  private readonly onExit = (): void => {
    spawnSync('ip', ['netns', 'del', this.name], { timeout: 10_000 });
  };

  async destroy(): Promise<void> {
    process.removeListener('exit', this.onExit);
    await run('ip', ['netns', 'del', this.name], { timeoutMs: 20_000 });
  }
}

/** A gateway daemon (`serve`) inside a namespace; SIGKILL or SIGTERM it, start it again. */
export class NetnsGateway {
  out = '';
  err = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly name: string, readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => proc.on('exit', (c) => r(c)));
  }

  static async start(ns: Netns, dataDir: string, name: string, portal: string, api?: string): Promise<NetnsGateway> {
    const args = ['netns', 'exec', ns.name, process.execPath, CLI, 'serve', '--data', dataDir, '--name', name, '--portal', portal,
      ...(api ? ['--api', api] : [])];
    // `ip netns exec` execs the command, so the child's pid is the daemon's.
    const proc = spawn('ip', args, {
      env: { ...process.env, ISCSI_GATEWAY_LOG: process.env.ISCSI_GATEWAY_LOG ?? 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const g = new NetnsGateway(name, proc);
    const onExit = (): void => void proc.kill('SIGKILL');
    process.once('exit', onExit);
    proc.once('exit', () => process.removeListener('exit', onExit));
    const ready = api ? 'REST API on' : 'listening on';
    const deadline = Date.now() + 60_000;
    while (!g.out.includes(ready)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`${name} did not start:\n${g.out}\n${g.err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return g;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }

  async stop(graceMs = 20_000): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export interface VmOptions {
  buildDir: string;
  ns: Netns;
  /** The guest's address with prefix, e.g. 10.77.0.10/24. */
  ip: string;
  initiatorName: string;
  memMiB?: number;
  /** 'kvm', 'tcg' or 'auto' (default: IGW_VM_ACCEL, else auto: KVM if usable, TCG otherwise). */
  accel?: string;
}

type Pending = { id: number; resolve: (r: GuestResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** The VM: QEMU with the kernel, the initramfs, a virtio NIC on the namespace's tap and the agent port. */
export class Vm {
  readonly consolePath: string;
  /** Which accelerator the VM runs on, and how long the boot took until the agent answered. */
  accel = '';
  bootMs = 0;
  private qemu: ChildProcess | undefined;
  private sock: net.Socket | undefined;
  private buf = '';
  private lines: string[] = [];
  private pending: Pending[] = [];
  private ready: (() => void) | undefined;
  private nextId = 1;
  private readonly dir = tempDir('igw-vm-');

  constructor(private readonly o: VmOptions) {
    this.consolePath = path.join(this.dir, 'console.log');
  }

  console(): string {
    try {
      return readFileSync(this.consolePath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Boot and wait for the agent (TCG on a busy 2-core machine takes a minute or two). */
  async boot(timeoutMs = 300_000): Promise<void> {
    const t0 = Date.now();
    const want = this.o.accel ?? process.env.IGW_VM_ACCEL ?? 'auto';
    let kvmOk = false;
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
      kvmOk = true;
    } catch {
      // no usable /dev/kvm: TCG
    }
    if (want === 'kvm' || (want === 'auto' && kvmOk)) {
      // Some hosts (nested virtualisation) expose /dev/kvm but cannot run this kernel under it:
      // no kernel banner within 10 s means falling back to TCG (unless KVM was asked for).
      this.start('kvm');
      const banner = await this.waitConsole('Linux version', 10_000);
      if (banner) {
        await this.waitAgent(timeoutMs - (Date.now() - t0));
        this.bootMs = Date.now() - t0;
        return;
      }
      if (want === 'kvm') throw new Error(`no kernel output under KVM within 10 s:\n${this.console()}`);
      await this.kill();
    }
    this.start('tcg');
    await this.waitAgent(timeoutMs - (Date.now() - t0));
    this.bootMs = Date.now() - t0;
  }

  private start(accel: 'kvm' | 'tcg'): void {
    this.accel = accel;
    const b = this.o.buildDir;
    const agentSock = path.join(this.dir, 'agent.sock');
    rmSync(agentSock, { force: true });
    const args = [
      'netns', 'exec', this.o.ns.name, 'qemu-system-x86_64',
      '-machine', `accel=${accel}`, '-m', String(this.o.memMiB ?? 768), '-smp', '1',
      '-nographic', '-nodefaults', '-no-reboot',
      '-kernel', path.join(b, 'vmlinuz'), '-initrd', path.join(b, 'initrd.img'),
      '-append', `console=ttyS0 panic=-1 igw.ip=${this.o.ip} igw.iqn=${this.o.initiatorName}`,
      '-serial', `file:${this.consolePath}`,
      '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no', '-device', 'virtio-net-pci,netdev=n0',
      '-device', 'virtio-serial-pci',
      '-chardev', `socket,id=agent,path=${agentSock},server=on,wait=off`,
      '-device', 'virtserialport,chardev=agent,name=igw.agent',
    ];
    const qemu = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.qemu = qemu;
    const onExit = (): void => void qemu.kill('SIGKILL');
    process.once('exit', onExit);
    qemu.once('exit', () => process.removeListener('exit', onExit));
    let err = '';
    qemu.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    qemu.on('exit', (code) => this.failAll(new Error(`QEMU exited (${code}): ${err}`)));
  }

  private async waitConsole(text: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.console().includes(text)) return true;
      if (this.qemu?.exitCode !== null) return false;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  private async waitAgent(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const agentSock = path.join(this.dir, 'agent.sock');
    while (!existsSync(agentSock)) {
      if (Date.now() > deadline || this.qemu?.exitCode !== null) throw new Error(`QEMU did not start:\n${this.console()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const sock = net.connect(agentSock);
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => this.failAll(e));
    const ready = new Promise<void>((r) => (this.ready = r));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_r, rej) => {
      timer = setTimeout(() => rej(new Error(`the guest agent did not start within ${ms} ms:\n${this.console().slice(-4000)}`)), Math.max(ms, 1));
    });
    try {
      await Promise.race([ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (line === 'READY') {
      this.ready?.();
      this.ready = undefined;
      return;
    }
    if (line.startsWith('BEGIN ')) {
      this.lines = [];
      return;
    }
    const end = /^END (\d+) (\d+)$/.exec(line);
    if (end) {
      const id = Number(end[1]);
      const body = this.lines.join('');
      this.lines = [];
      const p = this.pending.find((x) => x.id === id);
      if (!p) return;
      this.pending = this.pending.filter((x) => x !== p);
      clearTimeout(p.timer);
      p.resolve({ code: Number(end[2]), out: Buffer.from(body, 'base64').toString('utf8') });
      return;
    }
    // Bounded: one answer's lines at a time.
    if (this.lines.length < 200_000) this.lines.push(line);
  }

  private failAll(e: Error): void {
    for (const p of this.pending) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending = [];
  }

  /** Run a shell script in the guest; the guest kills it after `timeoutS`, the host waits 60 s more. */
  exec(script: string, timeoutS = 60): Promise<GuestResult> {
    const sock = this.sock;
    if (!sock) return Promise.reject(new Error('the VM is not booted'));
    const id = this.nextId++;
    return new Promise<GuestResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = this.pending.filter((x) => x.id !== id);
        reject(new Error(`guest command ${id} did not answer within ${timeoutS + 60} s: ${script.slice(0, 200)}`));
      }, (timeoutS + 60) * 1000);
      this.pending.push({ id, resolve, reject, timer });
      sock.write(`${id} ${timeoutS} ${Buffer.from(script).toString('base64')}\n`);
    });
  }

  /** exec() that must exit 0; the error carries the output. */
  async ok(script: string, timeoutS = 60): Promise<string> {
    const r = await this.exec(script, timeoutS);
    if (r.code !== 0) throw new Error(`guest: exit ${r.code}: ${script.slice(0, 300)}\n${r.out}`);
    return r.out;
  }

  async kill(): Promise<void> {
    this.sock?.destroy();
    this.sock = undefined;
    const q = this.qemu;
    this.qemu = undefined;
    if (q && q.exitCode === null && q.signalCode === null) {
      const exited = new Promise((r) => q.once('exit', r));
      q.kill('SIGKILL');
      await exited;
    }
  }
}
