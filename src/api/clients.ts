/**
 * Clients (initiator ACLs) of a target: create, delete, and where they are logged in
 * (clientinfo, from the running gateways' sessions). A logged-in client is not deleted.
 */
import { timestamp } from '../config/schema';
import { normalizeIqn } from '../config/validation';
import { ApiContext, Routes, commit, current, fail, ok, params, refuseIfDisruptive, requireTarget } from './context';
import { newClient } from './model';
import { pathIqn } from './targets';
import type { SessionInfo } from '../daemon/running-state';

export function clientIqn(raw: string): string {
  const iqn = normalizeIqn(raw);
  if (iqn === undefined) fail(400, 'Invalid IQN name for iSCSI');
  return iqn;
}

export function registerClients(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/clients/:target_iqn', ['List the clients of a target'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    return { clients: Object.keys(requireTarget(await current(ctx), iqn).clients) };
  });

  r.add(['PUT', 'DELETE'], '/api/client/:target_iqn/:client_iqn', [
    'Define (PUT) or delete (DELETE) a client (initiator) of a target',
    ':param target_iqn: (str) IQN of the target',
    ':param client_iqn: (str) IQN of the initiator',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const client = clientIqn(params(req).client_iqn);
    const t0 = requireTarget(await current(ctx), iqn);
    if (req.method === 'PUT') {
      await commit(ctx, (c) => {
        const t = requireTarget(c, iqn);
        if (t.clients[client]) fail(400, `A client with the name '${client}' is already defined`);
        if (t.auth.username) fail(400, 'Cannot create client because target CHAP authentication is enabled');
        const gws = Object.keys(t.portals).length;
        if (gws < ctx.settings.minimum_gateways) {
          fail(400, `Clients can not be defined until a HA configuration has been defined (>${ctx.settings.minimum_gateways} gateways)`);
        }
        t.clients[client] = newClient();
        t.updated = timestamp();
      });
      return ok(reply, 'client create/update successful');
    }
    const cl = t0.clients[client];
    if (!cl) fail(400, `${client} is not defined yet - nothing to delete`);
    if (cl.group_name) fail(400, `Unable to delete '${client}' - it belongs to group ${cl.group_name}`);
    await refuseIfDisruptive(ctx, { kind: 'client-delete', target: iqn, client });
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const now = t.clients[client];
      if (!now) fail(400, `${client} is not defined yet - nothing to delete`);
      if (now.group_name) fail(400, `Unable to delete '${client}' - it belongs to group ${now.group_name}`);
      delete t.clients[client];
      t.updated = timestamp();
    });
    return ok(reply, 'client delete successful');
  });

  r.add(['GET'], '/api/_client/:target_iqn/:client_iqn', ['Client config (internal)'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    const cl = requireTarget(await current(ctx), iqn).clients[clientIqn(params(req).client_iqn)];
    if (!cl) fail(404, 'Client does not exist');
    return cl;
  });

  const info = async (target: string, client: string, onlyHere: boolean) => {
    const t = (await current(ctx)).targets[target];
    if (!t) fail(404, `Target ${target} does not exist`);
    if (!t.clients[client]) fail(404, `Client ${client} does not exist`);
    const sessions = !ctx.running ? [] : onlyHere ? ctx.running.localSessions() : await ctx.running.allSessions();
    return sessions.filter((s) => s.target === target && s.initiator === client);
  };

  r.add(['GET'], '/api/clientinfo/:target_iqn/:client_iqn', ['Returns client alias, ip_address and state for each connected portal'], async (req) => {
    return clientInfo(await info(pathIqn(params(req).target_iqn), clientIqn(params(req).client_iqn), false));
  });

  r.add(['GET'], '/api/_clientinfo/:target_iqn/:client_iqn', ['Client session on this gateway (internal)'], async (req) => {
    const sessions = await info(pathIqn(params(req).target_iqn), clientIqn(params(req).client_iqn), true);
    return { alias: sessions.find((s) => s.alias)?.alias ?? '', state: sessions.length ? 'LOGGED_IN' : '', ip_address: addresses(sessions) };
  });
}

/** Initiator addresses of the sessions, each once, in session order (as ceph-iscsi lists them). */
function addresses(sessions: readonly SessionInfo[]): string[] {
  const out: string[] = [];
  for (const s of sessions) if (s.ip_address && !out.includes(s.ip_address)) out.push(s.ip_address);
  return out;
}

/** ceph-iscsi's clientinfo: {alias, state: {LOGGED_IN: [gateway…]}, ip_address: [initiator IP…]}. */
export function clientInfo(sessions: readonly SessionInfo[]): { alias: string; state: Record<string, string[]>; ip_address: string[] } {
  const state: Record<string, string[]> = {};
  for (const s of sessions) {
    const list = (state.LOGGED_IN ??= []);
    if (!list.includes(s.gateway)) list.push(s.gateway);
  }
  return { alias: sessions.find((s) => s.alias)?.alias ?? '', state, ip_address: addresses(sessions) };
}
