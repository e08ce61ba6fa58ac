/** `rbd create | ls | info | du | resize | rm | rename`. */
import { Command } from 'commander';
import { DEFAULT_POOL, parseImageSpec } from '../../store/names';
import { run, UsageError } from './context';
import { addImageOptions, imageCreateOptions, parseSize } from './args';
import { ctime, prettyBytes, table } from './output';

export function registerImageCommands(rbd: Command): void {
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
        await ctx.withProgress('Resizing image', () => store.resizeImage(s, size, { allowShrink: o.allowShrink }));
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
        await ctx.withProgress('Removing image', (update) => store.removeImage(s, update));
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
}
