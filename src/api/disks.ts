/**
 * Disks: register (create or attach) images, grow them, change their controls, delete or
 * detach them. Images are created and removed through the ImageProvider; the disk entry is
 * committed to the config, and every gateway's reconciler applies it. Multi-step operations
 * (image + commit) hold the config store's lock so that no other writer slips in between.
 */
import type { DiskConfig, GatewayConfig } from '../config/schema';
import { backstoreObjectName, diskId, timestamp } from '../config/schema';
import {
  COUNT_INVALID, DEFAULT_BACKSTORE, SIZE_INVALID, ValidationError, backstoreProblem, diskLimitProblem, imageNameProblem, parseControlsField,
  parseCount, parseSize, poolNameProblem, validateDiskControls, wwnProblem,
} from '../config/validation';
import { DISK_SETTING_SPECS } from '../scsi/disk-settings';
import { ImageError } from '../images/provider';
import { ACTIVE_ACTIVE_FEATURES, ImageBackstore, exportProblem } from '../images/disk-rules';
import { isActiveActive } from '../ha/active-active';
import { ApiContext, ApiError, Routes, commit, current, fail, field, getForm, imageFailure, ok, params, refuseIfDisruptive } from './context';
import { humanSize } from '../util/format';
import { newWwn, recountActiveLuns } from './model';
import { DiskStatusTracker } from '../ha/disk-status';

/** Disk ids in the path: "<pool>/<image>", and "<pool>/<image>@<snap>" for an exported snapshot. */
export function diskKey(pool: string, image: string): string {
  return `${pool}/${image}`;
}

function diskControls(raw: string | undefined): Record<string, number | ''> | undefined {
  if (raw === undefined) return undefined;
  try {
    const parsed = parseControlsField(raw);
    const out: Record<string, number | ''> = { ...validateDiskControls(parsed) };
    for (const [k, v] of Object.entries(parsed)) if (v === '' || v === null) out[k] = '';
    return out;
  } catch (e) {
    if (e instanceof ValidationError) fail(400, e.message);
    throw e;
  }
}

function mergeDiskControls(into: Record<string, number | string | boolean>, changes: Record<string, number | ''>): void {
  for (const [k, v] of Object.entries(changes)) {
    const def = (DISK_SETTING_SPECS as Record<string, { def: number }>)[k]?.def;
    if (v === '' || v === def) delete into[k];
    else into[k] = v;
  }
}

/** Why a disk cannot be deleted: clients it is allocated to, targets it is mapped to. */
export function diskInUse(c: GatewayConfig, id: string): string | undefined {
  const clients: string[] = [];
  const targets: string[] = [];
  for (const [iqn, t] of Object.entries(c.targets)) {
    if (t.disks[id]) targets.push(iqn);
    for (const [ci, cl] of Object.entries(t.clients)) if (cl.luns[id]) clients.push(ci);
  }
  if (clients.length) return `Unable to delete ${id}. Allocated to: ${clients.join(',')}`;
  if (targets.length) return `Unable to delete ${id}. Mapped to: ${targets.join(',')}`;
  return undefined;
}

function gatewaysDefined(c: GatewayConfig): number {
  return Object.keys(c.gateways).length;
}

function newDisk(c: GatewayConfig, ctx: ApiContext, pool: string, image: string, backstore: DiskConfig['backstore'], wwn: string, controls: Record<string, number | string | boolean>, snapshot?: string): DiskConfig {
  const now = timestamp();
  return {
    pool,
    image,
    ...(snapshot ? { snapshot } : {}),
    wwn,
    backstore,
    backstore_object_name: backstoreObjectName(c, pool, image, snapshot),
    controls,
    allocating_host: ctx.gatewayName,
    created: now,
    updated: now,
  };
}

/** Run `fn` holding the config store's lock (released even when fn throws). */
export async function withLock<T>(ctx: ApiContext, fn: (lock: import('../config/store').ConfigLock) => Promise<T>): Promise<T> {
  let lock;
  try {
    lock = await ctx.store.lock({ owner: `api of gateway ${ctx.gatewayName} (pid ${process.pid})` });
  } catch (e) {
    fail(503, `configuration busy, retry: ${(e as Error).message}`);
  }
  try {
    return await fn(lock);
  } finally {
    await lock.release().catch(() => undefined);
  }
}

