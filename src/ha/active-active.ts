/**
 * The active/active model of the `rbd` backstore on Ceph (the guide's kernel RBD backstore:
 * "parallelisierter Multipath-E/A-Zugriff auf RBD-Images"): every gateway of the target opens
 * the image read-write at the same time and reports its path active/optimized; the initiator
 * spreads I/O over all of them. What keeps that safe (docs/high-availability.md, "rbd on Ceph
 * is active/active"):
 *
 *  - no gateway caches data: the image is opened with librbd's cache off (the image's
 *    `conf_rbd_cache=false` override), so a write is acknowledged only once the OSDs have it and
 *    a read through any gateway after that GOOD sees it;
 *  - no exclusive lock: librbd would move it to whichever client writes, on every write
 *    (cooperative lock transitions; measured: a third of the throughput, 8x the tail latency),
 *    so images with exclusive-lock, object-map or fast-diff are refused (disk-rules.ts);
 *  - COMPARE AND WRITE only where the OSD makes it atomic (one 512-byte sector with Pacific's
 *    librbd), never the SCSI layer's read-compare-write, which no other gateway would respect;
 *  - reservations and unit attentions in the LU state shared by the gateways (src/ha/lu-states.ts).
 *
 * `user:rbd` stays active/passive (one owner, the exclusive lock); the embedded store has no
 * OSD-side atomicity and stays active/passive too.
 */
import type { DiskConfig, GatewayConfig } from '../config/schema';
import type { ImageProviderKind } from './access-state';
import { AccessState, accessState } from './ownership';

/** Every gateway writes this disk at once: `rbd` on Ceph, the image head (snapshots are read-only anyway). */
export function isActiveActive(disk: Pick<DiskConfig, 'backstore' | 'snapshot'> | undefined, provider: ImageProviderKind | string | undefined): boolean {
  return disk !== undefined && disk.backstore === 'rbd' && provider === 'ceph' && !disk.snapshot;
}

/** How `gateway` serves a disk: active/active disks are active on every gateway, the rest as ownership.ts decides. */
export function diskAccess(config: GatewayConfig, gateway: string, diskId: string, provider: ImageProviderKind | undefined): AccessState {
  return isActiveActive(config.disks[diskId], provider) ? 'active' : accessState(config, gateway, diskId);
}
