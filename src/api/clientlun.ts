/**
 * LUN masking of a client: which of the target's disks an initiator sees, and under which LUN
 * id (the target's LUN id unless the client already uses it, §1.7).
 */
import { timestamp } from '../config/schema';
import { ApiContext, Routes, commit, current, fail, field, ok, params, requireTarget } from './context';
import { clientIqn } from './clients';
import { clientLunId } from './model';
import { pathIqn } from './targets';

export function registerClientLun(r: Routes, ctx: ApiContext): void {
  r.add(['PUT', 'DELETE'], '/api/clientlun/:target_iqn/:client_iqn', [
    'Add (PUT) or remove (DELETE) a disk to/from a client',
    ':param disk: (str) disk id <pool>/<image>, mapped to the target',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const client = clientIqn(params(req).client_iqn);
    const disk = field(req, 'disk');
    if (!disk) fail(400, 'disk is required (<pool>/<image>)');
    const t0 = requireTarget(await current(ctx), iqn);
    if (!t0.clients[client]) fail(404, `Client '${client}' does not exist`);
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const cl = t.clients[client];
      if (!cl) fail(404, `Client '${client}' does not exist`);
      if (cl.group_name) fail(400, `Unable to manage disks for '${client}' - it belongs to group ${cl.group_name}`);
      if (req.method === 'PUT') {
        if (cl.luns[disk]) return;
        if (!c.disks[disk]) fail(400, 'Invalid image list - it defines new disks that do not current exist');
        if (!t.disks[disk]) fail(400, `Disk ${disk} is not mapped to target ${iqn} - map it to the target first`);
        const id = clientLunId(t, cl, disk);
        if (id === undefined) fail(400, `client ${client} has no free LUN id (0-255)`);
        cl.luns[disk] = { lun_id: id };
      } else {
        if (!cl.luns[disk]) fail(400, 'disk not mapped to client');
        delete cl.luns[disk];
      }
      t.updated = timestamp();
    });
    return ok(reply, 'client masking update successful');
  });

  r.add(['GET'], '/api/_clientlun/:target_iqn/:client_iqn', ['LUNs of a client (internal; gwcli reads it)'], async (req) => {
    const iqn = pathIqn(params(req).target_iqn);
    const cl = requireTarget(await current(ctx), iqn).clients[clientIqn(params(req).client_iqn)];
    if (!cl) fail(404, 'Client does not exist');
    return { message: cl.luns };
  });
}
