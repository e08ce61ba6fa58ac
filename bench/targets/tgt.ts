/**
 * The peer: a throwaway `tgtd` (Debian's tgt, the C userspace target) in the foreground, on
 * its own control socket (-C N -> /var/run/tgtd/socket.N) and its own loopback portal, so it
 * never touches a system tgtd on 3260. Configured with tgtadm: one target, the image as
 * LUN 1 with the rdwr backing store (LUN 0 is tgt's own controller LU), ACL ALL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon, canConnect, freePort, runChecked, runTool } from '../lib/proc';
import { BenchEnv, RunningTarget, TargetKind, superviseTarget } from './target';

const TGTD = '/usr/sbin/tgtd';
const TGTADM = '/usr/sbin/tgtadm';
const SOCKET_DIR = '/var/run/tgtd';
export const TGT_IQN = 'iqn.2024-01.localhost.iscsi-gateway-bench:tgt';
const TID = '1';
const LUN = 1;

/** A control port no other tgtd holds (its socket lock file would be there). */
function pickControlPort(): number {
  for (let i = 0; i < 100; i++) {
    const n = 20000 + Math.floor(Math.random() * 12000); // tgtd accepts -C up to 32767
    if (!fs.existsSync(path.join(SOCKET_DIR, `socket.${n}`))) return n;
  }
  throw new Error(`no free tgtd control port under ${SOCKET_DIR}`);
}

function removeSockets(control: number): void {
  for (const f of [`socket.${control}`, `socket.${control}.lock`]) fs.rmSync(path.join(SOCKET_DIR, f), { force: true });
}

/**
 * A tgt variant: backing-store open flags (tgtadm --bsoflags: "sync", "direct", "sync:direct"),
 * or the "null" backing store (reads zeros, discards writes; tgt fixes its size at 1 TiB).
 */
export interface TgtVariant {
  readonly id: string;
  readonly title: string;
  readonly bsoflags?: string;
  readonly bstype?: 'rdwr' | 'null';
}

export class TgtKind implements TargetKind {
  constructor(private readonly variant: TgtVariant) {}

  get id(): string {
    return this.variant.id;
  }
  get title(): string {
    return this.variant.title;
  }

  async describe(): Promise<string> {
    const r = await runTool(TGTD, ['--version'], { timeoutMs: 5000 });
    return `tgt ${r.stdout.trim() || r.stderr.trim()}; ${this.bstype} backing store${this.variant.bsoflags ? `, --bsoflags ${this.variant.bsoflags}` : ''}`;
  }

  private get bstype(): 'rdwr' | 'null' {
    return this.variant.bstype ?? 'rdwr';
  }

  async start(env: BenchEnv): Promise<RunningTarget> {
    if (!fs.existsSync(TGTD)) throw new Error(`${TGTD} not found: run scripts/install-deps.sh (Debian package tgt)`);
    const port = await freePort();
    const control = pickControlPort();
    const adm = (...args: string[]) => runChecked(TGTADM, ['-C', String(control), '--lld', 'iscsi', ...args], 15_000);
    const sockets = [`socket.${control}`, `socket.${control}.lock`].map((f) => path.join(SOCKET_DIR, f));
    const daemon = Daemon.spawn(TGTD, ['-f', '-C', String(control), '--iscsi', `portal=127.0.0.1:${port}`], undefined, sockets);
    const stop = async (): Promise<string | undefined> => {
      // tgtd -f ignores SIGTERM; "system delete" is its clean shutdown.
      if (daemon.alive) {
        await runTool(TGTADM, ['-C', String(control), '--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', TID], { timeoutMs: 10_000 });
        await runTool(TGTADM, ['-C', String(control), '--mode', 'system', '--op', 'delete'], { timeoutMs: 10_000 });
      }
      const end = await daemon.stop(null, 5000);
      removeSockets(control);
      if (end.killed) return `tgtd did not exit after "tgtadm --mode system --op delete"; killed`;
      return undefined;
    };
    return superviseTarget(this.id, daemon, env, stop, async () => {
      const sock = path.join(SOCKET_DIR, `socket.${control}`);
      await daemon.waitFor('control socket', () => fs.existsSync(sock), 10_000);
      await daemon.waitFor('iSCSI portal', () => canConnect('127.0.0.1', port), 10_000);
      await adm('--mode', 'target', '--op', 'new', '--tid', TID, '--targetname', TGT_IQN);
      const store = this.bstype === 'null' ? '/dev/null' : env.image; // the null store ignores its path
      await adm('--mode', 'logicalunit', '--op', 'new', '--tid', TID, '--lun', String(LUN), '--backing-store', store, '--bstype', this.bstype, ...(this.variant.bsoflags ? ['--bsoflags', this.variant.bsoflags] : []));
      await adm('--mode', 'target', '--op', 'bind', '--tid', TID, '--initiator-address', 'ALL');
      return `iscsi://127.0.0.1:${port}/${TGT_IQN}/${LUN}`;
    }, this.bstype === 'null' ? null : env.imageSize);
  }
}
