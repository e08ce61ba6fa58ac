/**
 * The "rbd" section of `npm run bench`: one throw-away Ceph cluster (scripts/ceph-cluster.sh,
 * memstore, 1 OSD, no mgr) and one 256 MiB image, measured three ways:
 *
 *   direct   qemu-img bench through QEMU's own rbd driver (rbd:pool/image:conf=...): librbd in
 *            the client, no gateway — the ceiling;
 *   gateway  the same qemu-img bench command line through the gateway's iSCSI LUN on that image
 *            (iscsi://): the same client both ways, so the ratio is the gateway's cost;
 *   fio      fio --ioengine=rbd (random I/O, which qemu-img bench cannot do), for reference.
 *
 * Workloads: 4 KiB reads and writes at QD32 (qemu-img bench has no random mode: a prime step of
 * 48271 blocks scatters them over the image, every block once per pass), 1 MiB sequential
 * reads and writes at QD8. Gateway CPU per I/O from /proc (user+system, all threads). The
 * direct runs go first with no gateway running (one exclusive-lock holder at a time); then the
 * gateway opens the image. Figures are medians over the rounds.
 *
 * Active/active (the `rbd` backstore on Ceph, src/ha/active-active.ts): a second gateway
 * (127.0.0.2, same data dir) joins the target, and two qemu-img bench clients run at once,
 * first both through gateway 1, then one through each gateway; the ratio is the aggregate
 * throughput of two gateways against one, CPU per I/O summed over the gateways. On this
 * machine the OSD, the monitors, both gateways and both clients share the same cores, so the
 * ratio shows what a second gateway costs or gains here, not what separate hosts would give.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, cpuTimes, runTool } from './lib/proc';
import { gatewayListening } from './targets/gateway';
import type { WriterResult } from './rbd-writer';

const MiB = 1024 * 1024;
const IMAGE_BYTES = 256 * MiB;
const GATEWAY_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:bench-rbd';
/** Prime, coprime with the image's 65536 blocks: every 4 KiB block once per pass, far apart. */
const SCATTER_STEP = 48271 * 4096;
const PATTERN = 0xa5;

export interface RbdBenchRow {
  readonly workload: string;
  readonly unit: 'IOPS' | 'MiB/s';
  /** qemu-img bench command, URL left out (the same both ways). */
  readonly command: string;
  readonly direct: number;
  readonly gateway: number;
  /** gateway / direct. */
  readonly ratio: number;
  /** Gateway daemon CPU (user+system, all threads: librbd's included) per I/O, microseconds. */
  readonly gatewayCpuUs: number;
  /** Of which the JS (event-loop) thread: iSCSI, SCSI and the binding's submit/complete. */
  readonly gatewayMainCpuUs: number;
  readonly samples: { readonly direct: number[]; readonly gateway: number[] };
}

export interface FioRow {
  readonly workload: string;
  readonly command: string;
  readonly unit: 'IOPS' | 'MiB/s';
  readonly value: number;
  readonly latencyMs: number;
}

export interface ActiveActiveRow {
  readonly workload: string;
  readonly unit: 'IOPS' | 'MiB/s';
  /** Aggregate of the two clients, both through gateway 1. */
  readonly oneGateway: number;
  /** Aggregate of the two clients, one through each gateway. */
  readonly twoGateways: number;
  /** twoGateways / oneGateway. */
  readonly ratio: number;
  /** Gateway CPU (both gateways, all threads) per I/O, microseconds. */
  readonly oneGatewayCpuUs: number;
  readonly twoGatewaysCpuUs: number;
  readonly samples: { readonly oneGateway: number[]; readonly twoGateways: number[] };
}

/** Two librbd writers of one image with and without exclusive-lock (why active/active refuses it). */
export interface LockPingPongRow {
  readonly features: string;
  readonly oneWriterIops: number;
  /** Sum of the two writers running at once. */
  readonly twoWritersIops: number;
  readonly twoWritersP99Ms: number;
  readonly oneWriterCpuUs: number;
  readonly twoWritersCpuUs: number;
}

export interface RbdBenchResult {
  readonly objectStore: string;
  readonly imageBytes: number;
  readonly rounds: number;
  readonly seconds: number;
  readonly rows: RbdBenchRow[];
  readonly fio: FioRow[];
  /** Two clients through one gateway against one client per gateway (active/active). */
  readonly activeActive: ActiveActiveRow[];
  readonly lockPingPong: LockPingPongRow[];
}

