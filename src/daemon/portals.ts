/**
 * Portal addresses from the configuration. Target portals list IPs (as ceph-iscsi); the port
 * of an IP is the one its gateway lists for it in `gateways.<name>.portal_ip_addresses`
 * ("ip:port"), else 3260.
 */
import { DEFAULT_PORTAL_PORT, GatewayConfig } from '../config/schema';
import { targetTopology } from '../ha/access-state';
import type { AdvertisedPortal } from '../iscsi/target-node';
import { PortalAddress, formatAddress, parsePortal } from '../transport/portal';

/** "ip", "ip:port" or "[v6]:port" → address (invalid entries are skipped by the callers' validation). */
export function parseListenEntry(entry: string): PortalAddress {
  return parsePortal(entry, DEFAULT_PORTAL_PORT);
}

export function formatListenEntry(p: PortalAddress): string {
  return formatAddress(p);
}

/** The port `gateway` serves `ip` on. */
export function portOf(config: GatewayConfig, gateway: string, ip: string): number {
  for (const e of config.gateways[gateway]?.portal_ip_addresses ?? []) {
    try {
      const p = parseListenEntry(e);
      if (p.host === ip) return p.port;
    } catch {
      // skip invalid entries
    }
  }
  return DEFAULT_PORTAL_PORT;
}

/** Every address `gateway` listens on: its own entries and its target portal IPs. */
export function listenAddresses(config: GatewayConfig, gateway: string): PortalAddress[] {
  const out = new Map<string, PortalAddress>();
  for (const e of config.gateways[gateway]?.portal_ip_addresses ?? []) {
    try {
      const p = parseListenEntry(e);
      out.set(formatAddress(p), p);
    } catch {
      // skip invalid entries
    }
  }
  for (const t of Object.values(config.targets)) {
    for (const ip of t.portals[gateway]?.portal_ip_addresses ?? []) {
      try {
        const p = { host: parseListenEntry(ip).host, port: portOf(config, gateway, ip) };
        out.set(formatAddress(p), p);
      } catch {
        // skip invalid entries
      }
    }
  }
  return [...out.values()];
}

/**
 * Every gateway's portals of a target, in `portals` order (what SendTargets advertises), each
 * with its own TPGT (its relative target port identifier, src/ha/access-state.ts).
 */
export function targetPortals(config: GatewayConfig, iqn: string): AdvertisedPortal[] {
  const t = config.targets[iqn];
  if (!t) return [];
  const topology = targetTopology(config, iqn);
  const out: AdvertisedPortal[] = [];
  for (const [gw, portal] of Object.entries(t.portals)) {
    const ports = topology.groupOf(gw)?.targetPorts ?? [];
    for (const ip of portal.portal_ip_addresses) {
      try {
        const tpgt = ports.find((p) => p.ip === ip)?.relativeTargetPortId;
        out.push({ host: parseListenEntry(ip).host, port: portOf(config, gw, ip), tpgt });
      } catch {
        // skip invalid entries
      }
    }
  }
  return out;
}
