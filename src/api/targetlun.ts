/**
 * LUN mapping of a target: map a registered disk (owner balanced over the target's gateways
 * as ceph-iscsi's get_owner), unmap it. Every gateway's reconciler adds or removes the LUN;
 * only the owner opens the image read-write.
 */
import { timestamp } from '../config/schema';
import { ApiContext, Routes, commit, current, fail, field, ok, params, refuseIfDisruptive, requireTarget } from './context';
import { assignOwner, releaseOwnerIfUnmapped } from '../ha/ownership';
import { freeLunId } from './model';
import { pathIqn } from './targets';

export const MAX_LUN_ID = 16383;

export function registerTargetLun(r: Routes, ctx: ApiContext): void {
  r.add(['PUT', 'DELETE'], '/api/targetlun/:target_iqn', [
    'Map (PUT) or unmap (DELETE) a disk to a target',
    ':param disk: (str) disk id <pool>/<image> (or <pool>/<image>@<snapshot> for an exported snapshot)',
    ':param lun_id: (int) PUT: the LUN id (default: the lowest free one)',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const c0 = await current(ctx);
    const t0 = requireTarget(c0, iqn);
    const portals = Object.keys(t0.portals).length;
    if (portals < ctx.settings.minimum_gateways) {
      fail(400, `at least ${ctx.settings.minimum_gateways} gateways must exist before disk mapping operations are permitted`);
    }
    const disk = field(req, 'disk');
    if (!disk) fail(400, 'disk is required (<pool>/<image>)');
    if (req.method === 'PUT') {
      const lunText = field(req, 'lun_id');
      let lunId: number | undefined;
      if (lunText !== undefined && lunText !== '') {
        if (!/^\d+$/.test(lunText)) fail(400, 'Lun id must be a number');
        lunId = Number(lunText);
        if (lunId > MAX_LUN_ID) fail(400, `Lun id ${lunId} is out of range (0-${MAX_LUN_ID})`);
      }
      const d0 = c0.disks[disk];
      if (!d0) fail(400, `Disk ${disk} is not defined in the configuration`);
      if ((d0.backstore === 'user:rbd' || d0.backstore === 'rbd') && !(await ctx.images.exists(d0.pool, d0.image))) fail(400, `Image ${disk} not found`);
      await commit(ctx, (c) => {
        const t = requireTarget(c, iqn);
        const d = c.disks[disk];
        if (!d) fail(400, `Disk ${disk} is not defined in the configuration`);
        for (const [other, ot] of Object.entries(c.targets)) {
          if (ot.disks[disk]) fail(400, `Disk ${disk} cannot be used because it is already mapped on target ${other}`);
        }
        const used = Object.values(t.disks).map((l) => l.lun_id);
        if (lunId !== undefined && used.includes(lunId)) fail(400, `Lun id ${lunId} already in use`);
        const id = lunId ?? freeLunId(used, MAX_LUN_ID + 1);
        if (id === undefined) fail(400, `no free LUN id on target ${iqn}`);
        t.disks[disk] = { lun_id: id };
        assignOwner(c, disk, iqn);
        d.updated = timestamp();
        t.updated = timestamp();
      });
      return ok(reply, 'Target LUN mapping updated successfully');
    }
    if (!c0.disks[disk]) fail(400, `Disk ${disk} is not defined in the configuration`);
    if (!t0.disks[disk]) fail(400, `Disk ${disk} is not defined in target ${iqn}`);
    await refuseIfDisruptive(ctx, { kind: 'disk-delete', disk, target: iqn });
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      if (!t.disks[disk]) fail(400, `Disk ${disk} is not defined in target ${iqn}`);
      for (const [g, group] of Object.entries(t.groups)) if (group.disks[disk]) fail(400, `Disk ${disk} belongs to group ${g}`);
      const clients = Object.entries(t.clients).filter(([, cl]) => cl.luns[disk]).map(([ci]) => ci);
      if (clients.length) fail(400, `Disk ${disk} is mapped to client(s) ${clients.join(',')} - remove it from them first`);
      delete t.disks[disk];
      releaseOwnerIfUnmapped(c, disk);
      const d = c.disks[disk];
      if (d) d.updated = timestamp();
      t.updated = timestamp();
    });
    return ok(reply, 'Target LUN mapping updated successfully');
  });
}
