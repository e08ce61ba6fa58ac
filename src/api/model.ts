/**
 * Config-level bookkeeping shared by several resources, with ceph-iscsi's rules: portal
 * entries derived from a target's ip_list (§3.2), the LUN owner balanced over the target's
 * gateways (§5.3), active_luns counts, LUN id allocation (§6.2), new auth blocks and entries.
 */
import { randomUUID } from 'node:crypto';
import type { AuthConfig, ClientConfig, GatewayConfig, TargetConfig } from '../config/schema';
import { timestamp } from '../config/schema';

export function emptyAuthBlock(): AuthConfig {
  return {
    username: '',
    password: '',
    password_encryption_enabled: false,
    mutual_username: '',
    mutual_password: '',
    mutual_password_encryption_enabled: false,
  };
}

export function newTarget(controls: Record<string, number | boolean | string>): TargetConfig {
  const now = timestamp();
  return {
    acl_enabled: true,
    auth: emptyAuthBlock(),
    controls,
    ip_list: [],
    portals: {},
    disks: {},
    clients: {},
    groups: {},
    created: now,
    updated: now,
  };
}

export function newClient(): ClientConfig {
  return { auth: emptyAuthBlock(), luns: {}, group_name: '' };
}

/** Every portal of a target sees the whole ip_list: its own IPs active, the others inactive. */
export function recomputePortals(t: TargetConfig): void {
  for (const p of Object.values(t.portals)) {
    p.gateway_ip_list = [...t.ip_list];
    p.inactive_portal_ips = t.ip_list.filter((ip) => !p.portal_ip_addresses.includes(ip));
    p.tpgs = t.ip_list.length;
  }
}

/** active_luns of every gateway = the disks it owns (mapped disks only carry an owner). */
export function recountActiveLuns(c: GatewayConfig): void {
  for (const g of Object.values(c.gateways)) g.active_luns = 0;
  for (const d of Object.values(c.disks)) {
    if (d.owner && c.gateways[d.owner]) c.gateways[d.owner].active_luns += 1;
  }
}

/** Lowest LUN id not in `used`, from `start`, below `limit`. */
export function freeLunId(used: Iterable<number>, limit = 256, start = 0): number | undefined {
  const taken = new Set(used);
  for (let id = start; id < limit; id++) if (!taken.has(id)) return id;
  return undefined;
}

/**
 * The LUN id a client sees a disk under: the target's LUN id when this client does not use it
 * yet, else the lowest free id 0-255 (ceph-iscsi §1.7).
 */
export function clientLunId(t: TargetConfig, client: ClientConfig, disk: string): number | undefined {
  const used = Object.values(client.luns).map((l) => l.lun_id);
  const preferred = t.disks[disk]?.lun_id;
  if (preferred !== undefined && !used.includes(preferred)) return preferred;
  return freeLunId(used);
}

export function newWwn(): string {
  return randomUUID();
}

/** The gateways key of a target's portal that lists `ip`, if any. */
export function portalOfIp(t: TargetConfig, ip: string): string | undefined {
  return Object.entries(t.portals).find(([, p]) => p.portal_ip_addresses.includes(ip))?.[0];
}
