/** `rbd feature enable | disable`. */
import { Command } from 'commander';
import { parseFeatures } from '../../store/features';
import { run } from './context';

export function registerFeatureCommands(rbd: Command): void {
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
}
