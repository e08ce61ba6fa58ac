/** `.../disks` (TargetDisks) and `.../disks/<pool>/<image>` (TargetDisk): LUNs of a target. */
import { seg } from '../api-client';
import { CliError, Command, Summary, UINode, didYouMean } from '../node';
import { Model } from '../model';
import { call, diskParts, need } from './common';
import type { Target } from './target';

export class TargetDisks extends UINode {
  readonly kind = 'TargetDisks';
  constructor(parent: Target, model: Model) {
    super('disks', parent, model);
  }
  get target(): Target {
    return this.parent as Target;
  }
  protected buildChildren(): UINode[] {
    const luns = this.target.config.disks;
    return Object.keys(luns)
      .sort((a, b) => luns[a].lun_id - luns[b].lun_id)
      .map((d) => new TargetDisk(this, this.model, d));
  }
  summary(): Summary {
    return { text: `Disks: ${Object.keys(this.target.config.disks).length}`, state: 'none' };
  }
  override commands(): Command[] {
    const iqn = this.target.iqn;
    return [
      {
        name: 'add',
        params: [
          { name: 'disk', values: (ctx) => ctx.model.diskIds().filter((d) => !ctx.model.config.targets[iqn]?.disks[d]) },
          { name: 'lun_id', optional: true },
        ],
        help: 'Map a disk of /disks to this target as a LUN: add <pool>/<image> [lun_id].',
        run: async (ctx, a) => {
          const disk = need(a, 'disk', 'add <pool>/<image> [lun_id]');
          if (!disk.includes('@')) diskParts(disk);
          if (!ctx.model.config.disks[disk]) {
            throw new CliError(`Disk ${disk} is not defined in the configuration.${didYouMean(disk, ctx.model.diskIds())} Register it first: /disks attach ${disk} (or create).`, 'refused');
          }
          const lun = a.named.lun_id;
          if (lun !== undefined && (!/^\d+$/.test(lun) || Number(lun) > 16383)) throw new CliError(`Lun id must be a number in 0-16383, not '${lun}'`, 'usage');
          await call(ctx, 'PUT', `/api/targetlun/${seg(iqn)}`, { disk, ...(lun !== undefined ? { lun_id: lun } : {}) });
          ctx.out.ok();
        },
      },
      {
        name: 'delete',
        params: [{ name: 'disk', values: (ctx) => Object.keys(ctx.model.config.targets[iqn]?.disks ?? {}) }],
        help: 'Unmap a LUN from this target: delete <pool>/<image>.',
        run: async (ctx, a) => {
          const disk = need(a, 'disk', 'delete <pool>/<image>');
          const mapped = Object.keys(this.target.config.disks);
          if (!mapped.includes(disk)) throw new CliError(`Disk ${disk} is not mapped to this target.${didYouMean(disk, mapped)}`, 'refused');
          await call(ctx, 'DELETE', `/api/targetlun/${seg(iqn)}`, { disk });
          ctx.out.ok();
        },
      },
    ];
  }
}

export class TargetDisk extends UINode {
  readonly kind = 'TargetDisk';
  constructor(parent: TargetDisks, model: Model, name: string) {
    super(name, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  private get lun(): number {
    return (this.parent as TargetDisks).target.config.disks[this.name]?.lun_id ?? -1;
  }
  summary(): Summary {
    return { text: `Owner: ${this.model.config.disks[this.name]?.owner ?? ''}, Lun: ${this.lun}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    return { name: this.name, owner: this.model.config.disks[this.name]?.owner ?? '', lun_id: this.lun };
  }
}
