/** `rbd copy | export | import`: image data in and out of the store. */
import * as path from 'node:path';
import { Command } from 'commander';
import { copyImage, exportImage, importImage } from '../../store/transfer';
import { run, UsageError } from './context';
import { addImageOptions, imageCreateOptions } from './args';

export function registerTransferCommands(rbd: Command): void {
  addImageOptions(rbd.command('copy').alias('cp').argument('<source-image-or-snap-spec>').argument('<dest-image-spec>'))
    .description('copy src image to dest')
    .action((src: string, dst: string, o: Record<string, unknown>, cmd: Command) =>
      run(cmd, async (ctx) => {
        const s = ctx.spec(src, 'permitted');
        const d = ctx.spec(dst, 'none');
        const store = await ctx.store();
        await ctx.ensurePool(store, d.pool);
        await ctx.withProgress('Image copy', (update) => copyImage(store, s, d, imageCreateOptions(o), update));
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
        await ctx.withProgress('Exporting image', (update) => exportImage(store, s, file, update));
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
        await ctx.withProgress('Importing image', (update) => importImage(store, file, d, imageCreateOptions(o), update));
      }),
    );
}
