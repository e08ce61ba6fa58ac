/** The context of one rbd command: global options, the store, output, progress, and errors as rbd's exit codes. */
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { defaultDataDir, storeRoot } from '../../config/paths';
import { StoreError, StoreErrorKind } from '../../store/errors';
import { DEFAULT_POOL, ImageSpec, parseImageSpec, SnapshotPresence, validatePoolName } from '../../store/names';
import { ImageStore, Progress } from '../../store/store';

export const EXIT: Record<StoreErrorKind, number> = {
  'not-found': 2, // ENOENT
  exists: 17, // EEXIST
  'invalid-name': 22, // EINVAL
  'invalid-argument': 22,
  busy: 16, // EBUSY
  protected: 16,
  'not-protected': 22,
  'has-children': 16,
  'has-snapshots': 39, // ENOTEMPTY
  'not-empty': 39,
  'shrink-not-allowed': 22,
  'read-only': 30, // EROFS
  limit: 122, // EDQUOT
  unsupported: 95, // EOPNOTSUPP
  corrupt: 5, // EIO
  io: 5,
};
export const EXIT_USAGE = 22;

export class UsageError extends Error {}

export interface Globals {
  pool?: string;
  data?: string;
  format?: string;
  prettyFormat?: boolean;
  progress?: boolean;
}

export class Ctx {
  private storePromise: Promise<ImageStore> | undefined;

  constructor(readonly g: Globals) {
    if (g.format !== undefined && !['plain', 'json', 'xml'].includes(g.format)) throw new UsageError(`invalid --format '${g.format}' (plain or json)`);
    if (g.format === 'xml') throw new UsageError('--format xml is not supported; use json');
    if (g.prettyFormat && g.format !== 'json') throw new UsageError('--pretty-format only works when --format is json');
    if (g.pool !== undefined) validatePoolName(g.pool);
  }

  get json(): boolean {
    return this.g.format === 'json';
  }

  store(): Promise<ImageStore> {
    this.storePromise ??= ImageStore.open(storeRoot(this.g.data ? path.resolve(this.g.data) : defaultDataDir()), { client: `rbd-cli@${os.hostname()}` });
    return this.storePromise;
  }

  spec(text: string | undefined, presence: SnapshotPresence, what = 'image'): ImageSpec {
    if (text === undefined || text === '') throw new UsageError(`${what} name was not specified`);
    return parseImageSpec(text, { pool: this.g.pool ?? DEFAULT_POOL, snapshot: presence });
  }

  out(text: string): void {
    process.stdout.write(text);
  }

  emit(value: unknown): void {
    this.out(JSON.stringify(value, null, this.g.prettyFormat ? 4 : undefined) + '\n');
  }

  /** rbd-style progress on a terminal: "Exporting image: 42% complete...". */
  progress(operation: string): { update: Progress; done: () => void; fail: () => void } {
    const on = this.g.progress !== false && process.stderr.isTTY === true;
    let last = -1;
    return {
      update: (done, total) => {
        if (!on || total <= 0) return;
        const pc = Math.floor((100 * done) / total);
        if (pc > last) {
          last = pc;
          process.stderr.write(`\r${operation}: ${pc}% complete...`);
        }
      },
      done: () => {
        if (on) process.stderr.write(`\r${operation}: 100% complete...done.\n`);
      },
      fail: () => {
        if (on) process.stderr.write(`\r${operation}: ${Math.max(0, last)}% complete...failed.\n`);
      },
    };
  }

  /** Run fn with rbd-style progress: "...done." when it succeeds, "...failed." when it throws. */
  async withProgress<T>(operation: string, fn: (update: Progress) => Promise<T>): Promise<T> {
    const p = this.progress(operation);
    let result: T;
    try {
      result = await fn(p.update);
    } catch (e) {
      p.fail();
      throw e;
    }
    p.done();
    return result;
  }

  /** Create the pool when missing (so rbd's usual first command works on a fresh store). */
  async ensurePool(store: ImageStore, pool: string): Promise<void> {
    if (!(await store.poolExists(pool))) {
      await store.createPool(pool);
      process.stderr.write(`rbd: created pool '${pool}'\n`);
    }
  }
}

export function run(cmd: Command, fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  return (async () => {
    let ctx: Ctx | undefined;
    try {
      ctx = new Ctx(cmd.optsWithGlobals<Globals>());
      await fn(ctx);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`rbd: ${e.message}\n`);
        process.exitCode = EXIT_USAGE;
      } else if (e instanceof StoreError) {
        process.stderr.write(`rbd: ${e.message}\n`);
        process.exitCode = EXIT[e.kind];
      } else {
        process.stderr.write(`rbd: ${(e as Error).message ?? String(e)}\n`);
        process.exitCode = 1;
      }
    } finally {
      if (ctx) await (await ctx.store().catch(() => undefined))?.close();
    }
  })();
}
