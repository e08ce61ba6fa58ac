/**
 * What a password-guessing initiator costs everyone else: one gateway daemon, an ACL target
 * with a CHAP host; `qemu-img bench` (4 KiB reads, QD16) logs in as that host with the right
 * secret from 127.0.0.1 while an "attacker" on 127.0.0.2 runs `failures` complete CHAP logins
 * with a wrong secret as fast as it can (4 connections in parallel). Figures:
 *
 *   - the bench's throughput alone and under attack (alternating, medians), and the cost in %;
 *   - the attacker's failed logins per second with throttling off (raw cost of a failure) and
 *     how many it managed during the bench with the default per-address throttle.
 *
 *   node dist/bench/auth.js [--rounds N] [--failures N] [--dir DIR] [--json]
 */
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, cpuTimes, onCleanup, runTool, tail } from './lib/proc';
import { median as medianOf } from './lib/report';
import { gatewayListening, spawnGateway } from './targets/gateway';
import { parseQemuImgBench } from './workloads/qemu-img-bench';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:bench-auth';
const HOST = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
const USER = 'common12';
const SECRET = 'pass12345678';
const IMAGE_BYTES = 256 << 20;
const ATTACKER_ADDRESS = '127.0.0.2';
const ATTACKER_PARALLEL = 4;

export interface AuthBenchVariant {
  readonly throttle: 'off' | 'default';
  /** Bench throughput (requests/s) alone and under attack, per round. */
  readonly aloneRuns: number[];
  readonly attackedRuns: number[];
  readonly alone: number;
  readonly attacked: number;
  /** 100 × (1 − attacked / alone). */
  readonly costPct: number;
  /** Failed logins the attacker completed while the attacked benches ran, per round. */
  readonly failuresDuringBench: number[];
  /** Failed logins per second the attacker achieved (median over rounds). */
  readonly failuresPerSecond: number;
  /** Gateway CPU (ms, all threads) per failed login, measured with no other load (throttle off only). */
  readonly gatewayCpuMsPerFailure?: number;
}

export interface AuthBenchResult {
  readonly rounds: number;
  readonly failures: number;
  readonly benchCommand: string;
  readonly variants: AuthBenchVariant[];
}

// ---- a minimal CHAP login that fails (independent PDU framing, as the test initiator) ----

function loginPdu(pairs: Array<[string, string]>, isid: Buffer, cmdSN: number, expStatSN: number): Buffer {
  const data = Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''));
  const pad = (4 - (data.length & 3)) & 3;
  const bhs = Buffer.alloc(48);
  bhs[0] = 0x43; // Login Request, immediate
  bhs[1] = 0x81; // T=1, CSG=0, NSG=1
  bhs.writeUIntBE(data.length, 5, 3);
  isid.copy(bhs, 8);
  bhs.writeUInt32BE(cmdSN, 24);
  bhs.writeUInt32BE(expStatSN, 28);
  return Buffer.concat([bhs, data, Buffer.alloc(pad)]);
}

/** One complete CHAP login with a wrong secret; resolves with the login status (0x0201 expected; -1: refused unanswered). */
function failedLogin(port: number, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: ATTACKER_ADDRESS });
    const isid = Buffer.from('80000000', 'hex');
    const isidFull = Buffer.concat([isid, Buffer.from([n >> 8 & 0xff, n & 0xff])]);
    let buf = Buffer.alloc(0);
    let step = 0;
    let statSN = 0;
    const timer = setTimeout(() => finish(new Error('attacker login timed out')), 60_000);
    const finish = (e: Error | undefined, status?: number) => {
      clearTimeout(timer);
      socket.destroy();
      if (e) reject(e);
      else resolve(status ?? -1);
    };
    socket.on('error', (e) => finish(e));
    // Closed without an answer: the gateway refused the connection (too many waiting logins).
    socket.on('close', () => finish(undefined, -1));
    socket.on('connect', () => socket.write(loginPdu([['InitiatorName', HOST], ['TargetName', IQN], ['AuthMethod', 'CHAP']], isidFull, 1, 0)));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 48) {
        const len = buf.readUIntBE(5, 3);
        const total = 48 + len + ((4 - (len & 3)) & 3);
        if (buf.length < total) return;
        const bhs = buf.subarray(0, 48);
        const text = buf.subarray(48, 48 + len).toString();
        buf = buf.subarray(total);
        const status = bhs.readUInt16BE(36);
        statSN = bhs.readUInt32BE(24);
        if (status !== 0) return finish(undefined, status);
        step++;
        if (step === 1) socket.write(loginPdu([['CHAP_A', '5']], isidFull, 1, statSN + 1));
        else if (step === 2) {
          const keys = Object.fromEntries(text.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
          const r = createHash('md5').update(Buffer.from([Number(keys.CHAP_I)])).update('wrongpass1234').update(Buffer.from(String(keys.CHAP_C).slice(2), 'hex')).digest('hex');
          socket.write(loginPdu([['CHAP_N', USER], ['CHAP_R', `0x${r}`]], isidFull, 1, statSN + 1));
        } else return finish(new Error('the wrong secret was accepted'));
      }
    });
  });
}

