/**
 * A throw-away Ceph cluster for one test file (scripts/ceph-cluster.sh): its own CEPH_DIR under
 * the temp dir and two free mon ports, so several clusters run side by side. Default: memstore,
 * 1 OSD, no mgr (usable in ~2 s). Always stop it: `after(() => cluster.stop())`, or use
 * useCephCluster() which registers the hooks; a process exit kills it as a last resort, and a
 * cluster whose test process died without either (a crash, SIGKILL) is reaped by the next start.
 */
import { after, before } from 'node:test';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { ROOT, freePort, run, tempDir } from './daemon';

export const CEPH_SCRIPT = path.join(ROOT, 'scripts', 'ceph-cluster.sh');

export interface CephClusterOptions {
  readonly objectStore?: 'memstore' | 'bluestore';
  readonly osds?: number;
  readonly withMgr?: boolean;
  /** osd_client_watch_timeout (s): how long a dead client's lock stalls others (default 10). */
  readonly watchTimeout?: number;
  readonly pool?: string;
}

export interface TestCephCluster {
  /** Path of ceph.conf (what CEPH_CONF must name). */
  readonly cephConf: string;
  readonly dir: string;
  readonly pool: string;
  /** process.env plus CEPH_CONF, for rbd/ceph/rados/fio/qemu child processes. */
  readonly env: NodeJS.ProcessEnv;
  /** SIGKILL every daemon and remove the directory (memstore data is gone anyway). Idempotent. */
  stop(): Promise<void>;
  /** PIDs of the running OSD daemons. */
  osdPids(): number[];
  /** Run the `rbd` CLI against this cluster; rejects on a non-zero exit with its stderr. */
  rbd(args: string[], timeoutMs?: number): Promise<string>;
  /** Run the `ceph` CLI against this cluster. */
  ceph(args: string[], timeoutMs?: number): Promise<string>;
}

const live = new Set<TestCephCluster>();
process.on('exit', () => {
  for (const c of live) spawnSync('bash', [CEPH_SCRIPT, 'kill'], { env: { ...process.env, CEPH_DIR: c.dir }, stdio: 'ignore' });
});

const PREFIX = 'igw-ceph-';
/** `<dir>.owner` holds the test process's pid (beside the directory: `start` wipes the directory). */
const OWNER_SUFFIX = '.owner';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Kill the clusters of test processes that died without stopping them (a crashed test file
 * cannot run `after` or exit handlers): each cluster directory names its owner's pid.
 */
export async function reapOrphanClusters(): Promise<number> {
  let reaped = 0;
  let names: string[];
  try {
    names = fs.readdirSync(os.tmpdir());
  } catch {
    return 0;
  }
  for (const n of names) {
    if (!n.startsWith(PREFIX) || !n.endsWith(OWNER_SUFFIX)) continue;
    const ownerFile = path.join(os.tmpdir(), n);
    const dir = ownerFile.slice(0, -OWNER_SUFFIX.length);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(ownerFile, 'utf8').trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue;
    await run('bash', [CEPH_SCRIPT, 'kill'], { env: { ...process.env, CEPH_DIR: dir }, timeoutMs: 30_000 });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(ownerFile, { force: true });
    reaped++;
  }
  return reaped;
}

/** Distinct free ports (freePort may hand out the same one twice in a row). */
async function twoPorts(): Promise<[number, number]> {
  const a = await freePort();
  for (let i = 0; i < 20; i++) {
    const b = await freePort();
    if (b !== a) return [a, b];
  }
  throw new Error('no second free port');
}

export async function startCephCluster(options: CephClusterOptions = {}): Promise<TestCephCluster> {
  if (spawnSync('sh', ['-c', 'command -v ceph-mon && command -v ceph-osd && command -v rbd'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('Ceph is not installed (ceph-mon, ceph-osd, rbd): run scripts/install-deps.sh');
  }
  await reapOrphanClusters();
  const dir = tempDir(PREFIX);
  fs.writeFileSync(dir + OWNER_SUFFIX, `${process.pid}\n`);
  const pool = options.pool ?? 'rbd';
  const [v2, v1] = await twoPorts();
  const scriptEnv: NodeJS.ProcessEnv = {
    ...process.env,
    CEPH_DIR: dir,
    OBJECTSTORE: options.objectStore ?? 'memstore',
    NUM_OSDS: String(options.osds ?? 1),
    WITH_MGR: options.withMgr ? '1' : '0',
    WATCH_TIMEOUT: String(options.watchTimeout ?? 10),
    MON_PORT_V2: String(v2),
    MON_PORT_V1: String(v1),
    POOL: pool,
  };
  const cephConf = path.join(dir, 'ceph.conf');
  const env: NodeJS.ProcessEnv = { ...process.env, CEPH_CONF: cephConf };
  let stopped = false;
  const cluster: TestCephCluster = {
    cephConf,
    dir,
    pool,
    env,
    async stop() {
      if (stopped) return;
      stopped = true;
      await run('bash', [CEPH_SCRIPT, 'kill'], { env: scriptEnv, timeoutMs: 30_000 });
      live.delete(cluster);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(dir + OWNER_SUFFIX, { force: true });
    },
    osdPids() {
      const out: number[] = [];
      let names: string[];
      try {
        names = fs.readdirSync(path.join(dir, 'run'));
      } catch {
        return out;
      }
      for (const n of names) {
        if (!/^osd\.\d+\.pid$/.test(n)) continue;
        const pid = Number(fs.readFileSync(path.join(dir, 'run', n), 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && fs.existsSync(`/proc/${pid}`)) out.push(pid);
      }
      return out;
    },
    async rbd(args, timeoutMs = 60_000) {
      const r = await run('rbd', args, { env, timeoutMs });
      if (r.code !== 0) throw new Error(`rbd ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
      return r.stdout;
    },
    async ceph(args, timeoutMs = 60_000) {
      const r = await run('ceph', args, { env, timeoutMs });
      if (r.code !== 0) throw new Error(`ceph ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
      return r.stdout;
    },
  };
  live.add(cluster);
  const r = await run('bash', [CEPH_SCRIPT, 'start'], { env: scriptEnv, timeoutMs: 180_000 });
  if (r.code !== 0) {
    let logs = '';
    try {
      logs = fs.readFileSync(path.join(dir, 'log', 'bootstrap.log'), 'utf8').slice(-2000);
    } catch {
      /* no log yet */
    }
    await cluster.stop();
    throw new Error(`ceph-cluster.sh start failed (${r.code ?? r.signal}): ${r.stderr.slice(-2000)}\n${logs}`);
  }
  return cluster;
}

/**
 * Start a cluster in `before` and stop it in `after` of the enclosing test file/suite. The
 * returned getter throws when used before `before` ran.
 */
export function useCephCluster(options: CephClusterOptions = {}): () => TestCephCluster {
  let cluster: TestCephCluster | undefined;
  before(async () => {
    cluster = await startCephCluster(options);
  });
  after(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error('the Ceph cluster is not started yet');
    return cluster;
  };
}
