/**
 * The product: `iscsi-gateway serve` on its own data dir whose gateway.json maps the benchmark
 * image (file backstore) as LUN 0 of one target, ACL off. Stopped with SIGTERM (its clean
 * shutdown); anything else — a crash, a hang on stop, a non-zero exit — is reported.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { V1Document as GatewayConfig } from '../../src/config/migrate';
import { Daemon, describeExit, freePort, runTool, tail } from '../lib/proc';
import { BenchEnv, RunningTarget, TargetKind, superviseTarget } from './target';

export const GATEWAY_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:bench';
const DISK = 'file/bench';

/** dist/bench/targets -> dist/src/cli/main.js */
export const DEFAULT_GATEWAY_CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface GatewayKindOptions {
  /** Compiled CLI entry (main.js). */
  readonly cli: string;
  /** ISCSI_GATEWAY_LOG for the daemon; 'warn' keeps logging out of the measurement. */
  readonly logLevel: string;
  /** Extra node flags (e.g. --max-semi-space-size=64). */
  readonly nodeArgs: readonly string[];
}

/**
 * A gateway variant: which disk controls (LIO-style, e.g. emulate_write_cache) it runs with,
 * and whether the LUN is the image file or a null backstore of the image's size (reads zeros,
 * discards writes: what the gateway costs without storage).
 */
export interface GatewayVariant {
  readonly id: string;
  readonly title: string;
  readonly diskControls: Record<string, number>;
  readonly backstore?: 'file' | 'null';
}

export function benchConfig(image: string, wwn: string, diskControls: Record<string, number> = {}, backstore: 'file' | 'null' = 'file', size?: number): GatewayConfig {
  const disk = backstore === 'null'
    ? { backstore, size: size ?? fs.statSync(image).size, wwn, controls: { ...diskControls } }
    : { backstore, path: path.resolve(image), wwn, controls: { ...diskControls } };
  return {
    version: 1,
    epoch: 0,
    disks: { [DISK]: disk },
    targets: {
      [GATEWAY_IQN]: {
        alias: 'bench',
        portal_group_tag: 1,
        acl_enabled: false,
        controls: {},
        disks: { [DISK]: { lun_id: 0 } },
        clients: {},
      },
    },
  };
}

/** `iscsi-gateway serve --data DIR` on a free loopback port (every gateway the bench runs). */
export async function spawnGateway(
  cli: string,
  dataDir: string,
  opts: { logLevel?: string; nodeArgs?: readonly string[] } = {},
): Promise<{ daemon: Daemon; port: number }> {
  const port = await freePort();
  const daemon = Daemon.spawn(process.execPath, [...(opts.nodeArgs ?? []), cli, 'serve', '--data', dataDir, '--portal', `127.0.0.1:${port}`], {
    ISCSI_GATEWAY_LOG: opts.logLevel ?? 'warn',
  });
  return { daemon, port };
}

/** Resolves once the gateway has printed its "listening on" banner. */
export function gatewayListening(daemon: Daemon): Promise<void> {
  return daemon.waitFor('"listening on"', () => daemon.stdout.includes('listening on'), 30_000);
}

export class GatewayKind implements TargetKind {
  private readonly wwn = randomUUID();

  constructor(
    private readonly variant: GatewayVariant,
    private readonly options: GatewayKindOptions,
  ) {}

  get id(): string {
    return this.variant.id;
  }
  get title(): string {
    return this.variant.title;
  }

  private repoRoot(): string {
    return path.resolve(path.dirname(this.options.cli), '..', '..', '..');
  }

  warnings(): string[] {
    // Without the addon the data path falls back (e.g. no RWF_NOWAIT page-cache reads).
    const addon = path.join(this.repoRoot(), 'native', 'build', 'Release', 'iscsi_gateway_sys.node');
    return fs.existsSync(addon) ? [] : [`${this.id}: native addon ${addon} is not built (npm run build:native); the gateway runs its fallback paths`];
  }

  async describe(): Promise<string> {
    const repo = this.repoRoot();
    const head = await runTool('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { timeoutMs: 5000 });
    const dirty = await runTool('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], { timeoutMs: 5000 });
    const rev = head.code === 0 ? head.stdout.trim() + (dirty.stdout.trim() ? '+dirty-src' : '') : 'unknown';
    const controls = JSON.stringify(this.variant.diskControls);
    return `iscsi-gateway ${rev} (${this.options.cli}; node ${process.version}; ${this.variant.backstore ?? 'file'} backstore; disk controls ${controls})`;
  }

  async start(env: BenchEnv): Promise<RunningTarget> {
    if (!fs.existsSync(this.options.cli)) throw new Error(`${this.options.cli} not found: build the gateway first (npm run build)`);
    const dataDir = path.join(env.workDir, `${this.id}-data`);
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dataDir, 'gateway.json'), JSON.stringify(benchConfig(env.image, this.wwn, this.variant.diskControls, this.variant.backstore, env.imageSize), null, 2) + '\n');
    const nodeArgs = [...this.options.nodeArgs];
    if (env.cpuProfile) {
      fs.mkdirSync(env.cpuProfile.dir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${env.cpuProfile.dir}`, `--cpu-prof-name=${env.cpuProfile.name}`);
    }
    const { daemon, port } = await spawnGateway(this.options.cli, dataDir, { logLevel: this.options.logLevel, nodeArgs });
    const stop = async (): Promise<string | undefined> => {
      const wasAlive = daemon.alive;
      const end = await daemon.stop('SIGTERM', 20_000);
      if (!wasAlive) return `gateway had already exited (${describeExit(end)}):\n${tail(daemon.stderr, 20)}`;
      if (end.killed) return `gateway did not exit within 20 s of SIGTERM; killed:\n${tail(daemon.stderr, 20)}`;
      if (end.code !== 0) return `gateway exited with ${describeExit(end)} after SIGTERM:\n${tail(daemon.stderr, 20)}`;
      return undefined;
    };
    return superviseTarget(this.id, daemon, env, stop, async () => {
      await gatewayListening(daemon);
      return `iscsi://127.0.0.1:${port}/${GATEWAY_IQN}/0`;
    });
  }
}