/** Run failed logins, `parallel` at a time, until `total` are done or `stop()` says so. */
export async function attack(port: number, total: number, stop: () => boolean): Promise<{ done: number; refused: number; seconds: number; times: number[] }> {
  let next = 0;
  let done = 0;
  let refused = 0;
  const times: number[] = [];
  const t0 = Date.now();
  const worker = async () => {
    while (next < total && !stop()) {
      const n = next++;
      const status = await failedLogin(port, n);
      if (status === -1) {
        refused++;
        continue;
      }
      if (status !== 0x0201) throw new Error(`attacker login ended with status 0x${status.toString(16)}, expected 0x0201`);
      done++;
      times.push(Date.now());
    }
  };
  await Promise.all(Array.from({ length: ATTACKER_PARALLEL }, worker));
  return { done, refused, seconds: (Date.now() - t0) / 1000, times };
}

function imageOpts(port: number): string {
  return `driver=iscsi,transport=tcp,portal=127.0.0.1:${port},target=${IQN},lun=0,initiator-name=${HOST},user=${USER},password=${SECRET}`;
}

function benchArgs(port: number, count: number): string[] {
  return ['bench', '--image-opts', '-t', 'none', '-c', String(count), '-d', '16', '-s', '4096', '-S', '4096', imageOpts(port)];
}

async function qemuBench(port: number, count: number): Promise<{ perSecond: number; start: number; end: number }> {
  const start = Date.now();
  const r = await runTool('qemu-img', benchArgs(port, count), { timeoutMs: 300_000 });
  const end = Date.now();
  const s = parseQemuImgBench(r.stdout + r.stderr);
  if (r.code !== 0 || s === undefined) throw new Error(`${r.command} failed (exit ${String(r.code)}):\n${tail(r.stdout + r.stderr)}`);
  return { perSecond: count / s, start, end };
}

function median(xs: readonly number[]): number {
  return medianOf(xs) ?? NaN;
}

