/**
 * The TargetCatalog the iSCSI layer sees, kept current by the reconciler: target nodes with
 * their SCSI target devices, settings, ACLs and the portals to advertise (every gateway's
 * portals of the target, so discovery through any gateway lists all paths).
 */
import { AuthPolicy, OPEN_POLICY } from '../iscsi/auth';
import { IscsiTargetNode, TargetCatalog, TargetSettings } from '../iscsi/target-node';
import { ScsiTargetDevice } from '../scsi/sam';
import { PortalAddress, isWildcard } from '../transport/portal';
import { GatewayConfig, TargetConfig } from '../config/schema';
import { normalizeTargetControls, targetSettingsFrom } from '../config/target-settings';

export class ConfiguredTarget implements IscsiTargetNode {
  private current: TargetSettings;
  /** The target's configuration as last applied (clients, auth, groups for the auth layer). */
  config: TargetConfig;
  /** Every gateway's portals of this target, in `portals` order. */
  portals: PortalAddress[];

  constructor(
    readonly name: string,
    config: TargetConfig,
    readonly device: ScsiTargetDevice,
    portals: PortalAddress[],
  ) {
    this.config = config;
    this.current = targetSettingsFrom(normalizeTargetControls(config.controls));
    this.portals = portals;
  }

  get alias(): string | undefined {
    return this.config.alias;
  }

  get portalGroupTag(): number {
    return this.config.portal_group_tag ?? 1;
  }

  settings(): TargetSettings {
    return this.current;
  }

  /** Apply new controls / ACL / portals: affects new logins and new windows. Throws on bad controls. */
  update(config: TargetConfig, portals: PortalAddress[]): void {
    this.current = targetSettingsFrom(normalizeTargetControls(config.controls));
    this.config = config;
    this.portals = portals;
  }

  allows(initiatorName: string): boolean {
    return !this.config.acl_enabled || this.config.clients[initiatorName] !== undefined;
  }
}

export class ConfiguredCatalog implements TargetCatalog {
  private readonly targets = new Map<string, ConfiguredTarget>();
  readonly auth: AuthPolicy = OPEN_POLICY;
  /** The whole configuration as last applied (discovery_auth and friends for the auth layer). */
  config: GatewayConfig | undefined;

  add(target: ConfiguredTarget): void {
    this.targets.set(target.name, target);
  }

  remove(name: string): void {
    this.targets.delete(name);
  }

  find(name: string): ConfiguredTarget | undefined {
    return this.targets.get(name);
  }

  list(): ConfiguredTarget[] {
    return [...this.targets.values()];
  }

  discoverySettings(): TargetSettings {
    return targetSettingsFrom({});
  }

  portalsFor(target: IscsiTargetNode, local: PortalAddress): PortalAddress[] {
    const t = this.targets.get(target.name);
    const portals = t?.portals ?? [];
    // A wildcard portal is reachable at the address the initiator used to get here.
    const out = portals.map((p) => (isWildcard(p.host) ? { host: local.host.replace(/^::ffff:/, ''), port: p.port } : p));
    const seen = new Set<string>();
    return out.filter((p) => {
      const k = `${p.host}|${p.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
}
