/**
 * Host groups: a set of clients that see the same disks under the same LUN ids (what VMware
 * and RHV clusters need). Rules and messages of ceph-iscsi's Group.apply (§2.2).
 */
import type { GatewayConfig, TargetConfig } from '../config/schema';
import { timestamp } from '../config/schema';
import { hostGroupNameProblem, normalizeIqn } from '../config/validation';
import { ApiContext, Routes, commit, current, fail, field, listField, ok, params, requireTarget } from './context';
import { freeLunId } from './model';
import { pathIqn } from './targets';

/** Apply the full member and disk lists of a group to a target (validates first). */
function applyGroup(c: GatewayConfig, t: TargetConfig, name: string, members: string[], disks: string[]): void {
  if (new Set(members).size !== members.length) fail(400, 'Member must contain unique clients - no duplication');
  const old = t.groups[name];
  for (const m of members) {
    const cl = t.clients[m];
    if (!cl) fail(400, `client '${m}' doesn't exist`);
    if (cl.group_name && cl.group_name !== name) fail(400, `Client already assigned to ${cl.group_name} - a client can only belong to one host group`);
    if (!old?.members.includes(m) && Object.keys(cl.luns).length > 0) {
      fail(400, `Client '${m}' already has luns. Only clients without prior lun maps can be added to a group`);
    }
  }
  for (const d of disks) {
    if (!c.disks[d] || !t.disks[d]) fail(400, `disk '${d}' doesn't exist`);
  }
  // LUN ids: the group's existing ids, else the target's LUN id, else the first free 0-255.
  const lunMap: Record<string, { lun_id: number }> = {};
  const used = new Set<number>();
  for (const d of disks) {
    const keep = old?.disks[d]?.lun_id;
    if (keep !== undefined) {
      lunMap[d] = { lun_id: keep };
      used.add(keep);
    }
  }
  for (const d of disks) {
    if (lunMap[d]) continue;
    const preferred = t.disks[d].lun_id;
    const id = !used.has(preferred) && preferred < 256 ? preferred : freeLunId(used);
    if (id === undefined) fail(400, 'Group request failed validation');
    lunMap[d] = { lun_id: id };
    used.add(id);
  }
  // Members that left lose the group's LUNs.
  for (const m of old?.members ?? []) {
    if (members.includes(m)) continue;
    const cl = t.clients[m];
    if (cl) {
      cl.group_name = '';
      cl.luns = {};
    }
  }
  for (const m of members) {
    t.clients[m].group_name = name;
    t.clients[m].luns = structuredClone(lunMap);
  }
  const now = timestamp();
  t.groups[name] = { members, disks: lunMap, ...(old?.created ? { created: old.created } : { created: now }), updated: now };
  t.updated = now;
}

export function registerHostGroups(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/hostgroups/:target_iqn', ['Return the host group names of a target'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    return { groups: Object.keys(requireTarget(await current(ctx), iqn).groups) };
  });

  r.add(['GET', 'PUT', 'DELETE'], '/api/hostgroup/:target_iqn/:group_name', [
    'Show (GET), create or change (PUT) or delete (DELETE) a host group',
    ':param members: (str) comma-separated client IQNs to add or remove',
    ':param disks: (str) comma-separated disk ids to add or remove',
    ":param action: (str) 'add' (default) or 'remove'",
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const name = params(req).group_name;
    const t0 = requireTarget(await current(ctx), iqn);
    if (req.method === 'GET') {
      const g = t0.groups[name];
      if (!g) fail(404, 'Group name does not exist');
      return { members: g.members, disks: g.disks };
    }
    if (req.method === 'DELETE') {
      if (!t0.groups[name]) fail(404, `Group name '${name}' not found`);
      await commit(ctx, (c) => {
        const t = requireTarget(c, iqn);
        const g = t.groups[name];
        if (!g) fail(404, `Group name '${name}' not found`);
        // Members keep their LUN maps (as ceph-iscsi): they become ordinary clients.
        for (const m of g.members) if (t.clients[m]) t.clients[m].group_name = '';
        delete t.groups[name];
        t.updated = timestamp();
      });
      return ok(reply, `Group definition '${name}' deleted`);
    }
    const action = (field(req, 'action') ?? 'add').toLowerCase();
    if (action !== 'add' && action !== 'remove') fail(405, 'Invalid hostgroup action specified');
    const gp = hostGroupNameProblem(name);
    if (gp) fail(400, gp);
    const changedMembers = listField(req, 'members').map((m) => normalizeIqn(m) ?? m);
    const changedDisks = listField(req, 'disks');
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const g = t.groups[name];
      const members = [...(g?.members ?? [])];
      const disks = Object.keys(g?.disks ?? {});
      if (action === 'add') {
        if (new Set(changedMembers).size !== changedMembers.length) fail(400, 'Member must contain unique clients - no duplication');
        for (const m of changedMembers) if (!members.includes(m)) members.push(m);
        for (const d of changedDisks) if (!disks.includes(d)) disks.push(d);
        applyGroup(c, t, name, members, disks);
      } else {
        if (!g) fail(404, 'Group name does not exist');
        for (const d of changedDisks) if (!disks.includes(d)) fail(400, `disk '${d}' is not in the group`);
        for (const m of changedMembers) if (!members.includes(m)) fail(400, `client '${m}' doesn't exist`);
        applyGroup(c, t, name, members.filter((m) => !changedMembers.includes(m)), disks.filter((d) => !changedDisks.includes(d)));
      }
    });
    return ok(reply, 'hostgroup create/update successful');
  });
}