const haTracker = new DiskStatusTracker();

export async function diskStatus(ctx: ApiContext, d: DiskConfig): Promise<Record<string, unknown>> {
  // ALUA as this gateway reports it (every gateway reports the same), per target mapping the disk.
  const alua = ctx.running?.aluaOf?.(diskId(d.pool, d.image, d.snapshot));
  return { ...(await lockStatus(ctx, d)), ...(alua && alua.length > 0 ? { alua } : {}) };
}

async function lockStatus(ctx: ApiContext, d: DiskConfig): Promise<Record<string, unknown>> {
  // Gateways running the HA manager publish the lock holder and counters (src/ha/disk-status.ts).
  if (ctx.running) {
    const id = d.snapshot ? undefined : diskKey(d.pool, d.image);
    const report = id ? haTracker.report(id, await ctx.running.gateways(), await ctx.running.lockOwner?.(id)) : undefined;
    if (report) return { ...report };
  }
  if (d.backstore !== 'user:rbd' && d.backstore !== 'rbd') return { state: 'Online', lock_owner: d.owner ?? '', gateways: {} };
  try {
    const lock = await ctx.images.lockState(d.pool, d.image);
    return { state: 'Online', lock_owner: lock.owner ? d.owner ?? lock.owner : '', gateways: {} };
  } catch (e) {
    if (e instanceof ImageError && e.kind === 'not-found') return { state: 'Degraded - image not found', lock_owner: '', gateways: {} };
    return { state: 'Unknown', lock_owner: '', gateways: {} };
  }
}

async function createDisks(ctx: ApiContext, req: import('fastify').FastifyRequest, pool: string, image: string): Promise<string> {
  const backstore = field(req, 'backstore') ?? DEFAULT_BACKSTORE;
  const bp = backstoreProblem(backstore);
  if (bp) fail(400, bp);
  const controls = diskControls(field(req, 'controls')) ?? {};
  const sizeText = field(req, 'size');
  const size = sizeText !== undefined && sizeText !== '' ? parseSize(sizeText) : undefined;
  if (sizeText !== undefined && sizeText !== '' && size === undefined) fail(400, SIZE_INVALID);
  const pp = poolNameProblem(pool);
  if (pp) fail(400, pp);
  const ip = imageNameProblem(image);
  if (ip) fail(400, ip);
  const countText = field(req, 'count') ?? '1';
  const count = parseCount(countText);
  if (count === undefined) fail(400, COUNT_INVALID);
  const wwn = field(req, 'wwn') || undefined;
  const createImage = field(req, 'create_image') !== 'false';
  const names = count === 1 ? [image] : Array.from({ length: count }, (_, i) => `${image}${i + 1}`);
  const ids = names.map((n) => diskKey(pool, n));

  const check = (c: GatewayConfig) => {
    if (ids.some((id) => c.disks[id])) fail(400, 'at least one rbd image(s) with that name/prefix is already defined');
    if (wwn !== undefined) {
      const wp = wwnProblem(wwn, count, c.disks);
      if (wp) fail(400, wp);
    }
    const lp = diskLimitProblem(Object.keys(c.disks).length, count);
    if (lp) fail(400, lp);
    if (gatewaysDefined(c) < ctx.settings.minimum_gateways) {
      fail(400, `disks can not be added until at least ${ctx.settings.minimum_gateways} gateways are defined`);
    }
  };
  check(await current(ctx));

  return withLock(ctx, async (lock) => {
    check(await current(ctx));
    // Images first (create, or grow an existing smaller one); undo what we created on failure.
    const created: string[] = [];
    const activeActive = isActiveActive({ backstore: backstore as ImageBackstore }, ctx.images.kind);
    try {
      for (const n of names) {
        const exists = await ctx.images.exists(pool, n);
        if (!exists) {
          if (!createImage) fail(400, `Image ${diskKey(pool, n)} does not exist`);
          if (size === undefined) fail(400, 'Size parameter is required when creating a new image');
          // rbd on Ceph is active/active: no exclusive-lock (librbd would move it on every write).
          await ctx.images.create(pool, n, size, activeActive ? { features: ACTIVE_ACTIVE_FEATURES } : undefined);
          created.push(n);
        } else if (size !== undefined) {
          const info = await ctx.images.info(pool, n);
          if (info.size < size) await ctx.images.resize(pool, n, size);
        }
        // An image made outside (rbd create/clone/import) must suit the backstore (§6.1).
        const problem = exportProblem(backstore as ImageBackstore, await ctx.images.info(pool, n), { activeActive });
        if (problem) fail(400, problem);
      }
      await ctx.store.update((c) => {
        check(c);
        for (const n of names) {
          c.disks[diskKey(pool, n)] = newDisk(c, ctx, pool, n, backstore as DiskConfig['backstore'], wwn ?? newWwn(), Object.fromEntries(Object.entries(controls).filter(([, v]) => v !== '')) as Record<string, number>);
        }
      }, { lock });
    } catch (e) {
      for (const n of created) await ctx.images.remove(pool, n).catch((err: unknown) => ctx.log.error({ err, image: diskKey(pool, n) }, 'could not remove an image created by a failed disk create'));
      if (e instanceof ApiError) throw e;
      imageFailure(e, 'LUN allocation failure');
    }
    return 'disk create/update successful';
  });
}

