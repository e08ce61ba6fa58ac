/**
 * GET /api/pools (beyond ceph-iscsi, whose gwcli reads pools through librados): the image
 * provider's pools with their image count and provisioned (logical) size, for gwcli's /cluster.
 */
import { ApiContext, Routes } from './context';

export function registerPools(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/pools', ['List the pools of the image store: images and provisioned bytes'], async () => {
    const pools: Array<{ name: string; images: number; provisioned_bytes: number }> = [];
    for (const name of (await ctx.images.listPools()).sort()) {
      const images = await ctx.images.list(name);
      let provisioned = 0;
      for (const image of images) {
        // An image removed between list and info is simply not counted.
        provisioned += await ctx.images.info(name, image).then((i) => i.size, () => 0);
      }
      pools.push({ name, images: images.length, provisioned_bytes: provisioned });
    }
    return { backend: ctx.images.kind, pools };
  });
}
