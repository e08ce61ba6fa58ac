/**
 * Snapshots of a disk's image: create, rollback and delete as rbd-target-api, and beyond it:
 * list, protect, unprotect, clone (registered as a new disk), and export a snapshot read-only
 * as a disk of its own ("pool/image@snap") that can be mapped like any other.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { timestamp } from '../config/schema';
import { imageNameProblem, parseDiskId, poolNameProblem, snapshotNameProblem, wwnProblem } from '../config/validation';
import { ImageError } from '../images/provider';
import { ApiContext, ApiError, Routes, commit, current, fail, field, imageFailure, ok, params, refuseIfDisruptive } from './context';
import { newWwn } from './model';
import { diskKey, withLock } from './disks';
import { backstoreObjectName } from '../config/schema';

function snapFailure(e: unknown, name: string, what: string): never {
  if (e instanceof ImageError) {
    if (e.kind === 'exists') fail(400, `snapshot ${name} already exists`);
    if (e.kind === 'not-found') fail(404, `snapshot ${name} does not exist`);
  }
  imageFailure(e, `failed to ${what} snapshot`);
}

export function registerDiskSnap(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/disksnap/:pool/:image', ['List the snapshots of a disk'], async (req) => {
    const { pool, image } = params(req);
    const id = diskKey(pool, image);
    const d = (await current(ctx)).disks[id];
    if (!d || d.snapshot) fail(404, `rbd image ${id} not found`);
    try {
      return { snapshots: await ctx.images.listSnapshots(pool, image) };
    } catch (e) {
      imageFailure(e, `rbd image ${id}`);
    }
  });

  r.add(['PUT', 'DELETE'], '/api/disksnap/:pool/:image/:name', [
    'Create, roll back to, protect, unprotect, clone, export (PUT) or delete (DELETE) a snapshot of a disk',
    ':param mode: (str) create, rollback, protect, unprotect, clone or export',
    ':param dest: (str) clone: the new disk <pool>/<image> (registered like disk create)',
    ':param wwn: (str) clone, export: unit serial number of the new disk (default: a new UUID)',
  ], async (req: FastifyRequest, reply: FastifyReply) => {
    const { pool, image, name } = params(req);
    if (snapshotNameProblem(name)) fail(400, 'snapshot name is invalid');
    const id = diskKey(pool, image);
    const c0 = await current(ctx);
    const d0 = c0.disks[id];
    if (!d0 || d0.snapshot) fail(404, `rbd image ${id} not found`);
    if (req.method === 'DELETE') {
      const exported = Object.entries(c0.disks).find(([, d]) => d.pool === pool && d.image === image && d.snapshot === name);
      if (exported) fail(400, `snapshot ${name} is exported as disk ${exported[0]} - delete that disk first`);
      try {
        await ctx.images.removeSnapshot(pool, image, name);
      } catch (e) {
        snapFailure(e, name, 'delete');
      }
      return ok(reply, 'disk snapshot snapshot deleted');
    }
    const mode = field(req, 'mode');
    switch (mode) {
      case 'create':
        try {
          await ctx.images.createSnapshot(pool, image, name);
        } catch (e) {
          snapFailure(e, name, 'create');
        }
        return ok(reply, 'disk snapshot snapshot created');
      case 'rollback':
        await refuseIfDisruptive(ctx, { kind: 'snapshot-rollback', disk: id, snapshot: name });
        try {
          await ctx.images.rollbackSnapshot(pool, image, name);
        } catch (e) {
          snapFailure(e, name, 'rollback');
        }
        // Every gateway re-reads the image (its content changed under the LUN).
        await commit(ctx, (c) => {
          if (c.disks[id]) c.disks[id].updated = timestamp();
        });
        return ok(reply, 'disk snapshot rolled back to snapshot');
      case 'protect':
      case 'unprotect':
        try {
          if (mode === 'protect') await ctx.images.protectSnapshot(pool, image, name);
          else await ctx.images.unprotectSnapshot(pool, image, name);
        } catch (e) {
          snapFailure(e, name, mode);
        }
        return ok(reply, `disk snapshot ${mode}ed`);
      case 'clone': {
        const dest = field(req, 'dest');
        const parsed = dest ? parseDiskId(dest) : undefined;
        if (!parsed) fail(400, 'dest is required: the new disk as <pool>/<image>');
        const problem = poolNameProblem(parsed.pool) ?? imageNameProblem(parsed.image);
        if (problem) fail(400, problem);
        const destId = diskKey(parsed.pool, parsed.image);
        const wwn = field(req, 'wwn') || newWwn();
        await withLock(ctx, async (lock) => {
          const c = await current(ctx);
          if (c.disks[destId]) fail(400, `at least one rbd image(s) with that name/prefix is already defined`);
          const wp = wwnProblem(wwn, 1, c.disks);
          if (wp) fail(400, wp);
          try {
            await ctx.images.clone(pool, image, name, parsed.pool, parsed.image);
          } catch (e) {
            snapFailure(e, name, 'clone');
          }
          try {
            await ctx.store.update((cc) => {
              if (cc.disks[destId]) fail(400, 'at least one rbd image(s) with that name/prefix is already defined');
              const now = timestamp();
              cc.disks[destId] = {
                pool: parsed.pool, image: parsed.image, wwn, backstore: d0.backstore,
                backstore_object_name: backstoreObjectName(cc, parsed.pool, parsed.image),
                controls: {}, allocating_host: ctx.gatewayName, created: now, updated: now,
              };
            }, { lock });
          } catch (e) {
            await ctx.images.remove(parsed.pool, parsed.image).catch(() => undefined);
            if (e instanceof ApiError) throw e;
            throw e;
          }
        });
        return ok(reply, `disk snapshot cloned to ${destId}`);
      }
      case 'export': {
        const exportId = `${id}@${name}`;
        const wwn = field(req, 'wwn') || newWwn();
        try {
          if (!(await ctx.images.listSnapshots(pool, image)).some((s) => s.name === name)) fail(404, `snapshot ${name} does not exist`);
        } catch (e) {
          if (e instanceof ApiError) throw e;
          snapFailure(e, name, 'export');
        }
        await commit(ctx, (c) => {
          if (c.disks[exportId]) fail(400, `snapshot ${name} is already exported as disk ${exportId}`);
          const wp = wwnProblem(wwn, 1, c.disks);
          if (wp) fail(400, wp);
          const now = timestamp();
          c.disks[exportId] = {
            pool, image, snapshot: name, wwn, backstore: d0.backstore,
            backstore_object_name: backstoreObjectName(c, pool, image, name),
            controls: {}, allocating_host: ctx.gatewayName, created: now, updated: now,
          };
        });
        return ok(reply, `disk snapshot exported read-only as ${exportId}`);
      }
      default:
        fail(400, 'mode is invalid');
    }
  });
}
