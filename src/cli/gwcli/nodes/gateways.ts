/** `.../gateways` (GatewayGroup) and `.../gateways/<gw>` (Gateway): portals of a target. */
import { seg } from '../api-client';
import { CliError, Command, Summary, UINode, didYouMean } from '../node';
import { Model } from '../model';
import { bool, call, need } from './common';
import type { Target } from './target';

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6 = /^[0-9a-f:]+(%\w+)?$/i;

export class GatewayGroup extends UINode {
  readonly kind = 'GatewayGroup';
  constructor(parent: Target, model: Model) {
    super('gateways', parent, model);
  }
  get target(): Target {
    return this.parent as Target;
  }
  protected buildChildren(): UINode[] {
    return Object.keys(this.target.config.portals)
      .sort()
      .map((g) => new Gateway(this, this.model, g));
  }
  summary(): Summary {
    const gws = this.children() as Gateway[];
    const up = gws.filter((g) => g.state() === 'UP').length;
    return { text: `Up: ${up}/${gws.length}, Portals: ${gws.length}`, state: gws.length === 0 ? 'none' : up === gws.length ? 'ok' : 'bad' };
  }
  override info(): Record<string, unknown> {
    return { gateways: Object.keys(this.target.config.portals).sort() };
  }
  override commands(): Command[] {
    const iqn = this.target.iqn;
    return [
      {
        name: 'create',
        params: [
          { name: 'gateway_name', values: (ctx) => Object.keys(ctx.model.config.gateways).filter((g) => !ctx.model.config.targets[iqn]?.portals[g]) },
          { name: 'ip_addresses', values: (ctx, g) => ctx.model.gatewayAddresses(g.named.gateway_name ?? '').filter((a) => IPV4.test(a) || IPV6.test(a)) },
          { name: 'nosync', optional: true, values: () => ['true', 'false'] },
          { name: 'skipchecks', optional: true, values: () => ['true', 'false'] },
        ],
        help: 'Add a gateway (portal) to this target: create <gateway_name> <ip_address>[,<ip_address>…] [nosync=false] [skipchecks=false].',
        run: async (ctx, a) => {
          const usage = 'create <gateway_name> <ip_address>[,<ip_address>]';
          const name = need(a, 'gateway_name', usage);
          const ips = need(a, 'ip_addresses', usage)
            .split(',')
            .map((s) => s.trim().replace(/^\[(.*)\]$/, '$1'))
            .filter((s) => s);
          const bad = ips.filter((ip) => !IPV4.test(ip) && !(ip.includes(':') && IPV6.test(ip)));
          if (bad.length) throw new CliError(`'${bad.join(',')}' is not an IPv4 or IPv6 address: give ip_addresses as a comma-separated list, e.g. 192.168.124.104`, 'usage');
          const skipchecks = bool(a, 'skipchecks', false);
          const nosync = bool(a, 'nosync', false);
          await call(ctx, 'PUT', `/api/gateway/${seg(iqn)}/${seg(name)}`, { ip_address: ips.join(','), nosync: String(nosync), skipchecks: String(skipchecks) });
          ctx.out.ok();
        },
      },
      {
        name: 'delete',
        params: [
          { name: 'gateway_name', values: (ctx) => Object.keys(ctx.model.config.targets[iqn]?.portals ?? {}) },
          { name: 'confirm', optional: true, values: () => ['true', 'false'] },
        ],
        help: 'Remove a gateway from this target: delete <gateway_name> [confirm=true]. The last gateway, or one that cannot be reached, needs confirm=true.',
        run: async (ctx, a) => {
          const name = need(a, 'gateway_name', 'delete <gateway_name> [confirm=true]');
          const portals = Object.keys(this.target.config.portals);
          if (portals.length === 0) throw new CliError('Target is not mapped to any gateways.', 'refused');
          if (!portals.includes(name)) throw new CliError(`gateway '${name}' is not a gateway of this target.${didYouMean(name, portals)} Gateways: ${portals.join(', ')}`, 'refused');
          const confirm = bool(a, 'confirm', false);
          if (portals.length === 1 && !confirm) throw new CliError('Deleting the last gateway will remove all objects on this target. Use confirm=true', 'usage');
          if (!confirm && ctx.model.gatewayStates.get(name) !== 'UP') {
            throw new CliError(`Could not contact ${name}. If the gateway is permanently down, use confirm=true to force removal. WARNING: Forcing removal of a gateway that can still be reached by an initiator may result in data corruption.`, 'refused');
          }
          await call(ctx, 'DELETE', `/api/gateway/${seg(iqn)}/${seg(name)}`, { force: String(confirm) });
          ctx.out.ok();
        },
      },
      { name: 'refresh', params: [], help: 'Ping the gateways again.', run: async () => undefined },
    ];
  }
}

export class Gateway extends UINode {
  readonly kind = 'Gateway';
  constructor(parent: GatewayGroup, model: Model, name: string) {
    super(name, parent, model);
  }
  private get group(): GatewayGroup {
    return this.parent as GatewayGroup;
  }
  state(): string {
    return this.model.gatewayStates.get(this.name) ?? 'DOWN';
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  summary(): Summary {
    const p = this.group.target.config.portals[this.name];
    const st = this.state();
    return { text: `${(p?.portal_ip_addresses ?? []).join(',')} (${st})`, state: st === 'UP' ? 'ok' : 'bad' };
  }
  override info(): Record<string, unknown> {
    const p = this.group.target.config.portals[this.name];
    const st = this.state();
    return {
      name: this.name,
      gateway_ip_list: p?.gateway_ip_list ?? [],
      portal_ip_addresses: p?.portal_ip_addresses ?? [],
      inactive_portal_ips: p?.inactive_portal_ips ?? [],
      tpgs: p?.tpgs ?? 0,
      service_state: { iscsi: st === 'UP' ? 'UP' : 'DOWN', api: st === 'UP' || st === 'PARTIAL' ? 'UP' : 'DOWN' },
    };
  }
  override commands(): Command[] {
    const name = this.name;
    return [
      {
        name: 'drain',
        params: [],
        help: 'Maintenance: hand every disk this gateway owns to the other gateways (their paths become active/optimized) and take none until resume or a restart. The gateway can then be stopped without I/O errors on multipath initiators.',
        run: async (ctx) => {
          const r = await call(ctx, 'PUT', `/api/drain/${seg(name)}`);
          ctx.out.ok(typeof r.message === 'string' ? r.message : undefined);
        },
      },
      {
        name: 'resume',
        params: [],
        help: 'End a drain: the gateway takes disks over again (implicit transitions, failback of its preferred disks).',
        run: async (ctx) => {
          const r = await call(ctx, 'DELETE', `/api/drain/${seg(name)}`);
          ctx.out.ok(typeof r.message === 'string' ? r.message : undefined);
        },
      },
      { name: 'refresh', params: [], help: 'Ping the gateway again.', run: async () => undefined },
    ];
  }
}