export function registerDisks(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/disks', ['Show the disks defined to the gateways', ":param config: (str) 'yes' to list the config of every disk"], async (req) => {
    const c = await current(ctx);
    const conf = field(req, 'config') ?? (await getForm(req)).get('config') ?? 'no';
    return { disks: conf.toLowerCase() === 'yes' ? c.disks : Object.keys(c.disks) };
  });

  r.add(['GET', 'PUT', 'DELETE'], '/api/disk/:pool/:image', [
    'Create (PUT mode=create), grow (mode=resize), reconfigure (mode=reconfigure), flatten (mode=flatten) or delete (DELETE) a disk',
    ':param mode: (str) create, resize, reconfigure or flatten',
    ':param size: (str) size with unit M, G or T (create, resize)',
    ':param count: (str) create 1-10 disks <image>1..<image>N',
    ":param create_image: (str) 'false': only attach an existing image",
    ':param backstore: (str) user:rbd (default) or rbd',
    ':param wwn: (str) unit serial number (default: a new UUID)',
    ':param controls: (JSON dict) disk controls, e.g. {"emulate_pr": 0}',
    ":param preserve_image: (str) DELETE: 'true' keeps the image (detach), 'false' deletes it",
  ], async (req, reply) => {
    const { pool, image } = params(req);
    const id = diskKey(pool, image);
    if (req.method === 'GET') {
      const d = (await current(ctx)).disks[id];
      if (!d) fail(404, `rbd image ${id} not found`);
      // size (bytes) beyond ceph-iscsi: gwcli shows it in the tree without reading the image itself.
      const size = d.size ?? (await ctx.images.info(d.pool, d.image).then((i) => i.size, () => undefined));
      // used (bytes allocated in the image, rbd du's USED) beyond ceph-iscsi too; left out when
      // the image cannot be read (the status says why).
      // A snapshot disk has no head of its own: no figure.
      const used = d.snapshot ? undefined : await ctx.images.usage(d.pool, d.image).then((u) => u, () => undefined);
      return { ...d, ...(size !== undefined ? { size } : {}), ...(used !== undefined ? { used } : {}), status: await diskStatus(ctx, d) };
    }
    if (req.method === 'PUT') {
      const mode = field(req, 'mode');
      if (mode === 'create') return ok(reply, await createDisks(ctx, req, pool, image));
      if (mode !== 'resize' && mode !== 'reconfigure' && mode !== 'flatten') fail(400, `disk operation mode '${mode ?? 'None'}' is invalid`);
      const c0 = await current(ctx);
      const d0 = c0.disks[id];
      if (!d0) fail(400, `rbd ${id} is not defined to the configuration`);
      if (mode === 'resize') {
        const sizeText = field(req, 'size');
        if (sizeText === undefined) fail(400, 'resize request must contain the following variables: pool,image,size');
        const size = parseSize(sizeText);
        if (size === undefined) fail(400, SIZE_INVALID);
        if (d0.snapshot) fail(400, `${id}@${d0.snapshot} is a snapshot: it cannot be resized`);
        let cur: number;
        try {
          cur = (await ctx.images.info(d0.pool, d0.image)).size;
        } catch (e) {
          imageFailure(e, `Image ${id} not found`);
        }
        if (size <= cur) fail(400, `resize value must be larger than the current size (${humanSize(cur)}/${cur})`);
        try {
          await ctx.images.resize(d0.pool, d0.image, size);
        } catch (e) {
          imageFailure(e, `resize of ${id} failed`);
        }
        // The new size reaches the open LUNs through the image; the commit tells every reconciler.
        await commit(ctx, (c) => {
          if (c.disks[id]) c.disks[id].updated = timestamp();
        });
        return ok(reply, 'disk create/update successful');
      }
      if (mode === 'flatten') {
        try {
          await ctx.images.flatten(d0.pool, d0.image);
        } catch (e) {
          imageFailure(e, `flatten of ${id} failed`);
        }
        return ok(reply, `disk ${id} flattened`);
      }
      const raw = field(req, 'controls');
      if (raw === undefined) fail(400, 'reconfigure request must contain the following variables: pool,image,controls');
      const controls = diskControls(raw) ?? {};
      await refuseIfDisruptive(ctx, { kind: 'disk-reconfigure', disk: id });
      await commit(ctx, (c) => {
        const d = c.disks[id];
        if (!d) fail(400, `rbd ${id} is not defined to the configuration`);
        mergeDiskControls(d.controls, controls);
        try {
          validateDiskControls(d.controls);
        } catch (e) {
          if (e instanceof ValidationError) fail(400, e.message);
          throw e;
        }
        d.updated = timestamp();
      });
      return ok(reply, 'lun reconfigured: successful');
    }
    // DELETE
    const c0 = await current(ctx);
    const d0 = c0.disks[id];
    if (!d0) fail(400, `rbd ${id} is not defined to the configuration`);
    const inUse = diskInUse(c0, id);
    if (inUse) fail(400, inUse);
    const preserveText = field(req, 'preserve_image');
    if (preserveText === undefined || !['true', 'false'].includes(preserveText.toLowerCase())) {
      fail(400, "preserve_image is required: 'true' keeps the image (detach), 'false' deletes it");
    }
    const preserve = preserveText.toLowerCase() === 'true' || d0.snapshot !== undefined || (d0.backstore !== 'user:rbd' && d0.backstore !== 'rbd');
    await refuseIfDisruptive(ctx, { kind: 'disk-delete', disk: id });
    await withLock(ctx, async (lock) => {
      const c = await current(ctx);
      if (!c.disks[id]) fail(400, `rbd ${id} is not defined to the configuration`);
      const again = diskInUse(c, id);
      if (again) fail(400, again);
      if (!preserve) {
        // Another disk may be a snapshot export of this image: the image must stay.
        const export_ = Object.entries(c.disks).find(([other, d]) => other !== id && d.pool === d0.pool && d.image === d0.image);
        if (export_) fail(400, `Unable to delete the underlying rbd image ${id} - disk ${export_[0]} uses it`);
        try {
          if ((await ctx.images.listSnapshots(d0.pool, d0.image)).length > 0) fail(400, `Unable to delete the underlying rbd image ${id} - Image has snapshots`);
          await ctx.images.remove(d0.pool, d0.image);
        } catch (e) {
          if (e instanceof ApiError) throw e;
          if (!(e instanceof ImageError && e.kind === 'not-found')) imageFailure(e, `Unable to delete the underlying rbd image ${id}`);
        }
      }
      await ctx.store.update((cc) => {
        delete cc.disks[id];
        recountActiveLuns(cc);
      }, { lock });
    });
    return ok(reply, 'disk map deletion successful');
  });

  r.add(['GET'], '/api/_disk/:pool/:image', ['Disk config (internal)'], async (req) => {
    const { pool, image } = params(req);
    const d = (await current(ctx)).disks[diskKey(pool, image)];
    if (!d) fail(404, `rbd image ${diskKey(pool, image)} not found`);
    return d;
  });
}
