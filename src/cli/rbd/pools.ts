/** `rbd pool create | ls | rm` and `rbd check`. */
import { Command } from 'commander';
import { checkStore } from '../../store/check';
import { run } from './context';

export function registerPoolCommands(rbd: Command): void {
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
}
