/** `rbd clone | flatten | children`. */
import { Command } from 'commander';
import { run } from './context';
import { addImageOptions, imageCreateOptions } from './args';

export function registerCloneCommands(rbd: Command): void {
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
        await ctx.withProgress('Image flatten', async (update) => (await ctx.store()).flattenImage(s, update));
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
}
