/** `/disks` (Disks) and `/disks/<pool>` (DiskPool): register, create, remove and change disks. */
import { seg } from '../api-client';
import { Args, CliError, Command, CommandContext, Summary, UINode, didYouMean, humanSize } from '../node';
import { Model } from '../model';
import { arg, call, checkSize, diskParts, need } from './common';
import { Disk } from './disk';

export function poolNames(m: Model): string[] {
  return [...new Set([...m.pools.map((p) => p.name), ...m.diskIds().map((d) => d.slice(0, d.indexOf('/')))])].sort();
}

/** The disk node for an id, or an error naming the disks that exist. */
export function findDisk(node: UINode, id: string): Disk {
  const disks = node.root().child('disks') as Disks;
  const [p, i] = id.includes('/') ? [id.slice(0, id.indexOf('/')), id.slice(id.indexOf('/') + 1)] : ['', id];
  const d = disks.child(p)?.child(i);
  if (!(d instanceof Disk)) {
    const ids = node['model'].diskIds();
    throw new CliError(`disk '${id}' is not defined in the configuration.${didYouMean(id, ids)}${ids.length ? '' : ' No disks are defined: see /disks create|attach.'}`, 'refused');
  }
  return d;
}

const diskIdValues = (ctx: CommandContext): string[] => ctx.model.diskIds();

export class Disks extends UINode {
  readonly kind = 'Disks';
  constructor(parent: UINode, model: Model) {
    super('disks', parent, model);
  }
  protected buildChildren(): UINode[] {
    const pools = [...new Set(this.model.diskIds().map((d) => d.slice(0, d.indexOf('/'))))].sort();
    return pools.map((p) => new DiskPool(this, this.model, p));
  }
  summary(): Summary {
    let total = 0;
    for (const id of this.model.diskIds()) total += this.model.disks.get(id)?.size ?? 0;
    return { text: `${humanSize(total)}, Disks: ${this.model.diskIds().length}`, state: 'none' };
  }

  override commands(): Command[] {
    const poolValues = (ctx: CommandContext): string[] => poolNames(ctx.model).map((p) => `${p}/`);
    const backstore = { name: 'backstore', optional: true, values: (ctx: CommandContext) => [...ctx.model.limits.backstores] };
    const byId = (name: string, help: string, run: (ctx: CommandContext, d: Disk, args: Args) => Promise<void>, extra: Command['params'] = []): Command => ({
      name,
      params: [{ name: 'image_id', values: diskIdValues }, ...extra],
      help,
      run: async (ctx, args) => run(ctx, findDisk(this, need(args, 'image_id', `${name} <pool>/<image>`)), args),
    });
    return [
      {
        name: 'create',
        params: [{ name: 'pool', values: poolValues }, { name: 'image', optional: true }, { name: 'size', optional: true, values: () => ['1G', '10G', '100G'] }, backstore, { name: 'wwn', optional: true }, { name: 'count', optional: true }],
        help: 'Create a new image and register it: create pool=<p> image=<i> size=<N>[M|G|T] [backstore=] [wwn=] [count=], or create <pool>/<image> <size> [count]. With count=N the images are named <image>1..<image>N.',
        run: async (ctx, a) => this.create(ctx, a, true),
      },
      {
        name: 'attach',
        params: [{ name: 'pool', values: poolValues }, { name: 'image', optional: true }, backstore, { name: 'wwn', optional: true }],
        help: 'Register an existing image as a disk: attach pool=<p> image=<i> [backstore=] [wwn=], or attach <pool>/<image>.',
        run: async (ctx, a) => this.create(ctx, a, false),
      },
      byId('delete', 'Remove a disk from the configuration AND DELETE ITS IMAGE: delete <pool>/<image>.', async (ctx, d) => {
        await call(ctx, 'DELETE', `/api/disk/${seg(d.pool)}/${seg(d.image)}`, { preserve_image: 'false' });
        ctx.out.ok();
      }),
      byId('detach', 'Remove a disk from the configuration, keeping its image: detach <pool>/<image>.', async (ctx, d) => {
        await call(ctx, 'DELETE', `/api/disk/${seg(d.pool)}/${seg(d.image)}`, { preserve_image: 'true' });
        ctx.out.ok();
      }),
      byId('resize', 'Grow a disk: resize <pool>/<image> <size>.', async (ctx, d, a) => d.resize(ctx, need(a, 'size', 'resize <pool>/<image> <size>')), [{ name: 'size', values: () => ['1G', '10G', '100G'] }]),
      byId('reconfigure', 'Change a disk setting: reconfigure <pool>/<image> <attribute> <value> (an empty value resets it).', async (ctx, d, a) => d.reconfigure(ctx, need(a, 'attribute', 'reconfigure <pool>/<image> <attribute> <value>'), a.named.value ?? ''), [
        { name: 'attribute', values: (ctx) => Object.keys(ctx.model.limits.diskLimits).sort() },
        { name: 'value', optional: true },
      ]),
      byId('info', 'Show a disk: info <pool>/<image>.', async (ctx, d) => d.printInfo(ctx)),
    ];
  }

  private async create(ctx: CommandContext, a: Args, createImage: boolean): Promise<void> {
    const usage = createImage ? 'create pool=<p> image=<i> size=<N>[M|G|T] or create <pool>/<image> <size> [count]' : 'attach pool=<p> image=<i> or attach <pool>/<image>';
    const n: Record<string, string> = { ...a.named };
    // Short form: the first word is <pool>/<image>; the words after it shift by one.
    if (n.pool?.includes('/')) {
      const [p, i] = diskParts(n.pool);
      if (createImage) {
        if (n.count === undefined && n.size !== undefined && n.image !== undefined) n.count = n.size;
        if (n.image !== undefined) n.size = n.image;
      }
      n.pool = p;
      n.image = i;
    }
    const pool = need({ named: n }, 'pool', usage);
    const image = need({ named: n }, 'image', usage);
    const fields: Record<string, string> = { pool, mode: 'create', create_image: createImage ? 'true' : 'false', count: '1' };
    if (createImage) fields.size = checkSize(need({ named: n }, 'size', usage));
    const count = arg({ named: n }, 'count');
    if (count !== undefined) {
      if (!/^\d+$/.test(count) || Number(count) < 1 || Number(count) > 10) throw new CliError(`invalid count '${count}' specified, must be an integer (1-10)`, 'usage');
      fields.count = count;
    }
    const bs = arg({ named: n }, 'backstore');
    if (bs !== undefined) {
      const known = ctx.model.limits.backstores;
      if (known.length && !known.includes(bs)) throw new CliError(`Invalid '${bs}' backstore - Supported backstores: ${known.join(', ')}`, 'usage');
      fields.backstore = bs;
    }
    const wwn = arg({ named: n }, 'wwn');
    if (wwn !== undefined) fields.wwn = wwn;
    await call(ctx, 'PUT', `/api/disk/${seg(pool)}/${seg(image)}`, fields);
    ctx.out.ok();
  }
}

export class DiskPool extends UINode {
  readonly kind = 'DiskPool';
  constructor(parent: UINode, model: Model, pool: string) {
    super(pool, parent, model);
  }
  protected buildChildren(): UINode[] {
    return this.model
      .diskIds()
      .filter((d) => d.startsWith(`${this.name}/`))
      .map((d) => new Disk(this, this.model, d.slice(this.name.length + 1)));
  }
  summary(): Summary {
    let total = 0;
    for (const c of this.children()) total += (c as Disk).size() ?? 0;
    return { text: `${this.name} (${humanSize(total)})`, state: 'none' };
  }
}

