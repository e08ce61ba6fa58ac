/** `.../host-groups` (HostGroups) and `.../host-groups/<name>` (HostGroup): consistent LUN ids for a cluster of hosts. */
import { seg } from '../api-client';
import { CliError, Command, CommandContext, Summary, UINode, didYouMean } from '../node';
import { Model } from '../model';
import { call, iqn, need } from './common';
import type { Target } from './target';

const GROUP_RE = /^[\w@-]{1,32}$/u;

export class HostGroups extends UINode {
  readonly kind = 'HostGroups';
  constructor(parent: Target, model: Model) {
    super('host-groups', parent, model);
  }
  get target(): Target {
    return this.parent as Target;
  }
  protected buildChildren(): UINode[] {
    return Object.keys(this.target.config.groups)
      .sort()
      .map((g) => new HostGroup(this, this.model, g));
  }
  summary(): Summary {
    return { text: `Groups : ${Object.keys(this.target.config.groups).length}`, state: 'none' };
  }
  override commands(): Command[] {
    const t = this.target.iqn;
    return [
      {
        name: 'create',
        params: [{ name: 'group_name' }],
        help: 'Define a host group: create <group_name> (1-32 letters, digits, -, _, @). Then cd into it.',
        run: async (ctx, a) => {
          const g = need(a, 'group_name', 'create <group_name>');
          if (!GROUP_RE.test(g)) throw new CliError(`Invalid group name '${g}' - max of 32 chars of alphanumeric and -,_,@ characters`, 'usage');
          if (this.target.config.groups[g]) throw new CliError(`Group ${g} already defined`, 'refused');
          await call(ctx, 'PUT', `/api/hostgroup/${seg(t)}/${seg(g)}`);
          ctx.out.ok();
          ctx.cd(`${this.path}/${g}`);
        },
      },
      {
        name: 'delete',
        params: [{ name: 'group_name', values: (ctx) => Object.keys(ctx.model.config.targets[t]?.groups ?? {}) }],
        help: 'Remove a host group (its hosts keep their LUNs): delete <group_name>.',
        run: async (ctx, a) => {
          const g = need(a, 'group_name', 'delete <group_name>');
          const names = Object.keys(this.target.config.groups);
          if (!names.includes(g)) throw new CliError(`Group name '${g}' not found.${didYouMean(g, names)}`, 'refused');
          await call(ctx, 'DELETE', `/api/hostgroup/${seg(t)}/${seg(g)}`);
          ctx.out.ok();
        },
      },
    ];
  }
}

export class HostGroup extends UINode {
  readonly kind = 'HostGroup';
  constructor(parent: HostGroups, model: Model, name: string) {
    super(name, parent, model);
  }
  private get target(): Target {
    return (this.parent as HostGroups).target;
  }
  private get config() {
    return this.target.config.groups[this.name];
  }
  protected buildChildren(): UINode[] {
    return [...this.config.members.map((m) => new GroupMember(this, this.model, m, 'host')), ...Object.keys(this.config.disks).sort().map((d) => new GroupMember(this, this.model, d, 'disk'))];
  }
  summary(): Summary {
    return { text: `Hosts: ${this.config.members.length}, Disks: ${Object.keys(this.config.disks).length}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    return { name: this.name, members: this.config.members, disks: Object.keys(this.config.disks) };
  }
  override commands(): Command[] {
    const t = this.target.iqn;
    return [
      {
        name: 'host',
        params: [
          { name: 'action', values: () => ['add', 'remove'] },
          { name: 'client_iqn', values: (ctx, g) => (g.named.action === 'remove' ? this.config.members : Object.keys(ctx.model.config.targets[t]?.clients ?? {}).filter((c) => !this.config.members.includes(c))) },
        ],
        help: 'Add a host (it gets every disk of the group) or remove it (it keeps its LUNs): host add|remove <client_iqn>.',
        run: async (ctx, a) => this.change(ctx, 'members', need(a, 'action', 'host add|remove <client_iqn>'), iqn(need(a, 'client_iqn', 'host add|remove <client_iqn>'))),
      },
      {
        name: 'disk',
        params: [
          { name: 'action', values: () => ['add', 'remove'] },
          { name: 'disk', values: (ctx, g) => (g.named.action === 'remove' ? Object.keys(this.config.disks) : ctx.model.diskIds().filter((d) => !this.config.disks[d])) },
        ],
        help: 'Add a disk to every host of the group (it is mapped to the target if needed) or remove it: disk add|remove <pool>/<image>.',
        run: async (ctx, a) => this.change(ctx, 'disks', need(a, 'action', 'disk add|remove <pool>/<image>'), need(a, 'disk', 'disk add|remove <pool>/<image>')),
      },
    ];
  }

  private async change(ctx: CommandContext, what: 'members' | 'disks', action: string, item: string): Promise<void> {
    if (action !== 'add' && action !== 'remove') throw new CliError(`action must be add or remove, not '${action}'`, 'usage');
    const tc = ctx.model.config.targets[t(this)];
    if (what === 'members') {
      const hosts = Object.keys(tc.clients);
      if (!hosts.includes(item)) throw new CliError(`host '${item}' is not defined under hosts.${didYouMean(item, hosts)} Create it first: ${this.target.path}/hosts create ${item}`, 'refused');
      const owner = tc.clients[item].group_name;
      if (action === 'add' && owner) throw new CliError(`'${item}' already belongs to '${owner}'`, 'refused');
      if (action === 'remove' && !this.config.members.includes(item)) throw new CliError(`'${item}' is not a member of ${this.name}`, 'refused');
    } else {
      const ids = ctx.model.diskIds();
      if (!ids.includes(item)) throw new CliError(`disk '${item}' is not defined in /disks.${didYouMean(item, ids)}`, 'refused');
      if (action === 'add' && this.config.disks[item]) throw new CliError(`disk '${item}' is already in ${this.name}`, 'refused');
      if (action === 'remove' && !this.config.disks[item]) throw new CliError(`disk '${item}' is not in the group`, 'refused');
      if (action === 'add' && !tc.disks[item]) await call(ctx, 'PUT', `/api/targetlun/${seg(t(this))}`, { disk: item });
    }
    await call(ctx, 'PUT', `/api/hostgroup/${seg(t(this))}/${seg(this.name)}`, { action, [what]: item });
    ctx.out.ok();
  }
}

function t(g: HostGroup): string {
  return (g.parent as HostGroups).target.iqn;
}

export class GroupMember extends UINode {
  readonly kind = 'HostGroupMember';
  constructor(parent: HostGroup, model: Model, name: string, readonly role: 'host' | 'disk') {
    super(name, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    return { text: this.role, state: 'none' };
  }
}
