/**
 * `iscsi-gateway rbd ...`: the image tool, with rbd's syntax and output, on the embedded store.
 *
 *   iscsi-gateway rbd --pool iscsi-images create --size=102400 testvol
 *   iscsi-gateway rbd snap create iscsi-images/testvol@before
 *
 * Sizes are in MiB unless suffixed (K, M, G, T, P; B for bytes), as in rbd. The store is
 * <data>/store, where <data> is --data, $ISCSI_GATEWAY_DATA or the daemon's default.
 * Errors print "rbd: <what is wrong>" on stderr and exit with the errno rbd would use
 * (2 ENOENT, 16 EBUSY, 17 EEXIST, 22 EINVAL, ...).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { defaultDataDir, storeRoot } from '../config/paths';
import { checkStore } from '../store/check';
import { StoreError, StoreErrorKind } from '../store/errors';
import { FeatureName, parseFeatures } from '../store/features';
import { DEFAULT_POOL, ImageSpec, parseImageSpec, SnapshotPresence, validatePoolName } from '../store/names';
import { CreateImageOptions, ImageStore, Progress } from '../store/store';
import { copyImage, exportImage, importImage } from '../store/transfer';

const EXIT: Record<StoreErrorKind, number> = {
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
const EXIT_USAGE = 22;

class UsageError extends Error {}

interface Globals {
  pool?: string;
  data?: string;
  format?: string;
  prettyFormat?: boolean;
  progress?: boolean;
}

// ------------------------------------------------------------------------ parsing helpers

const UNITS: Record<string, number> = { B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50, E: 2 ** 60 };

/** rbd's sizes: a number in `defaultUnit` (MiB for --size), or with a K/M/G/T/P/E (i)(B) or B suffix. */
export function parseSize(text: string, defaultUnit: 'B' | 'M', what = 'size'): number {
  const m = /^\s*(\d+)(?:\.(\d+))?\s*(?:([KMGTPE])(?:i?B)?|(B))?\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid ${what} '${text}' (a number of ${defaultUnit === 'M' ? 'MiB' : 'bytes'}, or with a suffix K, M, G, T, P)`);
  const unit = m[4] ? 1 : m[3] ? UNITS[m[3].toUpperCase()] : UNITS[defaultUnit];
  const value = Number(`${m[1]}.${m[2] ?? '0'}`) * unit;
  if (!Number.isSafeInteger(value)) throw new UsageError(`invalid ${what} '${text}': not a whole number of bytes, or too large`);
  return value;
}

function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`invalid ${what} '${text}' (expected a whole number)`);
  return Number(text);
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** Ceph's byte_u_t: "100 GiB", "1.5 MiB", "512 B". */
export function prettyBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '');
  return `${s} ${units[i]}`;
}

/** ctime(3) format, as rbd prints timestamps. */
export function ctime(iso: string): string {
  const d = new Date(iso);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (x: number): string => String(x).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()}`;
}

