/** `/iscsi-targets` (ISCSITargets): create, delete, clearconfig, discovery_auth. */
import { seg } from '../api-client';
import { Args, CliError, Command, CommandContext, Summary, UINode, didYouMean } from '../node';
import { Model } from '../model';
import { AUTH_PARAMS, authSummary, bool, call, credentials, iqn, need } from './common';
import { Target } from './target';

export const IQN_HINT = "an IQN looks like iqn.YYYY-MM.reversed.domain[:name] (no spaces or '_'), e.g. iqn.2003-01.org.linux-iscsi.host:target";

/** rtslib's normalize_wwn(['iqn']) check, done before sending so the message can name the form. */
export function checkIqn(value: string): string {
  const v = iqn(value);
  if (!/^iqn\.[0-9]{4}-[0-1][0-9]\..*\..*/.test(v) || /\s|_/.test(v)) throw new CliError(`IQN name '${value}' is not valid for iSCSI: ${IQN_HINT}`, 'usage');
  return v;
}

export class ISCSITargets extends UINode {
  readonly kind = 'ISCSITargets';
  constructor(parent: UINode, model: Model) {
    super('iscsi-targets', parent, model);
  }
  protected buildChildren(): UINode[] {
    return this.model.targetIqns().map((t) => new Target(this, this.model, t));
  }
  summary(): Summary {
    return { text: `DiscoveryAuth: ${authSummary(this.model.config.discovery_auth)}, Targets: ${this.model.targetIqns().length}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    const a = this.model.config.discovery_auth;
    return { discovery_auth: { username: a.username, password: a.password, mutual_username: a.mutual_username, mutual_password: a.mutual_password } };
  }
  override commands(): Command[] {
    const targets = (ctx: CommandContext): string[] => ctx.model.targetIqns();
    return [
      {
        name: 'create',
        params: [{ name: 'target_iqn', values: () => ['iqn.2003-01.org.linux-iscsi.'] }],
        help: `Define a new target: create <target_iqn>. Upper case is accepted and stored in lower case (${IQN_HINT}).`,
        run: async (ctx, a) => {
          const t = checkIqn(need(a, 'target_iqn', 'create <target_iqn>'));
          await call(ctx, 'PUT', `/api/target/${seg(t)}`);
          ctx.out.ok();
        },
      },
      {
        name: 'delete',
        params: [{ name: 'target_iqn', values: targets }],
        help: 'Delete a target (its hosts and disks must be removed first): delete <target_iqn>.',
        run: async (ctx, a) => {
          const t = iqn(need(a, 'target_iqn', 'delete <target_iqn>'));
          if (!ctx.model.config.targets[t]) throw new CliError(`target '${t}' does not exist.${didYouMean(t, ctx.model.targetIqns())}`, 'refused');
          await call(ctx, 'DELETE', `/api/target/${seg(t)}`);
          ctx.out.ok();
        },
      },
      {
        name: 'clearconfig',
        params: [{ name: 'confirm', optional: true, values: () => ['true', 'false'] }],
        help: 'Remove every target from every gateway: clearconfig confirm=true. Hosts and disks must be removed first.',
        run: async (ctx, a) => this.clearconfig(ctx, a),
      },
      {
        name: 'discovery_auth',
        params: AUTH_PARAMS.map((n) => ({ name: n, optional: n !== 'username', values: n === 'username' ? () => ['nochap'] : undefined })),
        help: 'Set discovery CHAP: discovery_auth username=<user> password=<password> [mutual_username=<user> mutual_password=<password>]; discovery_auth nochap removes it. Usernames 8-64 characters (letters, digits, . : @ _ -), passwords 12-16 (letters, digits, @ - _ /).',
        run: async (ctx, a) => {
          const f = credentials(a, 'username=<user> password=<password> [mutual_username=<user> mutual_password=<password>]');
          await call(ctx, 'PUT', '/api/discoveryauth', f);
          ctx.out.ok();
        },
      },
    ];
  }

  private async clearconfig(ctx: CommandContext, a: Args): Promise<void> {
    if (!bool(a, 'confirm', false)) throw new CliError('To clear the configuration you must specify confirm=true', 'usage');
    const cfg = ctx.model.config;
    for (const [t, tc] of Object.entries(cfg.targets)) {
      const n = Object.keys(tc.clients).length;
      if (n) throw new CliError(`${t} - Clients(${n}) must be removed first before clearing the gateway configuration`, 'refused');
    }
    const nd = Object.keys(cfg.disks).length;
    if (nd) throw new CliError(`Disks(${nd}) must be removed first before clearing the gateway configuration (see /disks detach|delete)`, 'refused');
    for (const t of Object.keys(cfg.targets)) await call(ctx, 'DELETE', `/api/target/${seg(t)}`);
    ctx.out.ok();
  }
}
