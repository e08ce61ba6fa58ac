/**
 * First start on an empty data dir, bound only to loopback: a ready-to-use demo target so
 * `iscsi-ls iscsi://127.0.0.1/` shows something. Never created when a portal is reachable
 * from the network (an open, ACL-less target must not appear on a LAN by surprise).
 */
import { randomUUID } from 'node:crypto';
import { GatewayConfig, emptyAuth, emptyConfig, timestamp } from '../config/schema';
import { ImageStore } from '../store';

export const DEMO_TARGET = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:demo';
export const DEMO_POOL = 'rbd';
export const DEMO_IMAGE = 'demo';
export const DEMO_DISK = `${DEMO_POOL}/${DEMO_IMAGE}`;
export const DEMO_SIZE = 1024 * 1024 * 1024;

/**
 * The demo disk is a thin image: thin provisioning is switched on (UNMAP, WRITE SAME UNMAP,
 * zeros after unmap) and the volatile write cache is reported honestly (the image lives in
 * the page cache until SYNCHRONIZE CACHE or FUA).
 */
export const THIN_IMAGE_CONTROLS = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1, emulate_write_cache: 1 };

/**
 * The demo target as ordinary configuration: no gateway yet (the starting gateway adopts a
 * configuration without gateways: it becomes the target's portal and the disk's owner).
 */
export function demoConfig(): GatewayConfig {
  const cfg = emptyConfig();
  const now = timestamp();
  cfg.disks[DEMO_DISK] = {
    backstore: 'rbd',
    pool: DEMO_POOL,
    image: DEMO_IMAGE,
    backstore_object_name: `${DEMO_POOL}.${DEMO_IMAGE}`,
    wwn: randomUUID(),
    controls: { ...THIN_IMAGE_CONTROLS },
    created: now,
  };
  cfg.targets[DEMO_TARGET] = {
    alias: 'demo',
    acl_enabled: false,
    auth: emptyAuth(),
    controls: {},
    ip_list: [],
    portals: {},
    disks: { [DEMO_DISK]: { lun_id: 0 } },
    clients: {},
    groups: {},
    created: now,
  };
  return cfg;
}

/** Create the demo image in the store (pool created too) unless it exists. */
export async function createDemoImage(store: ImageStore): Promise<void> {
  if ((await store.poolExists(DEMO_POOL)) && (await store.listImages(DEMO_POOL)).includes(DEMO_IMAGE)) return;
  await store.createImage(DEMO_DISK, { size: DEMO_SIZE, createPool: true });
}
