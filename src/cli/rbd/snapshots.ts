/** `rbd snap create | ls | rm | purge | rename | rollback | protect | unprotect | limit set | limit clear`. */
import { Command } from 'commander';
import { parseImageSpec } from '../../store/names';
import { run, UsageError } from './context';
import { parseCount } from './args';
import { ctime, prettyBytes, table } from './output';

export function registerSnapshotCommands(rbd: Command): void {
  const snap = rbd.command('snap').description('snapshot commands');
  snap
    .command('create')
    .alias('add')
    .argument('<snap-spec>', '[pool/]image@snapshot')
    .description('create a snapshot')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'required', 'snapshot');
        await ctx.withProgress('Creating snap', async () => (await ctx.store()).createSnapshot(s));
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
        await ctx.withProgress('Removing snap', async (update) => (await ctx.store()).removeSnapshot(s, update));
      }),
    );
  snap
    .command('purge')
    .argument('<image-spec>')
    .description('delete all unprotected snapshots')
    .action((spec: string, _o: unknown, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(spec, 'none');
        await ctx.withProgress('Removing all snapshots', async (update) => (await ctx.store()).purgeSnapshots(s, update));
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
        await ctx.withProgress('Rolling back to snapshot', async (update) => (await ctx.store()).rollbackSnapshot(s, update));
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
}