/** rbd's TextTable: header row, two spaces between columns, numbers right-aligned. */
function table(head: Array<[string, 'l' | 'r']>, rows: string[][]): string {
  const w = head.map(([h], i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (head[i][1] === 'r' ? c.padStart(w[i]) : i === cells.length - 1 ? c : c.padEnd(w[i])))
      .join('  ')
      .trimEnd();
  return [line(head.map(([h]) => h)), ...rows.map(line)].join('\n') + '\n';
}

// ------------------------------------------------------------------------ context

class Ctx {
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

  /** Create the pool when missing (so rbd's usual first command works on a fresh store). */
  async ensurePool(store: ImageStore, pool: string): Promise<void> {
    if (!(await store.poolExists(pool))) {
      await store.createPool(pool);
      process.stderr.write(`rbd: created pool '${pool}'\n`);
    }
  }
}

function run(cmd: Command, fn: (ctx: Ctx) => Promise<void>): Promise<void> {
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

function imageCreateOptions(o: Record<string, unknown>): Omit<CreateImageOptions, 'size'> {
  const out: { -readonly [K in keyof CreateImageOptions]?: CreateImageOptions[K] } = {};
  if (o.order !== undefined) out.order = parseCount(String(o.order), 'order');
  if (o.objectSize !== undefined) out.objectSize = parseSize(String(o.objectSize), 'B', 'object size');
  if (o.stripeUnit !== undefined) out.stripeUnit = parseSize(String(o.stripeUnit), 'B', 'stripe unit');
  if (o.stripeCount !== undefined) out.stripeCount = parseCount(String(o.stripeCount), 'stripe count');
  if (o.imageFormat !== undefined && String(o.imageFormat) !== '2') throw new UsageError(`image format ${String(o.imageFormat)} is not supported (only format 2)`);
  const feats = o.imageFeature as string[] | undefined;
  if (feats && feats.length) out.features = parseFeatures(feats);
  if (o.imageShared) {
    // rbd --image-shared drops the single-client features.
    const base: FeatureName[] = out.features ? [...out.features] : ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'];
    out.features = base.filter((f) => !['exclusive-lock', 'object-map', 'fast-diff', 'journaling'].includes(f));
  }
  return out;
}

function addImageOptions(c: Command): Command {
  return c
    .option('--order <order>', 'object order [12 <= order <= 25]')
    .option('--object-size <size>', 'object size in B/K/M [4K <= object size <= 32M]')
    .option('--image-feature <feature>', 'image feature (repeatable): layering, striping, exclusive-lock, object-map, fast-diff, deep-flatten, journaling', collect)
    .option('--image-shared', 'shared image (no exclusive-lock, object-map, fast-diff, journaling)')
    .option('--stripe-unit <size>', 'stripe unit in B/K/M')
    .option('--stripe-count <count>', 'stripe count')
    .addOption(new Option('--image-format <format>', 'image format (2)').hideHelp());
}

// ------------------------------------------------------------------------ commands

export function registerRbdCommand(program: Command): Command {
  const rbd = program
    .command('rbd')
    .description('manage images of the embedded store (rbd syntax)')
    .option('-p, --pool <pool>', `pool name (default '${DEFAULT_POOL}')`)
    .option('--data <dir>', 'data directory (default: $ISCSI_GATEWAY_DATA or the daemon default)')
    .option('--format <format>', 'output format: plain or json')
    .option('--pretty-format', 'indent json output')
    .option('--no-progress', 'disable progress output')
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'rbd: ')) })
    .exitOverride((err: CommanderError) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
      process.exit(EXIT_USAGE);
    });

  // ---- images
  addImageOptions(rbd.command('create').argument('<image-spec>', '[pool/]image').requiredOption('-s, --size <size>', 'image size (in M/G/T) [default: M]'))
    .description('create an empty image')
    .action((spec: string, o: Record<string, unknown>, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const size = parseSize(String(o.size), 'M');
        const opts = imageCreateOptions(o);
        const store = await ctx.store();
        await ctx.ensurePool(store, s.pool);
        await store.createImage(s, { ...opts, size });
      }),
    );

  rbd
    .command('ls')
    .alias('list')
    .argument('[pool]', 'pool name')
    .option('-l, --long', 'long listing format')
    .description('list images in a pool')
    .action((pool: string | undefined, o: { long?: boolean }, cmd: Command) =>
      run(cmd, async (ctx) => {
        const p = pool ?? ctx.g.pool ?? DEFAULT_POOL;
        const store = await ctx.store();
        const names = await store.listImages(p);
        if (!o.long) {
          if (ctx.json) ctx.emit(names);
          else ctx.out(names.map((n) => n + '\n').join(''));
          return;
        }
        const rows: string[][] = [];
        const js: unknown[] = [];
        for (const n of names) {
          let info;
          try {
            info = await store.imageInfo({ pool: p, image: n });
          } catch (e) {
            process.stderr.write(`rbd: error opening ${p}/${n}: ${(e as Error).message}\n`);
            continue;
          }
          const locks = await store.listLocks({ pool: p, image: n });
          const lock = locks.owner || locks.advisory.some((l) => l.exclusive) ? 'excl' : locks.advisory.length || locks.shared.length ? 'shr' : '';
          const parent = info.parent ? `${info.parent.pool}/${info.parent.image}@${info.parent.snapshot}` : '';
          rows.push([n, prettyBytes(info.size), parent, '2', '', lock]);
          js.push({
            image: n,
            id: info.id,
            size: info.size,
            ...(info.parent ? { parent: { pool: info.parent.pool, image: info.parent.image, snapshot: info.parent.snapshot } } : {}),
            format: 2,
            ...(lock ? { lock_type: lock === 'excl' ? 'exclusive' : 'shared' } : {}),
          });
          for (const sn of await store.listSnapshots({ pool: p, image: n })) {
            rows.push([`${n}@${sn.name}`, prettyBytes(sn.size), parent, '2', sn.protected ? 'yes' : '', '']);
            js.push({ image: n, snapshot: sn.name, snapshot_id: sn.id, size: sn.size, format: 2, protected: sn.protected ? 'true' : 'false' });
          }
        }
        if (ctx.json) ctx.emit(js);
        else if (rows.length) ctx.out(table([['NAME', 'l'], ['SIZE', 'r'], ['PARENT', 'l'], ['FMT', 'r'], ['PROT', 'l'], ['LOCK', 'l']], rows));
      }),
    );

  rbd
    .command('info')
    .argument('<image-or-snap-spec>')
    .description('show information about image size, striping, etc.')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'permitted');
        const store = await ctx.store();
        const i = await store.imageInfo(s);
        if (ctx.json) {
          ctx.emit({
            name: i.name,
            id: i.id,
            size: i.size,
            objects: i.objectCount,
            order: i.order,
            object_size: i.objectSize,
            snapshot_count: i.snapshotCount,
            block_name_prefix: `rbd_data.${i.id}`,
            format: 2,
            features: i.features,
            op_features: [],
            flags: i.flags,
            create_timestamp: ctime(i.createTime),
            modify_timestamp: ctime(i.modifyTime),
            ...(i.snapshot ? { protected: i.snapshot.protected ? 'true' : 'false' } : {}),
            ...(i.snapshotLimit !== null ? { snapshot_limit: i.snapshotLimit } : {}),
            ...(i.parent ? { parent: { pool: i.parent.pool, pool_namespace: '', image: i.parent.image, id: i.parent.imageId, snapshot: i.parent.snapshot, overlap: i.parent.overlap } } : {}),
            ...(i.features.includes('striping') ? { stripe_unit: i.stripeUnit, stripe_count: i.stripeCount } : {}),
            ...(i.warnings.length ? { warnings: i.warnings } : {}),
          });
          return;
        }
        const lines = [
          `rbd image '${i.name}':`,
          `\tsize ${prettyBytes(i.size)} in ${i.objectCount} objects`,
          `\torder ${i.order} (${prettyBytes(i.objectSize)} objects)`,
          `\tsnapshot_count: ${i.snapshotCount}`,
          `\tid: ${i.id}`,
          `\tblock_name_prefix: rbd_data.${i.id}`,
          `\tformat: 2`,
          `\tfeatures: ${i.features.join(', ')}`,
          `\top_features: `,
          `\tflags: ${i.flags.join(', ')}`,
          `\tcreate_timestamp: ${ctime(i.createTime)}`,
          `\tmodify_timestamp: ${ctime(i.modifyTime)}`,
        ];
        if (i.snapshot) lines.push(`\tprotected: ${i.snapshot.protected ? 'True' : 'False'}`);
        if (i.snapshotLimit !== null) lines.push(`\tsnapshot_limit: ${i.snapshotLimit}`);
        if (i.parent) {
          lines.push(`\tparent: ${i.parent.pool}/${i.parent.image}@${i.parent.snapshot}`);
          lines.push(`\toverlap: ${prettyBytes(i.parent.overlap)}`);
        }
        if (i.features.includes('striping')) lines.push(`\tstripe unit: ${prettyBytes(i.stripeUnit)}`, `\tstripe count: ${i.stripeCount}`);
        if (i.features.includes('journaling')) lines.push(`\tjournal: ${i.id} (flag only: the embedded store keeps no journal)`);
        for (const w of i.warnings) lines.push(`\twarning: ${w}`);
        ctx.out(lines.join('\n') + '\n');
      }),
    );

  rbd
    .command('du')
    .alias('disk-usage')
    .argument('[image-or-snap-spec]')
    .description('show disk usage stats for pool, image or snapshot')
    .action((spec: string | undefined, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const store = await ctx.store();
        const target = spec ? ctx.spec(spec, 'permitted') : undefined;
        const pool = target?.pool ?? ctx.g.pool ?? DEFAULT_POOL;
        const rows = await store.diskUsage({ pool, image: target?.image, snapshot: target?.snapshot });
        const headRows = rows.filter((r) => r.snapshot === undefined);
        const totalProv = (target?.snapshot ? rows : headRows).reduce((a, r) => a + r.provisioned, 0);
        const totalUsed = rows.reduce((a, r) => a + r.used, 0);
        if (ctx.json) {
          ctx.emit({
            images: rows.map((r) => ({
              name: r.name,
              ...(r.snapshot !== undefined ? { snapshot: r.snapshot, snapshot_id: r.snapshotId } : {}),
              provisioned_size: r.provisioned,
              used_size: r.used,
            })),
            ...(rows.length > 1 ? { total_provisioned_size: totalProv, total_used_size: totalUsed } : {}),
          });
          return;
        }
        const t = rows.map((r) => [r.snapshot !== undefined ? `${r.name}@${r.snapshot}` : r.name, prettyBytes(r.provisioned), prettyBytes(r.used)]);
        if (rows.length > 1) t.push(['<TOTAL>', prettyBytes(totalProv), prettyBytes(totalUsed)]);
        ctx.out(table([['NAME', 'l'], ['PROVISIONED', 'r'], ['USED', 'r']], t));
      }),
    );

  rbd
    .command('resize')
    .argument('<image-spec>')
    .requiredOption('-s, --size <size>', 'image size (in M/G/T) [default: M]')
    .option('--allow-shrink', 'permit shrinking')
    .description('resize (expand or shrink) image')
    .action((spec: string, o: { size: string; allowShrink?: boolean }, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const size = parseSize(o.size, 'M');
        const store = await ctx.store();
        const p = ctx.progress('Resizing image');
        try {
          await store.resizeImage(s, size, { allowShrink: o.allowShrink });
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );

  rbd
    .command('rm')
    .alias('remove')
    .argument('<image-spec>')
    .description('delete an image')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const store = await ctx.store();
        const p = ctx.progress('Removing image');
        try {
          await store.removeImage(s, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );

  rbd
    .command('rename')
    .alias('mv')
    .argument('<source-image-spec>')
    .argument('<dest-image-spec>')
    .description('rename image within pool')
    .action((src: string, dst: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'none');
        const d = parseImageSpec(dst, { pool: s.pool, snapshot: 'none' });
        if (d.pool !== s.pool) throw new UsageError('mv/rename across pools not supported');
        await (await ctx.store()).renameImage(s, d.image);
      }),
    );

  // ---- snapshots
  const snap = rbd.command('snap').description('snapshot commands');
  snap
    .command('create')
    .alias('add')
    .argument('<snap-spec>', '[pool/]image@snapshot')
    .description('create a snapshot')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'required', 'snapshot');
        const p = ctx.progress('Creating snap');
        try {
          await (await ctx.store()).createSnapshot(s);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  snap
    .command('ls')
    .alias('list')
    .argument('<image-spec>')
    .description('dump list of image snapshots')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const list = await (await ctx.store()).listSnapshots(s);
        if (ctx.json) {
          ctx.emit(list.map((x) => ({ id: x.id, name: x.name, size: x.size, protected: x.protected ? 'true' : 'false', timestamp: ctime(x.createTime) })));
          return;
        }
        if (list.length === 0) return;
        ctx.out(
          table(
            [['SNAPID', 'r'], ['NAME', 'l'], ['SIZE', 'r'], ['PROTECTED', 'l'], ['TIMESTAMP', 'l']],
            list.map((x) => [String(x.id), x.name, prettyBytes(x.size), x.protected ? 'yes' : '', ctime(x.createTime)]),
          ),
        );
      }),
    );
  snap
    .command('rm')
    .alias('remove')
    .argument('<snap-spec>')
    .description('delete a snapshot')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'required', 'snapshot');
        const p = ctx.progress('Removing snap');
        try {
          await (await ctx.store()).removeSnapshot(s, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  snap
    .command('purge')
    .argument('<image-spec>')
    .description('delete all unprotected snapshots')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const p = ctx.progress('Removing all snapshots');
        try {
          await (await ctx.store()).purgeSnapshots(s, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  snap
    .command('rename')
    .argument('<source-snap-spec>')
    .argument('<dest-snap-spec>')
    .description('rename a snapshot')
    .action((src: string, dst: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'required', 'snapshot');
        const d = dst.includes('@') ? parseImageSpec(dst.startsWith('@') ? `${s.pool}/${s.image}${dst}` : dst, { pool: s.pool, snapshot: 'required' }) : { ...s, snapshot: dst };
        if (d.pool !== s.pool || d.image !== s.image) throw new UsageError('source and destination image names must match');
        await (await ctx.store()).renameSnapshot(s, d.snapshot!);
      }),
    );
  snap
    .command('rollback')
    .alias('revert')
    .argument('<snap-spec>')
    .description('rollback image to snapshot')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'required', 'snapshot');
        const p = ctx.progress('Rolling back to snapshot');
        try {
          await (await ctx.store()).rollbackSnapshot(s, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  for (const [name, desc] of [
    ['protect', 'prevent a snapshot from being deleted'],
    ['unprotect', 'allow a snapshot to be deleted'],
  ] as const) {
    snap
      .command(name)
      .argument('<snap-spec>')
      .description(desc)
      .action((spec: string, _o: unknown, cmd: Command) =>
        run(cmd, async (ctx) => {
          const s = ctx.spec(spec, 'required', 'snapshot');
          const store = await ctx.store();
          if (name === 'protect') await store.protectSnapshot(s);
          else await store.unprotectSnapshot(s);
        }),
      );
  }
  const limit = snap.command('limit').description('snapshot limit commands');
  limit
    .command('set')
    .argument('<image-spec>')
    .requiredOption('--limit <number>', 'maximum allowed snapshot count')
    .description('limit the number of snapshots')
    .action((spec: string, o: { limit: string }, cmd: Command) =>
      run(cmd, async (ctx) => {
        await (await ctx.store()).setSnapshotLimit(ctx.spec(spec, 'none'), parseCount(o.limit, 'limit'));
      }),
    );
  limit
    .command('clear')
    .argument('<image-spec>')
    .description('remove snapshot limit')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        await (await ctx.store()).setSnapshotLimit(ctx.spec(spec, 'none'), null);
      }),
    );

  // ---- clones
  addImageOptions(rbd.command('clone').argument('<source-snap-spec>').argument('<dest-image-spec>'))
    .description('clone a snapshot into a CoW child image')
    .action((src: string, dst: string, o: Record<string, unknown>, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'required', 'snapshot');
        const d = ctx.spec(dst, 'none');
        const store = await ctx.store();
        await ctx.ensurePool(store, d.pool);
        await store.cloneImage(s, d, imageCreateOptions(o));
      }),
    );
  rbd
    .command('flatten')
    .argument('<image-spec>')
    .description('fill clone with parent data (make it independent)')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const p = ctx.progress('Image flatten');
        try {
          await (await ctx.store()).flattenImage(s, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  rbd
    .command('children')
    .argument('<snap-spec>')
    .description('display children of snapshot')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'required', 'snapshot');
        const kids = await (await ctx.store()).listChildren(s);
        if (ctx.json) {
          ctx.emit(kids.map((k) => ({ pool: k.slice(0, k.indexOf('/')), pool_namespace: '', image: k.slice(k.indexOf('/') + 1) })));
          return;
        }
        ctx.out(kids.map((k) => k + '\n').join(''));
      }),
    );

  // ---- data
  addImageOptions(rbd.command('copy').alias('cp').argument('<source-image-or-snap-spec>').argument('<dest-image-spec>'))
    .description('copy src image to dest')
    .action((src: string, dst: string, o: Record<string, unknown>, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'permitted');
        const d = ctx.spec(dst, 'none');
        const store = await ctx.store();
        await ctx.ensurePool(store, d.pool);
        const p = ctx.progress('Image copy');
        try {
          await copyImage(store, s, d, imageCreateOptions(o), p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  rbd
    .command('export')
    .argument('<source-image-or-snap-spec>')
    .argument('<path-name>', "export file (or '-' for stdout)")
    .description('export image to file')
    .action((src: string, file: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'permitted');
        const store = await ctx.store();
        const p = ctx.progress('Exporting image');
        try {
          await exportImage(store, s, file, p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );
  addImageOptions(rbd.command('import').argument('<path-name>', "import file (or '-' for stdin)").argument('[dest-image-spec]'))
    .option('--dest <image-spec>', 'destination image')
    .description('import image from file')
    .action((file: string, dst: string | undefined, o: Record<string, unknown>, cmd: Command) =>
      run(cmd, async (ctx) => {
        const name = dst ?? (o.dest as string | undefined) ?? (file === '-' ? undefined : path.basename(file));
        if (!name) throw new UsageError('destination image name was not specified');
        const d = ctx.spec(name, 'none');
        const store = await ctx.store();
        await ctx.ensurePool(store, d.pool);
        const p = ctx.progress('Importing image');
        try {
          await importImage(store, file, d, imageCreateOptions(o), p.update);
        } catch (e) {
          p.fail();
          throw e;
        }
        p.done();
      }),
    );

  // ---- features
  const feature = rbd.command('feature').description('image feature commands');
  for (const verb of ['enable', 'disable'] as const) {
    feature
      .command(verb)
      .argument('<image-spec>')
      .argument('<features...>', 'layering, striping, exclusive-lock, object-map, fast-diff, deep-flatten, journaling')
      .description(`${verb} the specified image feature`)
      .action((spec: string, feats: string[], _o: unknown, cmd: Command) =>
        run(cmd, async (ctx) => {
          const s = ctx.spec(spec, 'none');
          await (await ctx.store()).updateFeatures(s, parseFeatures(feats), verb === 'enable');
        }),
      );
  }

  // ---- locks and status
  const lock = rbd.command('lock').description('image lock commands');
  lock
    .command('ls')
    .alias('list')
    .argument('<image-spec>')
    .description('show locks held on an image')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        const l = await (await ctx.store()).listLocks(s);
        const rows: Array<{ locker: string; id: string; address: string }> = [];
        if (l.owner) rows.push({ locker: `client.${l.owner.pid}`, id: `auto ${l.owner.token}`, address: `${l.owner.host}:0/${l.owner.pid}${l.owner.client ? ` (${l.owner.client})` : ''}` });
        for (const w of l.shared) rows.push({ locker: `client.${w.pid}`, id: `shared ${w.token}`, address: `${w.host}:0/${w.pid}${w.client ? ` (${w.client})` : ''}` });
        for (const a of l.advisory) rows.push({ locker: a.locker, id: a.id, address: a.address });
        const exclusive = l.owner !== undefined || l.advisory.some((a) => a.exclusive);
        if (ctx.json) {
          ctx.emit(rows);
          return;
        }
        if (rows.length === 0) return;
        const tag = l.advisory.find((a) => a.tag !== null)?.tag;
        ctx.out(`There ${rows.length === 1 ? 'is' : 'are'} ${rows.length} ${exclusive ? 'exclusive' : 'shared'} lock${rows.length === 1 ? '' : 's'} on this image.\n`);
        if (!exclusive && tag) ctx.out(`Lock tag: ${tag}\n`);
        ctx.out(table([['Locker', 'l'], ['ID', 'l'], ['Address', 'l']], rows.map((r) => [r.locker, r.id, r.address])));
      }),
    );
  lock
    .command('add')
    .argument('<image-spec>')
    .argument('<lock-id>')
    .option('--shared <lock-tag>', 'shared lock tag')
    .description('take a lock on an image')
    .action((spec: string, id: string, o: { shared?: string }, cmd: Command) =>
      run(cmd, async (ctx) => {
        await (await ctx.store()).addLock(ctx.spec(spec, 'none'), id, o.shared !== undefined ? { tag: o.shared } : {});
      }),
    );
  lock
    .command('rm')
    .alias('remove')
    .argument('<image-spec>')
    .argument('<lock-id>')
    .argument('<locker>')
    .description('release a lock on an image')
    .action((spec: string, id: string, locker: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        await (await ctx.store()).removeLock(ctx.spec(spec, 'none'), id, locker);
      }),
    );
  rbd
    .command('status')
    .argument('<image-spec>')
    .description('show the status of this image (watchers)')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const ws = await (await ctx.store()).status(ctx.spec(spec, 'none'));
        if (ctx.json) {
          ctx.emit({ watchers: ws.map((w) => ({ address: `${w.host}:0/${w.pid}`, client: w.client, cookie: w.token, mode: w.mode, since: w.since })) });
          return;
        }
        if (ws.length === 0) {
          ctx.out('Watchers: none\n');
          return;
        }
        ctx.out('Watchers:\n' + ws.map((w) => `\twatcher=${w.host}:0/${w.pid} client=${w.client} cookie=${w.token} mode=${w.mode}\n`).join(''));
      }),
    );

  // ---- pools and check
  const pool = rbd.command('pool').description('pool commands');
  pool
    .command('create')
    .argument('<pool-name>')
    .description('create a pool')
    .action((name: string, _o: unknown, cmd: Command) => run(cmd, async (ctx) => (await ctx.store()).createPool(name)));
  pool
    .command('ls')
    .alias('list')
    .description('list pools')
    .action((_o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const pools = await (await ctx.store()).listPools();
        if (ctx.json) ctx.emit(pools);
        else ctx.out(pools.map((p) => p + '\n').join(''));
      }),
    );
  pool
    .command('rm')
    .alias('remove')
    .argument('<pool-name>')
    .description('remove an empty pool')
    .action((name: string, _o: unknown, cmd: Command) => run(cmd, async (ctx) => (await ctx.store()).removePool(name)));

  rbd
    .command('check')
    .argument('[pool-name]', 'pool to check (default: all pools)')
    .option('--repair', 'fix what has one safe fix')
    .description('verify the on-disk consistency of a pool')
    .action((name: string | undefined, o: { repair?: boolean }, cmd: Command) =>
      run(cmd, async (ctx) => {
        const store = await ctx.store();
        const pools = name ? [name] : ctx.g.pool ? [ctx.g.pool] : undefined;
        const r = await checkStore(store, pools, { repair: o.repair });
        const open = r.problems.filter((p) => !p.repaired);
        if (ctx.json) {
          ctx.emit({ pools: r.pools, images: r.images, problems: r.problems });
        } else {
          for (const p of r.problems) ctx.out(`${p.where}: ${p.message}${p.repaired ? ' [repaired]' : p.repairable ? ' [repairable with --repair]' : ''}\n`);
          ctx.out(`checked ${r.pools} pool(s), ${r.images} image(s): ${open.length === 0 ? 'clean' : `${open.length} problem(s)`}${r.problems.length - open.length ? `, ${r.problems.length - open.length} repaired` : ''}\n`);
        }
        if (open.length > 0) process.exitCode = 1;
      }),
    );

  return rbd;
}
