/**
 * The `scale` section (issue 7): a real `iscsi-gateway serve --api` daemon on loopback with
 * 999 disks mapped as LUNs of one target.
 *
 * 1. Adding the 1000th disk through the REST API: PUT /api/disk/rbd/<image> (mode=create,
 *    size=1G: a thin image plus a config commit) and PUT /api/targetlun/<iqn>, timed to the
 *    second reply, and to the moment the running gateway has applied it (an initiator's REPORT
 *    LUNS lists 1000 LUNs). Median of `rounds` add/remove rounds. ceph-iscsi: about 51 s at
 *    250 LUNs.
 * 2. The gateway's resident memory (VmRSS): idle, with 1024 LUNs, and with 64 sessions logged in
 *    (each has done REPORT LUNS and INQUIRY). Goal < 300 MB.
 *
 * Everything goes through the API as an administrator would do it: the target, the gateway,
 * 999 disks (PUT /api/disk count=10: ten thin images and one commit per request; 10 is
 * ceph-iscsi's limit) and 999 PUT /api/targetlun (one commit each); those set-up times are
 * printed too. Also `node dist/bench/scale.js [node flags for the gateway]`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, freePort, onCleanup, runCleanups, tail } from './lib/proc';
import { DEFAULT_GATEWAY_CLI } from './targets/gateway';
import { call, Reply } from '../test/helpers/api';
import { rss } from '../test/helpers/hostile';
import { TestInitiator } from '../test/helpers/initiator';

const MiB = 1 << 20;
const IQN = 'iqn.2003-01.com.example.iscsi-gw:scale';
const GATEWAY = 'iscsi1';
const POOL = 'rbd';
const SEEDED = 999;
const SESSIONS = 64;
const MAX_DISKS = 1024;

export interface ScaleResult {
  readonly rounds: number;
  /** 999 disks through PUT /api/disk count=10 requests. */
  readonly seedDisksMs: number;
  /** 999 PUT /api/targetlun until REPORT LUNS lists them all. */
  readonly seedLunsAppliedMs: number;
  /** PUT disk + PUT targetlun, to the second reply, per round. */
  readonly addApiMs: readonly number[];
  /** PUT disk alone, per round. */
  readonly addDiskMs: readonly number[];
  /** From the first request until REPORT LUNS lists the new LUN. */
  readonly addVisibleMs: readonly number[];
  /** Gateway RSS and, beside it, its live V8 heap (MiB). */
  readonly rssIdleMiB: number;
  readonly heapIdleMiB: number;
  readonly heap1000MiB: number;
  readonly heap1024MiB: number;
  readonly heapSessionsMiB: number;
  readonly rss1000MiB: number;
  readonly rss1024MiB: number;
  readonly rssSessionsMiB: number;
  readonly sessions: number;
  readonly luns: number;
}

function ok(r: Reply, what: string): Reply {
  if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${r.text}`);
  return r;
}

/** LUNs the initiator's REPORT LUNS lists (a unit attention, e.g. REPORTED LUNS DATA HAS CHANGED, is retried). */
async function reportLuns(i: TestInitiator): Promise<number> {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa0;
  cdb.writeUInt32BE(64 * 1024, 6);
  for (let attempt = 0; attempt < 4; attempt++) {
    const r = await i.scsi(cdb, { read: 64 * 1024 });
    if (r.status === 0) return r.data.readUInt32BE(0) / 8;
  }
  throw new Error('REPORT LUNS keeps failing');
}

async function inquiry(i: TestInitiator): Promise<void> {
  const r = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96 });
  if (r.status !== 0) throw new Error(`INQUIRY: status ${r.status}`);
}

async function session(port: number, n: number): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  try {
    const isid = Buffer.from(`80${n.toString(16).padStart(10, '0')}`, 'hex');
    await i.login({ targetName: IQN, initiatorName: `iqn.2026-12.bench.scale:host${n}`, isid });
    return i;
  } catch (e) {
    i.close();
    throw e;
  }
}

/** Polls REPORT LUNS on a fresh session until it lists `count` LUNs; returns the time it was seen. */
async function untilLuns(port: number, count: number, timeoutMs: number): Promise<number> {
  const i = await session(port, 0);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if ((await reportLuns(i)) === count) return performance.now();
      if (Date.now() > deadline) throw new Error(`REPORT LUNS does not list ${count} LUNs after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    await i.logout().catch(() => undefined);
    i.close();
  }
}

/** `count` 1 GiB thin disks through the API, ten per request (ceph-iscsi's limit of `count`). */
async function createDisks(api: string, prefix: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let batch = 0; ids.length < count; batch++) {
    const n = Math.min(10, count - ids.length);
    const image = `${prefix}${batch}x`;
    ok(await call(api, 'PUT', `/api/disk/${POOL}/${image}`, { mode: 'create', size: '1G', count: String(n) }), `PUT disk ${image} count=${n}`);
    for (let k = 1; k <= n; k++) ids.push(`${POOL}/${n === 1 ? image : `${image}${k}`}`);
  }
  return ids;
}