interface Spec {
  readonly name: string;
  readonly write: boolean;
  readonly bytes: number;
  readonly depth: number;
  readonly step?: number;
  readonly unit: 'IOPS' | 'MiB/s';
}

const SPECS: readonly Spec[] = [
  { name: '4k scattered read QD32', write: false, bytes: 4096, depth: 32, step: SCATTER_STEP, unit: 'IOPS' },
  { name: '4k scattered write QD32', write: true, bytes: 4096, depth: 32, step: SCATTER_STEP, unit: 'IOPS' },
  { name: '1M sequential read QD8', write: false, bytes: MiB, depth: 8, unit: 'MiB/s' },
  { name: '1M sequential write QD8', write: true, bytes: MiB, depth: 8, unit: 'MiB/s' },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** PUT a form to the gateway's REST API (admin:admin, api_secure = false). */
function apiPut(base: string, route: string, form: Record<string, string>): Promise<{ status: number; text: string }> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(route, base), {
      method: 'PUT',
      headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `image`: a URL, or with `imageOpts` a --image-opts string (then the format is the driver's). */
function qemuArgs(spec: Spec, count: number, image: string, imageOpts = false): string[] {
  return [
    'bench', ...(imageOpts ? [] : ['-f', 'raw']), '-t', 'none',
    ...(spec.write ? ['-w', `--pattern=${PATTERN}`] : []),
    '-c', String(count), '-d', String(spec.depth), '-s', String(spec.bytes),
    ...(spec.step ? ['-S', String(spec.step)] : []),
    ...(imageOpts ? ['--image-opts'] : []),
    image,
  ];
}

export async function runRbdBench(
  options: { seconds?: number; rounds?: number; dir?: string; cli?: string; log?: (s: string) => void } = {},
): Promise<RbdBenchResult> {
  const seconds = options.seconds ?? 8;
  const rounds = options.rounds ?? 3;
  const log = options.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const cli = options.cli ?? path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
  const script = path.resolve(__dirname, '..', '..', 'scripts', 'ceph-cluster.sh');
  if (!fs.existsSync(cli)) throw new Error(`${cli} not found: build first (npm run build)`);
  const base = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'rbd-bench-'));
  const cephDir = path.join(base, 'ceph');
  const [v2, v1] = [await freePort(), await freePort()];
  const scriptEnv = { CEPH_DIR: cephDir, OBJECTSTORE: 'memstore', NUM_OSDS: '1', WITH_MGR: '0', MON_PORT_V2: String(v2), MON_PORT_V1: String(v1 === v2 ? v2 + 1 : v1) };
  const conf = path.join(cephDir, 'ceph.conf');
  const env = { CEPH_CONF: conf };
  let gw: Daemon | undefined;
  let gw2: Daemon | undefined;
  try {
    log('rbd bench: starting a memstore cluster...');
    const started = await runTool('bash', [script, 'start'], { env: scriptEnv, timeoutMs: 180_000 });
    if (started.code !== 0) throw new Error(`ceph-cluster.sh start failed:\n${(started.stdout + started.stderr).slice(-2000)}`);
    const rbd = async (...args: string[]): Promise<void> => {
      const r = await runTool('rbd', args, { env, timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`rbd ${args.join(' ')} failed: ${r.stderr.slice(-1000)}`);
    };
    // The `rbd` backstore on Ceph is active/active: no exclusive-lock (nor object-map/fast-diff).
    await rbd('create', '--size', `${IMAGE_BYTES / MiB}M`, '--image-feature', 'layering,deep-flatten', 'rbd/bench');
    // Prefill so reads hit real objects on both sides.
    await rbd('bench', '--io-type', 'write', '--io-size', '4M', '--io-threads', '4', '--io-total', String(IMAGE_BYTES), '--io-pattern', 'seq', 'rbd/bench');

    const direct = `rbd:rbd/bench:conf=${conf}`;
    const counts = new Map<string, number>();
    /** One qemu-img bench run: I/Os per second and the gateway CPU seconds meanwhile. */
    const bench = async (spec: Spec, count: number, url: string, pid?: number): Promise<{ rate: number; cpuUs: number; mainCpuUs: number }> => {
      const c0 = pid ? cpuTimes(pid) : undefined;
      const r = await runTool('qemu-img', qemuArgs(spec, count, url), { env, timeoutMs: 600_000 });
      const c1 = pid ? cpuTimes(pid) : undefined;
      const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
      if (r.code !== 0 || !m) throw new Error(`${r.command} failed (exit ${String(r.code)}):\n${(r.stdout + r.stderr).slice(-2000)}`);
      if (pid && (!c0 || !c1)) throw new Error('the gateway exited during the benchmark');
      const per = (a: number | undefined, b: number | undefined): number => (((b ?? 0) - (a ?? 0)) * 1e6) / count;
      return { rate: count / Number(m[1]), cpuUs: per(c0?.process, c1?.process), mainCpuUs: per(c0?.mainThread, c1?.mainThread) };
    };
    const value = (spec: Spec, rate: number): number => (spec.unit === 'IOPS' ? rate : (rate * spec.bytes) / MiB);
    const samples = new Map<string, { direct: number[]; gateway: number[]; cpu: number[]; main: number[] }>(
      SPECS.map((s) => [s.name, { direct: [], gateway: [], cpu: [], main: [] }]),
    );

    log('rbd bench: qemu-img bench through QEMU\'s rbd driver (no gateway running)');
    for (const spec of SPECS) {
      // qemu-img bench counts requests: calibrate once on the direct path to last about `seconds`.
      const probeCount = spec.bytes >= MiB ? 200 : 5000;
      const probe = await bench(spec, probeCount, direct);
      const count = Math.max(probeCount, Math.round(probe.rate * seconds));
      counts.set(spec.name, count);
      for (let round = 0; round < rounds; round++) {
        const s = await bench(spec, count, direct);
        samples.get(spec.name)!.direct.push(value(spec, s.rate));
        log(`  ${spec.name} direct round ${round + 1}: ${value(spec, s.rate).toFixed(0)} ${spec.unit}`);
      }
    }

    log('rbd bench: fio --ioengine=rbd (no gateway running)');
    const fio: FioRow[] = [];
    const fioSpecs = [
      { name: '4k randread QD32', rw: 'randread', bs: '4k', depth: 32, unit: 'IOPS' as const },
      { name: '4k randwrite QD32', rw: 'randwrite', bs: '4k', depth: 32, unit: 'IOPS' as const },
      { name: '1M sequential read QD8', rw: 'read', bs: '1M', depth: 8, unit: 'MiB/s' as const },
      { name: '1M sequential write QD8', rw: 'write', bs: '1M', depth: 8, unit: 'MiB/s' as const },
    ];
    for (const f of fioSpecs) {
      const args = [
        '--name=rbd', '--ioengine=rbd', '--clientname=admin', '--pool=rbd', '--rbdname=bench', `--rw=${f.rw}`, `--bs=${f.bs}`,
        `--iodepth=${f.depth}`, '--direct=1', '--time_based', `--runtime=${seconds}`, '--ramp_time=1', '--output-format=json',
      ];
      const r = await runTool('fio', args, { env, timeoutMs: (seconds + 60) * 1000 });
      const start = r.stdout.indexOf('{');
      if (r.code !== 0 || start < 0) throw new Error(`fio ${args.join(' ')} failed:\n${(r.stdout + r.stderr).slice(-2000)}`);
      interface FioJob {
        read: { iops: number; bw_bytes: number; clat_ns?: { mean: number } };
        write: { iops: number; bw_bytes: number; clat_ns?: { mean: number } };
      }
      const job = (JSON.parse(r.stdout.slice(start)) as { jobs: FioJob[] }).jobs[0];
      const side = f.rw.includes('write') ? job.write : job.read;
      const v = f.unit === 'IOPS' ? side.iops : side.bw_bytes / MiB;
      fio.push({ workload: f.name, command: `fio ${args.join(' ')}`, unit: f.unit, value: v, latencyMs: (side.clat_ns?.mean ?? 0) / 1e6 });
      log(`  fio ${f.name}: ${v.toFixed(0)} ${f.unit}`);
    }

    log('rbd bench: two librbd writers of one image, with and without exclusive-lock (4k random writes QD16)');
    const writer = path.resolve(__dirname, 'rbd-writer.js');
    const write = async (image: string): Promise<WriterResult> => {
      const r = await runTool(process.execPath, [writer, 'rbd', image, String(seconds), '16'], { env, timeoutMs: (seconds + 60) * 1000 });
      if (r.code !== 0) throw new Error(`rbd-writer ${image} failed: ${r.stderr.slice(-1000)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as WriterResult;
    };
    const lockPingPong: LockPingPongRow[] = [];
    for (const features of ['layering,deep-flatten', 'layering,exclusive-lock,object-map,fast-diff,deep-flatten']) {
      const image = `pingpong-${lockPingPong.length}`;
      await rbd('create', '--size', '64M', '--image-feature', features, `rbd/${image}`);
      const one = await write(image);
      const two = await Promise.all([write(image), write(image)]);
      const row: LockPingPongRow = {
        features,
        oneWriterIops: one.iops,
        twoWritersIops: two[0].iops + two[1].iops,
        twoWritersP99Ms: Math.max(two[0].p99Ms, two[1].p99Ms),
        oneWriterCpuUs: one.cpuUsPerIo,
        twoWritersCpuUs: (two[0].cpuUsPerIo + two[1].cpuUsPerIo) / 2,
      };
      lockPingPong.push(row);
      log(`  ${features}: one writer ${one.iops.toFixed(0)} IOPS, two writers ${two[0].iops.toFixed(0)} + ${two[1].iops.toFixed(0)} IOPS (p99 ${row.twoWritersP99Ms.toFixed(1)} ms)`);
    }

    log('rbd bench: the same qemu-img bench through the gateway\'s iSCSI LUN');
    const dataDir = path.join(base, 'gw');
    fs.mkdirSync(dataDir, { recursive: true });
    const apiPort = await freePort();
    const cfg = path.join(base, 'iscsi-gateway.cfg');
    fs.writeFileSync(
      cfg,
      ['[config]', 'cluster_name = ceph', `ceph_config_dir = ${cephDir}`, 'api_host = 127.0.0.1', `api_port = ${apiPort}`, 'api_secure = false', 'prometheus_exporter = false', 'minimum_gateways = 1', ''].join('\n'),
    );
    const config = {
      version: 1,
      epoch: 0,
      disks: { 'rbd/bench': { backstore: 'store', pool: 'rbd', image: 'bench', wwn: randomUUID(), controls: {} } },
      targets: { [GATEWAY_IQN]: { portal_group_tag: 1, acl_enabled: false, controls: {}, disks: { 'rbd/bench': { lun_id: 0 } }, clients: {} } },
    };
    fs.writeFileSync(path.join(dataDir, 'gateway.json'), JSON.stringify(config, null, 2) + '\n');
    // With Ceph configured the gateway's configuration is the RADOS object rbd/gateway.conf.
    const seeded = await runTool('rados', ['-p', 'rbd', 'put', 'gateway.conf', path.join(dataDir, 'gateway.json')], { timeoutMs: 60_000, env: { CEPH_CONF: conf } });
    if (seeded.code !== 0) throw new Error(`rados put rbd/gateway.conf failed: ${seeded.stderr.trim()}`);
    const port = await freePort();
    gw = Daemon.spawn(process.execPath, [cli, 'serve', '--data', dataDir, '--name', 'iscsi1', '--portal', `127.0.0.1:${port}`, '--config', cfg], { ISCSI_GATEWAY_LOG: 'warn', CEPH_CONF: conf });
    await gatewayListening(gw);
    const pid = gw.pid;
    const lun = `iscsi://127.0.0.1:${port}/${GATEWAY_IQN}/0`;
    for (const spec of SPECS) {
      const count = counts.get(spec.name)!;
      await bench(spec, Math.max(100, Math.round(count / seconds)), lun, pid); // warm-up (lock, caches)
      for (let round = 0; round < rounds; round++) {
        const s = await bench(spec, count, lun, pid);
        const smp = samples.get(spec.name)!;
        smp.gateway.push(value(spec, s.rate));
        smp.cpu.push(s.cpuUs);
        smp.main.push(s.mainCpuUs);
        log(`  ${spec.name} gateway round ${round + 1}: ${value(spec, s.rate).toFixed(0)} ${spec.unit}, gateway ${s.cpuUs.toFixed(1)} us CPU/IO (JS thread ${s.mainCpuUs.toFixed(1)})`);
      }
    }

    const rows: RbdBenchRow[] = SPECS.map((spec) => {
      const s = samples.get(spec.name)!;
      const d = median(s.direct);
      const g = median(s.gateway);
      return {
        workload: spec.name,
        unit: spec.unit,
        command: `qemu-img ${qemuArgs(spec, counts.get(spec.name)!, 'URL').join(' ')}`,
        direct: d,
        gateway: g,
        ratio: g / d,
        gatewayCpuUs: median(s.cpu),
        gatewayMainCpuUs: median(s.main),
        samples: { direct: s.direct, gateway: s.gateway },
      };
    });

    log('rbd bench: active/active: two clients through gateway 1, then one client per gateway');
    const api = `http://127.0.0.1:${apiPort}`;
    const added = await apiPut(api, `/api/gateway/${GATEWAY_IQN}/iscsi2`, { ip_address: '127.0.0.2', nosync: 'false', skipchecks: 'true' });
    if (added.status !== 200) throw new Error(`adding gateway iscsi2 failed: ${added.status} ${added.text}`);
    gw2 = Daemon.spawn(process.execPath, [cli, 'serve', '--data', dataDir, '--name', 'iscsi2', '--portal', `127.0.0.2:${port}`, '--config', cfg, '--api', `127.0.0.2:${await freePort()}`], { ISCSI_GATEWAY_LOG: 'warn', CEPH_CONF: conf });
    await gatewayListening(gw2);
    const pids = [pid, gw2.pid];
    const opts = (host: string, client: number): string => `driver=iscsi,transport=tcp,portal=${host}:${port},target=${GATEWAY_IQN},lun=0,initiator-name=iqn.2024-01.bench:aa-client${client}`;
    /** Two qemu-img bench clients at once; aggregate rate over the longer run, CPU of both gateways per I/O. */
    const pair = async (spec: Spec, count: number, hosts: readonly [string, string]): Promise<{ rate: number; cpuUs: number }> => {
      const c0 = pids.map((p) => cpuTimes(p));
      const runs = await Promise.all(hosts.map((h, k) => runTool('qemu-img', qemuArgs(spec, count, opts(h, k), true), { env, timeoutMs: 600_000 })));
      const c1 = pids.map((p) => cpuTimes(p));
      let longest = 0;
      for (const r of runs) {
        const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
        if (r.code !== 0 || !m) throw new Error(`${r.command} failed (exit ${String(r.code)}):\n${(r.stdout + r.stderr).slice(-2000)}`);
        longest = Math.max(longest, Number(m[1]));
      }
      if (c0.some((c) => !c) || c1.some((c) => !c)) throw new Error('a gateway exited during the benchmark');
      const cpu = c1.reduce((n, c, k) => n + (c!.process - c0[k]!.process), 0);
      return { rate: (2 * count) / longest, cpuUs: (cpu * 1e6) / (2 * count) };
    };
    const aaSamples = new Map(SPECS.map((sp) => [sp.name, { one: [] as number[], two: [] as number[], oneCpu: [] as number[], twoCpu: [] as number[] }]));
    for (const spec of SPECS) {
      const count = counts.get(spec.name)!;
      await pair(spec, Math.max(100, Math.round(count / seconds)), ['127.0.0.1', '127.0.0.2']); // warm-up: both gateways have the image open
      for (let round = 0; round < rounds; round++) {
        const smp = aaSamples.get(spec.name)!;
        const one = await pair(spec, count, ['127.0.0.1', '127.0.0.1']);
        const two = await pair(spec, count, ['127.0.0.1', '127.0.0.2']);
        smp.one.push(value(spec, one.rate));
        smp.two.push(value(spec, two.rate));
        smp.oneCpu.push(one.cpuUs);
        smp.twoCpu.push(two.cpuUs);
        log(`  ${spec.name} round ${round + 1}: one gateway ${value(spec, one.rate).toFixed(0)}, two gateways ${value(spec, two.rate).toFixed(0)} ${spec.unit} `
          + `(gateway CPU/IO ${one.cpuUs.toFixed(1)} / ${two.cpuUs.toFixed(1)} us)`);
      }
    }
    const activeActive: ActiveActiveRow[] = SPECS.map((spec) => {
      const s = aaSamples.get(spec.name)!;
      const one = median(s.one);
      const two = median(s.two);
      return {
        workload: spec.name, unit: spec.unit, oneGateway: one, twoGateways: two, ratio: two / one,
        oneGatewayCpuUs: median(s.oneCpu), twoGatewaysCpuUs: median(s.twoCpu), samples: { oneGateway: s.one, twoGateways: s.two },
      };
    });
    return { objectStore: 'memstore', imageBytes: IMAGE_BYTES, rounds, seconds, rows, fio, activeActive, lockPingPong };
  } finally {
    if (gw2) await gw2.stop('SIGTERM', 10_000).catch(() => undefined);
    if (gw) await gw.stop('SIGTERM', 10_000).catch(() => undefined);
    await runTool('bash', [script, 'kill'], { env: scriptEnv, timeoutMs: 60_000 }).catch(() => undefined);
    fs.rmSync(base, { recursive: true, force: true });
  }
}

export function formatRbdBench(r: RbdBenchResult): string {
  const lines = [
    `RBD: one ${r.imageBytes / MiB} MiB image on a ${r.objectStore} cluster (1 OSD, same machine); qemu-img bench, the same command line through`,
    `QEMU's rbd driver (direct) and through the gateway's iSCSI LUN; medians of ${r.rounds} round(s) of ~${r.seconds} s`,
    '',
    `${'workload'.padEnd(26)} ${'direct'.padStart(10)} ${'gateway'.padStart(10)} ${'gw/direct'.padStart(9)} ${'gw CPU/IO'.padStart(10)} ${'JS thread'.padStart(10)}`,
  ];
  for (const row of r.rows) {
    lines.push(
      `${row.workload.padEnd(26)} ${row.direct.toFixed(0).padStart(10)} ${row.gateway.toFixed(0).padStart(10)} ${row.ratio.toFixed(2).padStart(9)} ${`${row.gatewayCpuUs.toFixed(1)} us`.padStart(10)} ${`${row.gatewayMainCpuUs.toFixed(1)} us`.padStart(10)}  ${row.unit}`,
    );
  }
  lines.push('', 'fio --ioengine=rbd (librbd in fio, no gateway; random where qemu-img bench can only scatter):');
  for (const f of r.fio) lines.push(`${f.workload.padEnd(26)} ${f.value.toFixed(0).padStart(10)} ${f.unit}  (mean completion latency ${f.latencyMs.toFixed(2)} ms)`);
  lines.push('', 'Two librbd writers of one image (4k random writes QD16, rbd_cache off): why active/active rbd disks refuse exclusive-lock:');
  lines.push(`${'features'.padEnd(58)} ${'1 writer'.padStart(9)} ${'2 writers'.padStart(10)} ${'p99 (2)'.padStart(9)} ${'CPU/IO 1'.padStart(9)} ${'CPU/IO 2'.padStart(9)}`);
  for (const p of r.lockPingPong) {
    lines.push(`${p.features.padEnd(58)} ${p.oneWriterIops.toFixed(0).padStart(9)} ${p.twoWritersIops.toFixed(0).padStart(10)} ${`${p.twoWritersP99Ms.toFixed(1)} ms`.padStart(9)} ${`${p.oneWriterCpuUs.toFixed(0)} us`.padStart(9)} ${`${p.twoWritersCpuUs.toFixed(0)} us`.padStart(9)}`);
  }
  lines.push(
    '',
    'Active/active (rbd backstore): two qemu-img bench clients at once, both through gateway 1 (1 gw) or one through each gateway (2 gw);',
    'aggregate throughput, gateway CPU per I/O summed over both gateways. The OSD, monitor, gateways and clients share this machine\'s cores.',
    `${'workload'.padEnd(26)} ${'1 gw'.padStart(10)} ${'2 gw'.padStart(10)} ${'2gw/1gw'.padStart(9)} ${'CPU/IO 1gw'.padStart(11)} ${'CPU/IO 2gw'.padStart(11)}`,
  );
  for (const a of r.activeActive) {
    lines.push(`${a.workload.padEnd(26)} ${a.oneGateway.toFixed(0).padStart(10)} ${a.twoGateways.toFixed(0).padStart(10)} ${a.ratio.toFixed(2).padStart(9)} ${`${a.oneGatewayCpuUs.toFixed(1)} us`.padStart(11)} ${`${a.twoGatewaysCpuUs.toFixed(1)} us`.padStart(11)}  ${a.unit}`);
  }
  return lines.join('\n');
}
