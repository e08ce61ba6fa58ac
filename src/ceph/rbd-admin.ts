/**
 * RBD image administration by name: create, remove, list, rename, clone, snapshot children.
 */
import type { CephCluster } from './cluster';
import type { NativeChildInfo, NativeCreateOptions, NativeImageSpec, NativeIoCtx } from './binding';
import { ceph } from './errors';
import { featureMask } from './features';
import { RbdImage } from './rbd-image';

export { RBD_FEATURES, RBD_FLAG_FAST_DIFF_INVALID, RBD_FLAG_OBJECT_MAP_INVALID, featureMask, featureNames } from './features';

export interface CreateImageOptions {
  /** Feature names; absent: the cluster's rbd_default_features. */
  readonly features?: readonly string[];
  /** Object size in bytes, a power of two from 4 KiB to 32 MiB (default 4 MiB). */
  readonly objectSize?: number;
  readonly stripeUnit?: number;
  readonly stripeCount?: number;
  readonly dataPool?: string;
}

function nativeOptions(o: CreateImageOptions): NativeCreateOptions {
  let order: number | undefined;
  if (o.objectSize !== undefined) {
    order = Math.log2(o.objectSize);
    if (!Number.isInteger(order) || order < 12 || order > 25) throw new RangeError(`object size ${o.objectSize} is not a power of two from 4 KiB to 32 MiB`);
  }
  return {
    ...(o.features !== undefined ? { features: featureMask(o.features) } : {}),
    ...(order !== undefined ? { order } : {}),
    ...(o.stripeUnit !== undefined ? { stripeUnit: o.stripeUnit } : {}),
    ...(o.stripeCount !== undefined ? { stripeCount: o.stripeCount } : {}),
    ...(o.dataPool !== undefined ? { dataPool: o.dataPool } : {}),
  };
}

/** Image administration in the pools of one cluster (pool contexts opened per call). */
export class RbdAdmin {
  constructor(readonly cluster: CephCluster) {}

  private async withIoCtx<T>(pool: string, f: (io: NativeIoCtx) => Promise<T>): Promise<T> {
    const io = await this.cluster.openIoCtx(pool);
    try {
      return await f(io);
    } finally {
      io.close();
    }
  }

  create(pool: string, image: string, size: number, options: CreateImageOptions = {}): Promise<void> {
    const opts = nativeOptions(options);
    return this.withIoCtx(pool, (io) => ceph(() => this.cluster.addon.rbdCreate(io, image, size, opts)));
  }

  /** Remove an image (EBUSY while open elsewhere, ENOTEMPTY with snapshots). */
  remove(pool: string, image: string): Promise<void> {
    return this.withIoCtx(pool, (io) => ceph(() => this.cluster.addon.rbdRemove(io, image)));
  }

  list(pool: string): Promise<NativeImageSpec[]> {
    return this.withIoCtx(pool, (io) => ceph(() => this.cluster.addon.rbdList(io)));
  }

  rename(pool: string, from: string, to: string): Promise<void> {
    return this.withIoCtx(pool, (io) => ceph(() => this.cluster.addon.rbdRename(io, from, to)));
  }

  /** Clone pool/image@snapshot to childPool/child (v2: the snapshot need not be protected). */
  async clone(pool: string, image: string, snapshot: string, childPool: string, child: string, options: CreateImageOptions = {}): Promise<void> {
    const opts = nativeOptions(options);
    const pio = await this.cluster.openIoCtx(pool);
    try {
      const cio = childPool === pool ? pio : await this.cluster.openIoCtx(childPool);
      try {
        await ceph(() => this.cluster.addon.rbdClone(pio, image, snapshot, cio, child, opts));
      } finally {
        if (cio !== pio) cio.close();
      }
    } finally {
      pio.close();
    }
  }

  /** Children (clones) of pool/image@snapshot. */
  async children(pool: string, image: string, snapshot: string): Promise<NativeChildInfo[]> {
    const img = await RbdImage.open(this.cluster, pool, image, { snapshot });
    try {
      return await img.listChildren();
    } finally {
      await img.close();
    }
  }

  open(pool: string, image: string, options: { readonly snapshot?: string; readonly readOnly?: boolean } = {}): Promise<RbdImage> {
    return RbdImage.open(this.cluster, pool, image, options);
  }
}
