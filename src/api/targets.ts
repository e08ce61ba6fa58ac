/**
 * Targets: list, create, reconfigure (controls), delete; session counts (targetinfo,
 * gatewayinfo) and the internal _target routes gwcli calls on each gateway.
 */
import type { GatewayConfig, TargetConfig } from '../config/schema';
import { ValidationError, normalizeIqn, parseControlsField, validateTargetControls } from '../config/validation';
import { TARGET_SETTING_DEFS } from '../config/target-settings';
import { ApiContext, Routes, commit, current, fail, field, ok, params, refuseIfDisruptive, requireTarget } from './context';
import { newTarget, recomputePortals, recountActiveLuns } from './model';

/** The target IQN of a path, normalised; 400 with rbd-target-api's text when invalid. */
export function pathIqn(raw: string): string {
  const iqn = normalizeIqn(raw);
  if (iqn === undefined) fail(400, `Invalid iqn ${raw} - WWN not valid as: iqn`);
  return iqn;
}

/** Controls from the `controls` form field, or undefined when absent. */
function controlsField(raw: string | undefined): Record<string, number | boolean | string> | undefined {
  if (raw === undefined) return undefined;
  try {
    const parsed = parseControlsField(raw);
    const reset = Object.keys(parsed).filter((k) => parsed[k] === '' || parsed[k] === null);
    const values = validateTargetControls(parsed) as Record<string, number | boolean | string>;
    for (const k of reset) values[k] = '';
    return values;
  } catch (e) {
    if (e instanceof ValidationError) fail(400, e.message);
    throw e;
  }
}

/** Store only values that differ from the default; '' resets (ceph-iscsi _set_control). */
function mergeControls(into: Record<string, number | boolean | string>, changes: Record<string, number | boolean | string>): void {
  for (const [k, v] of Object.entries(changes)) {
    const def = (TARGET_SETTING_DEFS as Record<string, { default: number | boolean | string }>)[k]?.default;
    if (v === '' || v === def) delete into[k];
    else into[k] = v;
  }
}

/** Remove a gateway's portal from a target (its IPs leave ip_list); the caller checks the rules. */
export function removePortal(c: GatewayConfig, t: TargetConfig, gw: string): void {
  const p = t.portals[gw];
  if (!p) return;
  delete t.portals[gw];
  t.ip_list = t.ip_list.filter((ip) => !p.portal_ip_addresses.includes(ip));
  recomputePortals(t);
  dropUnusedGateway(c, gw);
}

/**
 * A gateway that is no target's portal any more leaves `gateways` (as ceph-iscsi), unless it
 * registered its own listen addresses there (then it is a running gateway's identity).
 */
export function dropUnusedGateway(c: GatewayConfig, gw: string): void {
  const g = c.gateways[gw];
  if (!g) return;
  if (Object.values(c.targets).some((t) => t.portals[gw])) return;
  if (g.portal_ip_addresses !== undefined) return;
  if (Object.values(c.disks).some((d) => d.owner === gw)) return;
  delete c.gateways[gw];
}

export function deletionBlocker(t: TargetConfig): string | undefined {
  const clients = Object.keys(t.clients).length;
  const disks = Object.keys(t.disks).length;
  if (clients > 0 || disks > 0) return `Clients(${clients}) and disks(${disks}) must be removed before the gateways`;
  return undefined;
}

async function sessionsOf(ctx: ApiContext, target?: string, gateway?: string): Promise<number> {
  if (!ctx.running) return 0;
  const all = gateway === ctx.gatewayName ? ctx.running.localSessions() : await ctx.running.allSessions();
  return all.filter((s) => (target === undefined || s.target === target) && (gateway === undefined || s.gateway === gateway)).length;
}

