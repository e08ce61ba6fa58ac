/**
 * Which gateway owns a disk (opens its image read-write; ALUA active/optimized) and what every
 * other gateway's path is. Owner selection and re-assignment follow ceph-iscsi (reference §5.3):
 * among the target's portal gateways, the one with the fewest `active_luns`, ties to the first
 * in `portals` order; chosen when a disk is mapped, re-assigned when its owner is removed.
 *
 * The access state here is what a gateway starts with; the HA issue adds transitions (ALUA,
 * lock hand-over, fencing) behind accessState().
 */
import { GatewayConfig, isImageBackstore } from '../config/schema';

export type AccessState = 'active' | 'standby';

/** The owner ceph-iscsi would choose for a disk mapped to `target` (undefined: no portal). */
export function chooseOwner(config: GatewayConfig, target: string): string | undefined {
  const t = config.targets[target];
  if (!t) return undefined;
  let best: string | undefined;
  let bestCount = Infinity;
  for (const gw of Object.keys(t.portals)) {
    const count = config.gateways[gw]?.active_luns ?? 0;
    if (count < bestCount) {
      best = gw;
      bestCount = count;
    }
  }
  return best;
}

/**
 * Give `diskId` an owner if it has none (mapping it to `target`), counting it in the owner's
 * `active_luns`. Call inside a ConfigStore mutator. Returns the owner.
 */
export function assignOwner(draft: GatewayConfig, diskId: string, target: string): string | undefined {
  const disk = draft.disks[diskId];
  if (!disk) return undefined;
  if (disk.owner && draft.gateways[disk.owner]) return disk.owner;
  const owner = chooseOwner(draft, target);
  if (owner) {
    disk.owner = owner;
    draft.gateways[owner].active_luns += 1;
  } else {
    delete disk.owner;
  }
  return owner;
}

/**
 * After an unmap: drop the owner (and its count) of a disk that no target maps any more.
 * Call inside a mutator.
 */
export function releaseOwnerIfUnmapped(draft: GatewayConfig, diskId: string): void {
  const disk = draft.disks[diskId];
  if (!disk?.owner) return;
  if (Object.values(draft.targets).some((t) => t.disks[diskId])) return;
  const gw = draft.gateways[disk.owner];
  if (gw && gw.active_luns > 0) gw.active_luns -= 1;
  delete disk.owner;
}

/**
 * Re-assign the disks of a gateway that left (removed from `gateways` or from the portals of
 * a target): every mapped disk whose owner is no longer a portal of a target mapping it gets a
 * new owner by the same rule (ceph-iscsi LUN.reassign_owners). Call inside a mutator.
 */
export function reassignOwners(draft: GatewayConfig): void {
  for (const [id, disk] of Object.entries(draft.disks)) {
    const mappedBy = Object.entries(draft.targets).filter(([, t]) => t.disks[id]);
    if (mappedBy.length === 0) continue;
    const ownerOk = disk.owner !== undefined && draft.gateways[disk.owner] !== undefined
      && mappedBy.some(([, t]) => t.portals[disk.owner!] !== undefined);
    if (ownerOk) continue;
    if (disk.owner && draft.gateways[disk.owner] && draft.gateways[disk.owner].active_luns > 0) draft.gateways[disk.owner].active_luns -= 1;
    delete disk.owner;
    for (const [iqn] of mappedBy) {
      if (assignOwner(draft, id, iqn)) break;
    }
  }
}

/**
 * How `gateway` serves a disk: 'active' opens the storage read-write; 'standby' exposes the LUN
 * but never writes the storage. Read-only snapshots and null disks are active everywhere (no
 * writer to protect); a disk without an owner is active nowhere.
 */
export function accessState(config: GatewayConfig, gateway: string, diskId: string): AccessState {
  const disk = config.disks[diskId];
  if (!disk) return 'standby';
  if (disk.backstore === 'null') return 'active';
  if (isImageBackstore(disk.backstore) && disk.snapshot) return 'active';
  return disk.owner === gateway ? 'active' : 'standby';
}