/** The gateway's live V8 heap (prom-client's nodejs_heap_size_used_bytes), to tell live data from garbage in the RSS. */
async function heapUsed(metrics: string): Promise<number> {
  const r = await fetch(`${metrics}/metrics`);
  const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/m.exec(await r.text());
  if (!m) throw new Error(`no nodejs_heap_size_used_bytes at ${metrics}/metrics`);
  return Number(m[1]);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function runScaleBench(options: { rounds: number; dir?: string; cli?: string; nodeArgs?: readonly string[]; log: (line: string) => void }): Promise<ScaleResult> {
  const dataDir = fs.mkdtempSync(path.join(options.dir ?? os.tmpdir(), 'igw-scale-'));
  onCleanup(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const apiPort = await freePort();
  const metricsPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const cli = options.cli ?? DEFAULT_GATEWAY_CLI;
  const daemon = Daemon.spawn(process.execPath, [...(options.nodeArgs ?? []), cli, 'serve', '--data', dataDir, '--name', GATEWAY, '--portal', `127.0.0.1:${port}`, '--api', `127.0.0.1:${apiPort}`, '--metrics', `127.0.0.1:${metricsPort}`], {
    ISCSI_GATEWAY_LOG: 'warn',
  });
  const live = new Set<TestInitiator>();
  try {
    await daemon.waitFor('"REST API on"', () => daemon.stdout.includes('REST API on'), 30_000);
    // The first start on an empty data dir creates the demo target: remove it (and its disk).
    const first = ok(await call(api, 'GET', '/api/config'), 'GET /api/config').body as { targets: Record<string, { disks: Record<string, unknown> }>; disks: Record<string, unknown> };
    for (const [t, target] of Object.entries(first.targets)) {
      for (const d of Object.keys(target.disks)) ok(await call(api, 'DELETE', `/api/targetlun/${t}`, { disk: d }), `DELETE targetlun ${t} ${d}`);
      ok(await call(api, 'DELETE', `/api/target/${t}`), `DELETE target ${t}`);
    }
    for (const d of Object.keys(first.disks)) ok(await call(api, 'DELETE', `/api/disk/${d}`, { preserve_image: 'false' }), `DELETE disk ${d}`);
    ok(await call(api, 'PUT', `/api/target/${IQN}`), 'PUT target');
    ok(await call(api, 'PUT', `/api/gateway/${IQN}/${GATEWAY}`, { ip_address: '127.0.0.1', skipchecks: 'true' }), 'PUT gateway');
    ok(await call(api, 'PUT', `/api/targetauth/${IQN}`, { action: 'disable_acl' }), 'disable ACL');
    await untilLuns(port, 0, 10_000);
    const metrics = `http://127.0.0.1:${metricsPort}`;
    const rssIdle = rss(daemon.pid);
    const heapIdle = await heapUsed(metrics);
    options.log(`  idle (one target, no LUNs): RSS ${(rssIdle / MiB).toFixed(0)} MiB, heap used ${(heapIdle / MiB).toFixed(0)} MiB`);

    let t0 = performance.now();
    const seeded = await createDisks(api, 'd', SEEDED);
    const seedDisksMs = performance.now() - t0;
    t0 = performance.now();
    for (const [n, disk] of seeded.entries()) ok(await call(api, 'PUT', `/api/targetlun/${IQN}`, { disk, lun_id: String(n) }), `PUT targetlun ${disk}`);
    const seedLunsAppliedMs = (await untilLuns(port, SEEDED, 60_000)) - t0;
    options.log(`  ${SEEDED} disks through the API in ${(seedDisksMs / 1000).toFixed(1)} s; ${SEEDED} PUT /api/targetlun until REPORT LUNS lists them ${(seedLunsAppliedMs / 1000).toFixed(1)} s`);

    const addApiMs: number[] = [];
    const diskMs: number[] = [];
    const addVisibleMs: number[] = [];
    for (let k = 0; k < options.rounds; k++) {
      const disk = `${POOL}/last${k}`;
      // The observer logs in first: its login is not part of the time.
      const observer = await session(port, 1);
      live.add(observer);
      t0 = performance.now();
      ok(await call(api, 'PUT', `/api/disk/${disk}`, { mode: 'create', size: '1G' }), `PUT disk ${disk}`);
      const created = performance.now();
      ok(await call(api, 'PUT', `/api/targetlun/${IQN}`, { disk }), `PUT targetlun ${disk}`);
      const replied = performance.now();
      diskMs.push(created - t0);
      const deadline = Date.now() + 20_000;
      while ((await reportLuns(observer)) !== SEEDED + 1) {
        if (Date.now() > deadline) throw new Error(`LUN of ${disk} not visible after 20 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
      const visible = performance.now();
      addApiMs.push(replied - t0);
      addVisibleMs.push(visible - t0);
      options.log(`  round ${k + 1}: 1000th disk + LUN through the API ${(replied - t0).toFixed(1)} ms (disk ${(created - t0).toFixed(1)}, LUN ${(replied - created).toFixed(1)}), visible to REPORT LUNS after ${(visible - t0).toFixed(1)} ms`);
      // A logged-in session that sees the disk would (rightly) block its removal.
      await observer.logout().catch(() => undefined);
      observer.close();
      live.delete(observer);
      await new Promise((r) => setTimeout(r, 50));
      ok(await call(api, 'DELETE', `/api/targetlun/${IQN}`, { disk }), `DELETE targetlun ${disk}`);
      ok(await call(api, 'DELETE', `/api/disk/${disk}`, { preserve_image: 'false' }), `DELETE disk ${disk}`);
      await untilLuns(port, SEEDED, 20_000);
    }
    const rss1000 = rss(daemon.pid);
    const heap1000 = await heapUsed(metrics);

    // Up to the limit: 1024 disks and LUNs.
    const more = MAX_DISKS - SEEDED;
    for (const disk of await createDisks(api, 'e', more)) ok(await call(api, 'PUT', `/api/targetlun/${IQN}`, { disk }), `PUT targetlun ${disk}`);
    await untilLuns(port, MAX_DISKS, 30_000);
    const rss1024 = rss(daemon.pid);
    const heap1024 = await heapUsed(metrics);
    options.log(`  ${MAX_DISKS} LUNs: RSS ${(rss1024 / MiB).toFixed(0)} MiB, heap used ${(heap1024 / MiB).toFixed(0)} MiB`);

    for (let n = 0; n < SESSIONS; n++) {
      const i = await session(port, 100 + n);
      live.add(i);
      const luns = await reportLuns(i);
      if (luns !== MAX_DISKS) throw new Error(`session ${n}: REPORT LUNS lists ${luns} LUNs, expected ${MAX_DISKS}`);
      await inquiry(i);
    }
    await new Promise((r) => setTimeout(r, 500));
    const rssSessions = rss(daemon.pid);
    const heapSessions = await heapUsed(metrics);
    options.log(`  ${SESSIONS} sessions logged in: RSS ${(rssSessions / MiB).toFixed(0)} MiB, heap used ${(heapSessions / MiB).toFixed(0)} MiB`);
    if (!daemon.alive) throw new Error(`the gateway exited:\n${tail(daemon.stderr, 20)}`);
    return {
      rounds: options.rounds,
      seedDisksMs,
      seedLunsAppliedMs,
      addApiMs,
      addDiskMs: diskMs,
      addVisibleMs,
      rssIdleMiB: rssIdle / MiB,
      heapIdleMiB: heapIdle / MiB,
      heap1000MiB: heap1000 / MiB,
      heap1024MiB: heap1024 / MiB,
      heapSessionsMiB: heapSessions / MiB,
      rss1000MiB: rss1000 / MiB,
      rss1024MiB: rss1024 / MiB,
      rssSessionsMiB: rssSessions / MiB,
      sessions: SESSIONS,
      luns: MAX_DISKS,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\ngateway stderr:\n${tail(daemon.stderr, 20)}`, { cause: e });
  } finally {
    for (const i of live) {
      await i.logout().catch(() => undefined);
      i.close();
    }
    await daemon.stop('SIGTERM', 20_000);
  }
}

export function formatScaleBench(r: ScaleResult): string {
  const range = (xs: readonly number[]) => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
  return [
    `1000th disk (PUT /api/disk create 1G + PUT /api/targetlun) with ${SEEDED} LUNs mapped, ${r.rounds} rounds:`,
    `  API replies:                    ${range(r.addApiMs)}   (goal < 100 ms; ceph-iscsi ≈ 51 s at 250 LUNs)`,
    `    of which PUT /api/disk:        ${range(r.addDiskMs)}`,
    `  applied (REPORT LUNS lists it): ${range(r.addVisibleMs)}`,
    `set-up through the API: ${SEEDED} disks (count=10 per request) ${(r.seedDisksMs / 1000).toFixed(1)} s; ${SEEDED} PUT /api/targetlun until REPORT LUNS lists them ${(r.seedLunsAppliedMs / 1000).toFixed(1)} s`,
    `gateway RSS: idle ${r.rssIdleMiB.toFixed(0)} MiB, ${SEEDED} LUNs ${r.rss1000MiB.toFixed(0)} MiB, ${r.luns} LUNs ${r.rss1024MiB.toFixed(0)} MiB, ${r.luns} LUNs + ${r.sessions} sessions ${r.rssSessionsMiB.toFixed(0)} MiB (goal < 300 MB)`,
    `  of it the live V8 heap:         ${r.heapIdleMiB.toFixed(0)} MiB, ${r.heap1000MiB.toFixed(0)} MiB, ${r.heap1024MiB.toFixed(0)} MiB, ${r.heapSessionsMiB.toFixed(0)} MiB`,
  ].join('\n');
}

if (require.main === module) {
  runScaleBench({ rounds: 5, nodeArgs: process.argv.slice(2), log: (l) => console.log(l) })
    .then(
      (r) => console.log(formatScaleBench(r)),
      (e: unknown) => {
        console.error(e);
        process.exitCode = 1;
      },
    )
    .finally(() => runCleanups());
}