export function registerTargets(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/targets', ['List targets defined in the configuration.'], async () => {
    return { targets: Object.keys((await current(ctx)).targets) };
  });

  r.add(['PUT', 'DELETE'], '/api/target/:target_iqn', [
    'Define (PUT) or delete (DELETE) an iSCSI target; PUT mode=reconfigure changes its controls',
    ':param target_iqn: (str) IQN of the target',
    ":param mode: (str) absent to create, 'reconfigure' to change controls",
    ':param controls: (JSON dict) target controls, e.g. {"cmdsn_depth": 64}; "" resets one',
  ], async (req, reply) => {
    const raw = params(req).target_iqn;
    const iqn = pathIqn(raw);
    if (req.method === 'PUT') {
      const mode = field(req, 'mode');
      if (mode !== undefined && mode !== 'reconfigure') fail(400, `Unexpected mode provided for ${iqn} - ${mode}`);
      const controls = controlsField(field(req, 'controls'));
      if (mode === undefined) {
        await commit(ctx, (c) => {
          if (c.targets[iqn]) return; // defining an existing target again changes nothing (as ceph-iscsi)
          const t = newTarget({});
          mergeControls(t.controls, controls ?? {});
          c.targets[iqn] = t;
        });
        return ok(reply, 'Target defined successfully');
      }
      await commit(ctx, (c) => {
        const t = c.targets[iqn];
        if (!t) fail(400, `Target: ${iqn} is not defined.`);
        mergeControls(t.controls, controls ?? {});
        // Validate the combination (first_burst_length <= max_burst_length ...).
        try {
          validateTargetControls(t.controls);
        } catch (e) {
          if (e instanceof ValidationError) fail(400, e.message);
          throw e;
        }
      });
      return ok(reply, 'Target reconfigured.');
    }
    const before = await current(ctx);
    requireTarget(before, iqn);
    await refuseIfDisruptive(ctx, { kind: 'target-delete', target: iqn });
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const blocker = deletionBlocker(t);
      if (blocker) fail(400, blocker);
      const gws = Object.keys(t.portals);
      delete c.targets[iqn];
      for (const gw of gws) dropUnusedGateway(c, gw);
      recountActiveLuns(c);
    });
    return ok(reply, 'Target deleted.');
  });

  // gwcli calls this on every gateway to tear its part of a target down (clearconfig): here it
  // removes that gateway's portal, and the target with the last one.
  r.add(['PUT', 'DELETE'], '/api/_target/:target_iqn', ['Remove this gateway from a target (internal)'], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    if (req.method === 'PUT') {
      // Controls are committed by the public route; every gateway applies them from the config.
      if (field(req, 'mode') !== 'reconfigure') fail(400, `Unexpected mode provided for ${iqn} - ${field(req, 'mode') ?? 'None'}`);
      return ok(reply, 'Target reconfigured successfully');
    }
    await refuseIfDisruptive(ctx, { kind: 'gateway-delete', target: iqn, gateway: ctx.gatewayName });
    await commit(ctx, (c) => {
      const t = c.targets[iqn];
      if (!t) return;
      const blocker = deletionBlocker(t);
      if (blocker) fail(400, blocker);
      removePortal(c, t, ctx.gatewayName);
      if (Object.keys(t.portals).length === 0) delete c.targets[iqn];
    });
    return ok(reply, 'Gateway removed successfully');
  });

  r.add(['GET'], '/api/targetinfo/:target_iqn', ['Returns the total number of active sessions for <target_iqn>'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    const c = await current(ctx);
    if (!c.targets[iqn]) fail(404, `Target ${iqn} does not exist`);
    return { num_sessions: await sessionsOf(ctx, iqn) };
  });

  r.add(['GET'], '/api/_targetinfo/:target_iqn', ['Sessions of <target_iqn> on this gateway (internal)'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    const c = await current(ctx);
    if (!c.targets[iqn]) fail(404, `Target ${iqn} does not exist`);
    return { num_sessions: await sessionsOf(ctx, iqn, ctx.gatewayName) };
  });

  r.add(['GET'], '/api/gatewayinfo', ['Returns the number of active sessions on this gateway'], async () => {
    const c = await current(ctx);
    if (!c.gateways[ctx.gatewayName]) fail(404, `Gateway ${ctx.gatewayName} does not exist in configuration`);
    return { num_sessions: await sessionsOf(ctx, undefined, ctx.gatewayName) };
  });
}
