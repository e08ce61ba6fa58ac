/**
 * Real failing file systems for the backstore failure tests (root only):
 *  - a loop-mounted ext4 that `fsfreeze` freezes: every write into it blocks in the kernel
 *    (D state) until thawed — a backstore that stops answering;
 *  - a size-limited tmpfs: writes past its size fail with ENOSPC;
 *  - a FUSE file system (test/helpers/faultfs.py, python3-fusepy) serving one image file whose
 *    reads, writes and fsyncs can be made to fail with EIO (the kernel's own error path).
 * Each returns an undo; `why` says why a mechanism is unavailable (the test then skips).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, run, tempDir } from './daemon';

export interface Mounted {
  readonly dir: string;
  unmount(): Promise<void>;
}

async function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<void> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code} ${r.stderr.trim()}`);
}

export function rootUnavailable(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'needs root (mount, losetup, fsfreeze)';
}

/** A 64 MiB ext4 file system on a loop device, mounted at a fresh directory. */
export async function mountExt4(): Promise<Mounted> {
  const base = tempDir('igw-ext4-');
  const image = path.join(base, 'fs.img');
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 64 * 1024 * 1024);
  await sh('mkfs.ext4', ['-q', '-F', image]);
  await sh('mount', ['-o', 'loop', image, dir]);
  return {
    dir,
    unmount: async () => {
      await run('fsfreeze', ['-u', dir]).catch(() => undefined);
      await sh('umount', [dir], 60_000);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

export const freeze = (dir: string): Promise<void> => sh('fsfreeze', ['-f', dir]);
export const thaw = (dir: string): Promise<void> => sh('fsfreeze', ['-u', dir]);

/** A tmpfs of `bytes`, mounted at a fresh directory. */
export async function mountTmpfs(bytes: number): Promise<Mounted> {
  const dir = tempDir('igw-tmpfs-');
  await sh('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  return {
    dir,
    unmount: async () => {
      await sh('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface FaultFs extends Mounted {
  /** Replace the fault list (see faultfs.py): e.g. ['read_eio 0 4096', 'fsync_eio']. */
  faults(lines: string[]): void;
}

const FAULTFS = path.join(ROOT, 'test', 'helpers', 'faultfs.py');
/** Debian's interpreter: python3-fusepy installs there (scripts/install-deps.sh). */
const PYTHON = '/usr/bin/python3';

/** Why the FUSE fault file system cannot run here, or undefined when it can. */
export async function faultFsUnavailable(): Promise<string | undefined> {
  const root = rootUnavailable();
  if (root) return root;
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse';
  const r = await run(PYTHON, ['-c', 'import fusepy'], { timeoutMs: 10_000 }).catch(() => undefined);
  return r?.code === 0 ? undefined : 'python3-fusepy is not installed (scripts/install-deps.sh)';
}

/** faultfs.py mirroring a fresh directory that holds `files` (name -> size, sparse). */
export async function mountFaultFs(files: Record<string, number>): Promise<FaultFs> {
  const base = tempDir('igw-faultfs-');
  const backing = path.join(base, 'backing');
  const dir = path.join(base, 'mnt');
  const control = path.join(base, 'faults');
  fs.mkdirSync(backing);
  fs.mkdirSync(dir);
  for (const [name, size] of Object.entries(files)) {
    fs.writeFileSync(path.join(backing, name), '');
    fs.truncateSync(path.join(backing, name), size);
  }
  const proc = spawn(PYTHON, [FAULTFS, backing, dir, control], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const mounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
  const deadline = Date.now() + 15_000;
  while (!mounted()) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`faultfs did not mount: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    faults: (lines) => fs.writeFileSync(control, lines.join('\n') + '\n'),
    unmount: async () => {
      await run('umount', [dir], { timeoutMs: 30_000 });
      if (proc.exitCode === null) proc.kill('SIGTERM');
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
