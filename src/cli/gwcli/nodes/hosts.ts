/** `.../hosts` (Clients), `.../hosts/<iqn>` (Client) and its `lunN` (MappedLun) nodes. */
import { seg } from '../api-client';
import { CliError, Command, CommandContext, Summary, UINode, didYouMean, humanSize } from '../node';
import { Model } from '../model';
import { AUTH_PARAMS, authSummary, call, credentials, diskParts, iqn, need } from './common';
import type { Target } from './target';
import { printSessions } from './target';
import { checkIqn } from './targets';

export class Clients extends UINode {
  readonly kind = 'Clients';
  constructor(parent: Target, model: Model) {
    super('hosts', parent, model);
  }
  get target(): Target {
    return this.parent as Target;
  }
  protected buildChildren(): UINode[] {
    return Object.keys(this.target.config.clients)
      .sort()
      .map((c) => new Client(this, this.model, c));
  }
  summary(): Summary {
    const t = this.target.config;
    const clients = Object.values(t.clients);
    const chap = clients.filter((c) => c.auth.username).length;
    const mode = chap > 0 && chap < clients.length ? 'MISCONFIG' : t.acl_enabled ? 'ACL_ENABLED' : 'ACL_DISABLED';
    return { text: `Auth: ${mode}, Hosts: ${clients.length}`, state: mode === 'MISCONFIG' ? 'bad' : 'none' };
  }
  override commands(): Command[] {
    const t = this.target.iqn;
    return [
      {
        name: 'create',
        params: [{ name: 'client_iqn', values: () => ['iqn.1994-05.com.redhat:', 'iqn.1996-04.de.suse:01:'] }],
        help: 'Define an initiator (host) allowed to log in: create <client_iqn>. Then cd into it.',
        run: async (ctx, a) => {
          const c = checkIqn(need(a, 'client_iqn', 'create <client_iqn>'));
          await call(ctx, 'PUT', `/api/client/${seg(t)}/${seg(c)}`);
          ctx.out.ok();
          ctx.cd(`${this.path}/${c}`);
        },
      },
      {
        name: 'delete',
        params: [{ name: 'client_iqn', values: (ctx) => Object.keys(ctx.model.config.targets[t]?.clients ?? {}) }],
        help: 'Remove a host (refused while it is logged in or in a host group): delete <client_iqn>.',
        run: async (ctx, a) => {
          const c = iqn(need(a, 'client_iqn', 'delete <client_iqn>'));
          const names = Object.keys(this.target.config.clients);
          if (!names.includes(c)) throw new CliError(`${c} is not defined yet - nothing to delete.${didYouMean(c, names)}`, 'refused');
          await call(ctx, 'DELETE', `/api/client/${seg(t)}/${seg(c)}`);
          ctx.out.ok();
        },
      },
      {
        name: 'auth',
        params: [{ name: 'action', values: () => ['disable_acl', 'enable_acl', 'nochap'] }],
        help: "ACL mode and CHAP of all hosts: auth disable_acl (any initiator may log in and sees every LUN), auth enable_acl (only defined hosts), auth nochap (remove every host's CHAP).",
        run: async (ctx, a) => {
          const action = a.named.action;
          if (!action) throw new CliError("Missing auth argument. Use 'auth nochap|disable_acl|enable_acl'", 'usage');
          if (action === 'nochap') {
            for (const c of Object.keys(this.target.config.clients)) {
              await call(ctx, 'PUT', `/api/clientauth/${seg(t)}/${seg(c)}`, { username: '', password: '', mutual_username: '', mutual_password: '' });
            }
          } else if (action === 'disable_acl' || action === 'enable_acl') {
            await call(ctx, 'PUT', `/api/targetauth/${seg(t)}`, { action });
          } else {
            throw new CliError(`Invalid auth argument '${action}'. Use 'auth nochap|disable_acl|enable_acl'.${didYouMean(action, ['nochap', 'disable_acl', 'enable_acl'])}`, 'usage');
          }
          ctx.out.ok();
        },
      },
      { name: 'sessions', params: [], help: 'Hosts logged in to this target.', run: async (ctx) => printSessions(ctx, t) },
    ];
  }
}

