/** `rbd lock ls | add | rm` and `rbd status` (watchers). */
import { Command } from 'commander';
import { run } from './context';
import { table } from './output';

export function registerLockCommands(rbd: Command): void {
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
}
