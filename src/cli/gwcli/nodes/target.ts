/** `/iscsi-targets/<iqn>` (Target): reconfigure, auth, info, sessions. */
import { seg } from '../api-client';
import { Command, CommandContext, Summary, UINode } from '../node';
import { Model } from '../model';
import { AUTH_PARAMS, authSummary, call, checkControl, controlJson, controlValues, credentials, need } from './common';
import { GatewayGroup } from './gateways';
import { TargetDisks } from './target-disks';
import { HostGroups } from './host-groups';
import { Clients } from './hosts';
import { renderInfo } from './disk';

export class Target extends UINode {
  readonly kind = 'Target';
  constructor(parent: UINode, model: Model, readonly iqn: string) {
    super(iqn, parent, model);
  }
  get config() {
    return this.model.config.targets[this.iqn];
  }
  protected buildChildren(): UINode[] {
    return [new TargetDisks(this, this.model), new GatewayGroup(this, this.model), new HostGroups(this, this.model), new Clients(this, this.model)];
  }
  summary(): Summary {
    return { text: `Auth: ${authSummary(this.config.auth)}, Gateways: ${Object.keys(this.config.portals).length}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    const controls: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.model.limits.targetDefaults)) controls[k] = String(v);
    for (const [k, v] of Object.entries(this.config.controls)) controls[k] = `${String(v)} (override)`;
    const a = this.config.auth;
    return {
      target_iqn: this.iqn,
      acl_enabled: this.config.acl_enabled,
      auth: { username: a.username, password: a.password, mutual_username: a.mutual_username, mutual_password: a.mutual_password },
      control_values: controls,
    };
  }
  override commands(): Command[] {
    return [
      {
        name: 'reconfigure',
        params: [
          { name: 'attribute', values: (ctx) => Object.keys(ctx.model.limits.targetLimits).sort() },
          { name: 'value', optional: true, values: (ctx, g) => controlValues(ctx.model.limits.targetLimits[g.named.attribute ?? '']) },
        ],
        help: 'Change a target setting on every gateway: reconfigure <attribute> <value> (an empty value resets it). TAB lists the settings.',
        run: async (ctx, a) => {
          const attr = need(a, 'attribute', 'reconfigure <attribute> <value>');
          const limits = ctx.model.limits.targetLimits;
          const value = a.named.value ?? '';
          checkControl('target', attr, value, limits);
          const v = value === '' ? String(ctx.model.limits.targetDefaults[attr] ?? '') : value;
          await call(ctx, 'PUT', `/api/target/${seg(this.iqn)}`, { mode: 'reconfigure', controls: controlJson(attr, v, limits) });
          ctx.out.ok();
        },
      },
      {
        name: 'auth',
        params: AUTH_PARAMS.map((n) => ({ name: n, optional: n !== 'username', values: n === 'username' ? () => ['nochap'] : undefined })),
        help: 'Target-level CHAP (only while ACLs are disabled): auth username=<user> password=<password> [mutual_username= mutual_password=], or auth nochap.',
        run: async (ctx, a) => {
          await call(ctx, 'PUT', `/api/targetauth/${seg(this.iqn)}`, credentials(a, 'username=<user> password=<password> [mutual_username=<user> mutual_password=<password>]'));
          ctx.out.ok();
        },
      },
      {
        name: 'sessions',
        params: [],
        help: 'Initiators logged in to this target: initiator, gateways, LUNs, auth.',
        run: async (ctx) => printSessions(ctx, this.iqn),
      },
    ];
  }
}

/** One line per logged-in host of a target. */
export async function printSessions(ctx: CommandContext, target: string): Promise<void> {
  const t = ctx.model.config.targets[target];
  const rows: Array<Record<string, unknown>> = [];
  for (const [c, cc] of Object.entries(t.clients)) {
    const gws = ctx.model.loggedIn.get(`${target}|${c}`);
    if (!gws) continue;
    rows.push({ initiator: c, gateways: gws, luns: Object.keys(cc.luns).sort(), auth: authSummary(cc.auth) });
  }
  const info = await ctx.api.request('GET', `/api/targetinfo/${seg(target)}`);
  const total = typeof info.body.num_sessions === 'number' ? info.body.num_sessions : rows.length;
  ctx.out.data({ num_sessions: total, sessions: rows }, () => [
    `Sessions: ${total}`,
    ...rows.flatMap((r) => renderInfo(r).map((l, i) => (i === 0 ? `- ${l}` : `  ${l}`))),
  ]);
}
