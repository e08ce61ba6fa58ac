/**
 * Gateways of a target (its portals): add with the gateway-add checks of §2.4, delete with
 * LUN owners moved to the remaining gateways. The change is committed to the shared config;
 * every gateway's reconciler opens or closes its portals. A gateway that is down is added or
 * removed all the same and converges when it starts (ceph-iscsi answers 503 instead).
 */
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import { timestamp } from '../config/schema';
import { ApiContext, Routes, boolField, commit, current, fail, field, ok, params, refuseIfDisruptive, requireTarget } from './context';
import { reassignOwners } from '../ha/ownership';
import { recomputePortals } from './model';
import { deletionBlocker, dropUnusedGateway, pathIqn } from './targets';
import { hostAddresses } from './sysinfo';

/** Is `ip` an address of this host (127.0.0.0/8 and ::1 always are on Linux)? */
function localAddress(ip: string): boolean {
  return /^127\./.test(ip) || ip === '::1' || hostAddresses().includes(ip);
}

/** A gateway name must be usable as a host name (it becomes a config key and a log field). */
function gatewayNameProblem(name: string): string | undefined {
  return /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(name) ? undefined : `Invalid gateway name '${name}' (use a host name: letters, digits, '.' and '-')`;
}

async function resolvable(name: string): Promise<boolean> {
  try {
    await dns.lookup(name);
    return true;
  } catch {
    return false;
  }
}

export function registerGateways(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/gateways/:target_iqn', ['Return the gateways (portals) of a target'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    return requireTarget(await current(ctx), iqn).portals;
  });

  r.add(['PUT', 'DELETE'], '/api/gateway/:target_iqn/:gateway_name', [
    'Define (PUT) or delete (DELETE) a gateway (portal) of a target',
    ':param ip_address: (str) comma-separated IPv4/IPv6 addresses the gateway serves the target on',
    ':param nosync: (bool) accepted for compatibility (every gateway applies the config itself)',
    ':param skipchecks: (bool) skip the name resolution check of a gateway never seen running',
    ':param force: (bool) DELETE: accepted for compatibility (a down gateway is removed all the same)',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const gw = params(req).gateway_name;
    const before = await current(ctx);
    const target = requireTarget(before, iqn);
    if (req.method === 'PUT') {
      const nameProblem = gatewayNameProblem(gw);
      if (nameProblem) fail(400, nameProblem);
      if (target.portals[gw]) fail(400, 'Gateway already exists in configuration');
      const raw = field(req, 'ip_address');
      if (raw === undefined || raw.trim() === '') fail(400, 'ip_address is required (comma-separated IPv4/IPv6 addresses of the gateway)');
      const ips = raw.split(',').map((s) => s.trim()).filter((s) => s);
      for (const ip of ips) {
        if (net.isIP(ip) === 0) fail(400, "IP address provided is not usable (name doesn't resolve, or not a valid IPv4/IPv6 address)");
      }
      if (new Set(ips).size !== ips.length) fail(400, 'IP address already defined to the configuration');
      if (!boolField(req, 'skipchecks', false)) {
        // A gateway this configuration knows (it published its state, or is a gateway of
        // another target) needs no DNS name; a new name must resolve, as in ceph-iscsi.
        const known = before.gateways[gw] !== undefined || (ctx.running ? (await ctx.running.gateways()).some((g) => g.name === gw) : false);
        if (!known && !(await resolvable(gw))) fail(400, `Gateway '${gw}' is not resolvable to an IP address`);
        // The gateway serving this API can tell which addresses it has (ceph-iscsi asks the
        // new gateway's sysinfo/ip_addresses).
        if (gw === ctx.gatewayName) {
          const missing = ips.find((ip) => !localAddress(ip));
          if (missing) fail(400, `IP address of ${missing} is not available on ${gw}. Valid IPs are :${hostAddresses().join(',')}`);
        }
      }
      await commit(ctx, (c) => {
        const t = requireTarget(c, iqn);
        if (t.portals[gw]) fail(400, 'Gateway already exists in configuration');
        for (const ip of ips) {
          if (t.ip_list.includes(ip)) fail(400, 'IP address already defined to the configuration');
          for (const [otherIqn, other] of Object.entries(c.targets)) {
            const owner = Object.entries(other.portals).find(([name, p]) => name !== gw && p.portal_ip_addresses.includes(ip));
            if (owner) fail(400, `IP address ${ip} is already a portal of gateway ${owner[0]} (target ${otherIqn})`);
          }
        }
        const now = timestamp();
        if (!c.gateways[gw]) c.gateways[gw] = { active_luns: 0, created: now, updated: now };
        t.ip_list.push(...ips);
        t.portals[gw] = { portal_ip_addresses: ips, inactive_portal_ips: [], gateway_ip_list: [], tpgs: 0 };
        recomputePortals(t);
        t.updated = now;
      });
      return ok(reply, 'Gateway creation successful');
    }
    if (!before.gateways[gw] || !target.portals[gw]) fail(404, 'Gateway does not exist in configuration');
    await refuseIfDisruptive(ctx, { kind: 'gateway-delete', target: iqn, gateway: gw });
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const p = t.portals[gw];
      if (!p) fail(404, 'Gateway does not exist in configuration');
      if (Object.keys(t.portals).length === 1) {
        const blocker = deletionBlocker(t);
        if (blocker) fail(400, blocker);
      }
      delete t.portals[gw];
      t.ip_list = t.ip_list.filter((ip) => !p.portal_ip_addresses.includes(ip));
      recomputePortals(t);
      // LUNs this gateway owned move to the least loaded remaining gateway (§5.6).
      reassignOwners(c);
      t.updated = timestamp();
      dropUnusedGateway(c, gw);
    });
    return ok(reply, 'Gateway deletion successful');
  });

  r.add(['GET'], '/api/_gateway/:target_iqn/:gateway_name', ['Portal of one gateway (internal)'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    const p = requireTarget(await current(ctx), iqn).portals[params(req).gateway_name];
    if (!p) fail(404, "Gateway doesn't exist in the configuration");
    return p;
  });
}