export class Client extends UINode {
  readonly kind = 'Client';
  constructor(parent: Clients, model: Model, readonly iqn: string) {
    super(iqn, parent, model);
  }
  get target(): Target {
    return (this.parent as Clients).target;
  }
  get config() {
    return this.target.config.clients[this.iqn];
  }
  loggedIn(): string[] | undefined {
    return this.model.loggedIn.get(`${this.target.iqn}|${this.iqn}`);
  }
  protected buildChildren(): UINode[] {
    const luns = this.config.luns;
    return Object.keys(luns)
      .sort((a, b) => luns[a].lun_id - luns[b].lun_id)
      .map((d) => new MappedLun(this, this.model, d, luns[d].lun_id));
  }
  summary(): Summary {
    const ids = Object.keys(this.config.luns);
    const size = ids.reduce((a, d) => a + (this.model.disks.get(d)?.size ?? 0), 0);
    const li = this.loggedIn();
    return { text: `${li ? 'LOGGED-IN, ' : ''}Auth: ${authSummary(this.config.auth)}, Disks: ${ids.length}(${humanSize(size)})`, state: li ? 'ok' : 'none' };
  }
  override info(): Record<string, unknown> {
    const a = this.config.auth;
    const li = this.loggedIn();
    const ci = this.model.clientInfo.get(`${this.target.iqn}|${this.iqn}`);
    return {
      client_iqn: this.iqn,
      // As ceph-iscsi: the initiator's addresses and alias while logged in (empty otherwise).
      ip_address: li ? ci?.ip_address.join(', ') ?? '' : '',
      alias: li ? ci?.alias ?? '' : '',
      logged_in: li ? `LOGGED_IN (${li.join(', ')})` : '',
      auth: { username: a.username, password: a.password, mutual_username: a.mutual_username, mutual_password: a.mutual_password },
      group_name: this.config.group_name,
      luns: Object.fromEntries(Object.entries(this.config.luns).map(([d, l]) => [d, `lun ${l.lun_id}`])),
    };
  }
  override commands(): Command[] {
    const t = this.target.iqn;
    return [
      {
        name: 'auth',
        params: AUTH_PARAMS.map((n) => ({ name: n, optional: n !== 'username', values: n === 'username' ? () => ['nochap'] : undefined })),
        help: 'CHAP for this host: auth username=<user> password=<password> [mutual_username=<user> mutual_password=<password>], or auth nochap. Enable CHAP for all hosts of a target or none. Usernames 8-64 characters (letters, digits, . : @ _ -), passwords 12-16 (letters, digits, @ - _ /).',
        run: async (ctx, a) => {
          await call(ctx, 'PUT', `/api/clientauth/${seg(t)}/${seg(this.iqn)}`, credentials(a, 'username=<user> password=<password> [mutual_username=<user> mutual_password=<password>]'));
          ctx.out.ok();
        },
      },
      {
        name: 'disk',
        params: [
          { name: 'action', values: () => ['add', 'remove'] },
          { name: 'disk', values: (ctx, g) => (g.named.action === 'remove' ? Object.keys(this.config.luns) : ctx.model.diskIds().filter((d) => !this.config.luns[d])) },
          { name: 'size', optional: true },
        ],
        help: 'Give this host a LUN: disk add <pool>/<image> [size] (a disk not in /disks is created with size; one not mapped to the target is mapped), or disk remove <pool>/<image>.',
        run: async (ctx, a) => this.disk(ctx, need(a, 'action', 'disk add|remove <pool>/<image>'), need(a, 'disk', 'disk add|remove <pool>/<image>'), a.named.size),
      },
    ];
  }

  private async disk(ctx: CommandContext, action: string, disk: string, size: string | undefined): Promise<void> {
    const t = this.target.iqn;
    const path = `/api/clientlun/${seg(t)}/${seg(this.iqn)}`;
    if (action === 'remove') {
      const mine = Object.keys(this.config.luns);
      if (!mine.includes(disk)) throw new CliError(`disk '${disk}' is not mapped to this client.${didYouMean(disk, mine)}`, 'refused');
      await call(ctx, 'DELETE', path, { disk });
      ctx.out.ok();
      return;
    }
    if (action !== 'add') throw new CliError(`disk action must be add or remove, not '${action}'`, 'usage');
    if (this.config.luns[disk]) throw new CliError(`Disk ${disk} already mapped`, 'refused');
    if (!disk.includes('@')) diskParts(disk);
    if (!ctx.model.config.disks[disk]) {
      // ceph-iscsi: a disk not in /disks is created here when a size is given.
      if (!size) throw new CliError(`disk '${disk}' is not defined in /disks.${didYouMean(disk, ctx.model.diskIds())} Give a size to create it (disk add ${disk} <size>), or /disks attach ${disk} first.`, 'refused');
      const [p, i] = diskParts(disk);
      await call(ctx, 'PUT', `/api/disk/${seg(p)}/${seg(i)}`, { pool: p, mode: 'create', create_image: 'true', size: size.toUpperCase(), count: '1' });
    }
    if (!ctx.model.config.targets[t].disks[disk]) await call(ctx, 'PUT', `/api/targetlun/${seg(t)}`, { disk });
    await call(ctx, 'PUT', path, { disk });
    const others = Object.entries(ctx.model.config.targets[t].clients).filter(([c, cc]) => c !== this.iqn && cc.luns[disk]).length;
    if (others) ctx.out.warn(`Warning: '${disk}' mapped to ${others} other client(s)`);
    ctx.out.ok();
  }
}

export class MappedLun extends UINode {
  readonly kind = 'MappedLun';
  constructor(parent: Client, model: Model, readonly disk: string, readonly lunId: number) {
    super(`lun${lunId}`, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    const size = this.model.disks.get(this.disk)?.size;
    return { text: `${this.disk}(${humanSize(size)}), Owner: ${this.model.config.disks[this.disk]?.owner ?? ''}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    const size = this.model.disks.get(this.disk)?.size;
    return { rbd_name: this.disk, owner: this.model.config.disks[this.disk]?.owner ?? '', size, size_h: humanSize(size), lun_id: this.lunId };
  }
}
