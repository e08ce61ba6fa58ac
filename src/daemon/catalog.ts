/**
 * The TargetCatalog the iSCSI layer sees, built from the configuration: target nodes with
 * their SCSI target devices, settings, ACLs and the portals to advertise.
 */
import { AuthPolicy, OPEN_POLICY } from '../iscsi/auth';
import { IscsiTargetNode, TargetCatalog, TargetSettings } from '../iscsi/target-node';
import { ScsiTargetDevice } from '../scsi/sam';
import { PortalAddress, isWildcard } from '../transport/portal';
import { TargetConfig } from '../config/schema';
import { normalizeTargetControls, targetSettingsFrom } from '../config/target-settings';

export class ConfiguredTarget implements IscsiTargetNode {
  private current: TargetSettings;
  private aclEnabled: boolean;
  private clients: Set<string>;

  constructor(
    readonly name: string,
    config: TargetConfig,
    readonly device: ScsiTargetDevice,
  ) {
    this.current = targetSettingsFrom(normalizeTargetControls(config.controls));
    this.aclEnabled = config.acl_enabled;
    this.clients = new Set(Object.keys(config.clients));
    this.alias = config.alias;
    this.portalGroupTag = config.portal_group_tag;
  }

  readonly alias: string | undefined;
  readonly portalGroupTag: number;

  settings(): TargetSettings {
    return this.current;
  }

  /** Apply new controls / ACL (reconfigure): affects new logins and new windows. */
  update(config: TargetConfig): void {
    this.current = targetSettingsFrom(normalizeTargetControls(config.controls));
    this.aclEnabled = config.acl_enabled;
    this.clients = new Set(Object.keys(config.clients));
  }

  allows(initiatorName: string): boolean {
    return !this.aclEnabled || this.clients.has(initiatorName);
  }
}

export class ConfiguredCatalog implements TargetCatalog {
  private readonly targets = new Map<string, ConfiguredTarget>();
  readonly auth: AuthPolicy = OPEN_POLICY;

  constructor(private readonly portals: readonly PortalAddress[]) {}

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

  portalsFor(_target: IscsiTargetNode, local: PortalAddress): PortalAddress[] {
    // A wildcard portal is reachable at the address the initiator used to get here.
    return this.portals.map((p) => (isWildcard(p.host) ? { host: local.host.replace(/^::ffff:/, ''), port: p.port } : p));
  }
}
