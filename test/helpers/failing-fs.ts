/**
 * Real failing file systems for the backstore failure tests (root only):
 *  - a loop-mounted ext4 that `fsfreeze` freezes: every write into it blocks in the kernel
 *    (D state) until thawed — a backstore that stops answering;
 *  - a size-limited tmpfs: writes past its size fail with ENOSPC;
 *  - a FUSE file system (test/helpers/faultfs.py, python3-fusepy) serving one image file whose
 *    reads, writes and fsyncs can be made to fail with EIO (the kernel's own error path).
 * Each returns an undo; `why` says why a mechanism is unavailable (the test then skips).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, tempDir } from './daemon';

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