async function variant(
  cli: string, base: string, throttle: 'off' | 'default', rounds: number, failures: number, log: (s: string) => void, calibrated?: number,
): Promise<AuthBenchVariant & { count: number }> {
  const dataDir = path.join(base, `data-${throttle}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const image = path.join(dataDir, 'auth.img');
  fs.writeFileSync(image, Buffer.alloc(0));
  fs.truncateSync(image, IMAGE_BYTES);
  const config = {
    version: 1,
    epoch: 0,
    disks: { 'file/auth': { backstore: 'file', path: image, wwn: randomUUID(), controls: {} } },
    targets: {
      [IQN]: {
        portal_group_tag: 1, acl_enabled: true, controls: {}, disks: { 'file/auth': { lun_id: 0 } },
        clients: { [HOST]: { auth: { username: USER, password: SECRET }, luns: { 'file/auth': { lun_id: 0 } } } },
      },
    },
  };
  fs.writeFileSync(path.join(dataDir, 'gateway.json'), JSON.stringify(config, null, 2) + '\n');
  // "off": no address is ever delayed, so the figure is the raw cost of serving failures.
  if (throttle === 'off') process.env.ISCSI_GATEWAY_LOGIN_THROTTLE = 'free=999999999';
  let daemon: Daemon | undefined;
  try {
    const started = await spawnGateway(cli, dataDir);
    daemon = started.daemon;
    await gatewayListening(daemon);
    const port = started.port;
    // Calibrate (throttle off) the bench to last about as long as the attacker needs for its
    // failures, at least 4 s; the throttled variant keeps the same command line.
    let count = calibrated ?? 0;
    if (!calibrated) {
      const probe = await qemuBench(port, 20_000);
      const probeAttack = await attack(port, 100, () => false);
      const attackSeconds = (failures / probeAttack.done) * probeAttack.seconds;
      count = Math.max(20_000, Math.round(probe.perSecond * Math.max(4, attackSeconds * 1.1)));
      log(`  calibration: ${Math.round(probe.perSecond)} req/s alone; attacker ${(probeAttack.done / probeAttack.seconds).toFixed(0)} failures/s; bench -c ${count}`);
    }
    // The gateway's own CPU per failure, without the bench (the attacker's CPU is not the gateway's).
    let gatewayCpuMsPerFailure: number | undefined;
    if (throttle === 'off') {
      const c0 = cpuTimes(daemon.pid);
      const only = await attack(port, failures, () => false);
      const c1 = cpuTimes(daemon.pid);
      if (c0 && c1) gatewayCpuMsPerFailure = ((c1.process - c0.process) * 1000) / only.done;
      log(`  attack alone: ${only.done} failures in ${only.seconds.toFixed(1)} s, gateway CPU ${gatewayCpuMsPerFailure?.toFixed(2) ?? '?'} ms per failure`);
    }
    const alone: number[] = [];
    const attacked: number[] = [];
    const during: number[] = [];
    const rates: number[] = [];
    for (let round = 0; round < rounds; round++) {
      alone.push((await qemuBench(port, count)).perSecond);
      let benchDone = false;
      const attacking = attack(port, failures, () => benchDone);
      const b = await qemuBench(port, count);
      benchDone = throttle === 'default'; // throttled: stop once the bench is over; off: let it finish its failures
      const a = await attacking;
      attacked.push(b.perSecond);
      during.push(a.times.filter((t) => t >= b.start && t <= b.end).length);
      rates.push(a.done / a.seconds);
      log(`  throttle ${throttle} round ${round + 1}: alone ${Math.round(alone[round])} req/s, attacked ${Math.round(b.perSecond)} req/s; attacker ${a.done} failures (+${a.refused} refused unanswered) in ${a.seconds.toFixed(1)} s, ${during[round]} during the bench`);
    }
    const a = median(alone);
    const x = median(attacked);
    return {
      count, throttle, aloneRuns: alone, attackedRuns: attacked, alone: a, attacked: x, costPct: 100 * (1 - x / a),
      failuresDuringBench: during, failuresPerSecond: median(rates), gatewayCpuMsPerFailure,
    };
  } finally {
    delete process.env.ISCSI_GATEWAY_LOGIN_THROTTLE;
    await daemon?.stop('SIGTERM', 20_000);
  }
}

export async function runAuthBench(
  options: { rounds?: number; failures?: number; dir?: string; cli?: string; log?: (s: string) => void } = {},
): Promise<AuthBenchResult> {
  const rounds = options.rounds ?? 3;
  const failures = options.failures ?? 1000;
  const log = options.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const cli = options.cli ?? path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} not found: build first (npm run build)`);
  const base = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'igw-auth-'));
  const dropScratch = onCleanup(async () => fs.rmSync(base, { recursive: true, force: true }));
  try {
    const variants: AuthBenchVariant[] = [];
    const off = await variant(cli, base, 'off', rounds, failures, log);
    const throttled = await variant(cli, base, 'default', rounds, failures, log, off.count);
    variants.push(off, throttled);
    return { rounds, failures, benchCommand: `qemu-img ${benchArgs(0, 0).join(' ').replace(/password=[^,\s]+/, 'password=***')}`, variants };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
    dropScratch();
  }
}

export function formatAuthBench(r: AuthBenchResult): string {
  const lines = [
    `${r.failures} failed CHAP logins from ${ATTACKER_ADDRESS} (${ATTACKER_PARALLEL} in parallel) against a CHAP session's qemu-img bench (4 KiB reads, QD16) from 127.0.0.1; medians of ${r.rounds} rounds`,
    'throttle  alone req/s  attacked req/s  cost     attacker failures/s  failures during bench',
  ];
  for (const v of r.variants) {
    lines.push(
      `${v.throttle.padEnd(8)}  ${Math.round(v.alone).toString().padStart(11)}  ${Math.round(v.attacked).toString().padStart(14)}  ${`${v.costPct.toFixed(1)} %`.padStart(7)}  ${v.failuresPerSecond.toFixed(0).padStart(19)}  ${v.failuresDuringBench.join('/').padStart(21)}`,
    );
  }
  const off = r.variants.find((v) => v.gatewayCpuMsPerFailure !== undefined);
  if (off) lines.push(`  gateway CPU per failed login (no other load): ${off.gatewayCpuMsPerFailure!.toFixed(2)} ms, i.e. ${((off.gatewayCpuMsPerFailure! * r.failures) / 1000).toFixed(2)} s of one core for ${r.failures}`);
  lines.push(`  bench: ${r.benchCommand}`);
  return lines.join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  runAuthBench({ rounds: get('--rounds') ? Number(get('--rounds')) : undefined, failures: get('--failures') ? Number(get('--failures')) : undefined, dir: get('--dir') })
    .then((r) => process.stdout.write((args.includes('--json') ? JSON.stringify(r, null, 2) : formatAuthBench(r)) + '\n'))
    .catch((e: unknown) => {
      process.stderr.write(`auth bench failed: ${(e as Error).stack}\n`);
      process.exitCode = 1;
    });
}
