/**
 * The TargetCatalog the iSCSI layer sees, kept current by the reconciler: target nodes with
 * their SCSI target devices, settings, access control and the portals to advertise (every
 * gateway's portals of the target, so discovery through any gateway lists all paths).
 *
 * Access control follows ceph-iscsi (reference §1.6):
 *  - ACL mode (acl_enabled): only initiators under `clients` log in; each sees only its LUNs
 *    (client `luns`, plus the disks of its host group under the group's LUN ids); a client
 *    with `auth` must pass CHAP (mutual CHAP when it asks for it).
 *  - demo mode (acl_enabled false): any initiator, every LUN under the target's LUN ids;
 *    target-level `auth` makes CHAP mandatory for everyone.
 *  - discovery sessions: `discovery_auth`, independent of the targets.
 */
import { AuthContext, AuthError, AuthMethodHandler, AuthPolicy, NO_AUTHENTICATION } from '../iscsi/auth';
import { ChallengeMemory, ChapCredentials, chapMethod } from '../iscsi/chap';
import { AdvertisedPortal, IscsiTargetNode, TargetCatalog, TargetPortBinding, TargetSettings } from '../iscsi/target-node';
import type { TargetTopology } from '../ha/access-state';
import { LoginStatus } from '../pdu/opcodes';
import { LunMasking, ScsiTarget } from '../scsi/scsi-target';
import { PortalAddress, isWildcard } from '../transport/portal';

/** Which gateway this is, and the target's ports and port groups on every gateway. */
export interface LocalTopology {
  readonly gateway: string;
  readonly topology: TargetTopology;
}
import { AuthConfig, GatewayConfig, TargetConfig } from '../config/schema';
import { normalizeTargetControls, targetSettingsFrom } from '../config/target-settings';

/** Turns a stored (possibly encrypted) password into the secret. Throws when it cannot. */
export type PasswordDecoder = (stored: string, encrypted: boolean) => string;

/** Without a key configured an encrypted password cannot be used. */
export const PLAINTEXT_ONLY: PasswordDecoder = (stored, encrypted) => {
  if (encrypted) throw new Error('the password is stored encrypted and no decryption key is configured');
  return stored;
};

/** Credentials a login must prove; `unusable` when they exist but cannot be decoded. */
type Credentials = { readonly kind: 'none' } | { readonly kind: 'chap'; readonly chap: ChapCredentials } | { readonly kind: 'unusable' };

const NONE: Credentials = { kind: 'none' };

/** ceph-iscsi's auth block -> credentials. An empty username means "no CHAP". */
export function credentialsFrom(auth: AuthConfig | undefined, decode: PasswordDecoder): Credentials {
  if (!auth || !auth.username) return NONE;
  try {
    const password = decode(auth.password, auth.password_encryption_enabled);
    const mutual = auth.mutual_username
      ? { mutualUsername: auth.mutual_username, mutualPassword: decode(auth.mutual_password, auth.mutual_password_encryption_enabled) }
      : {};
    return { kind: 'chap', chap: { username: auth.username, password, ...mutual } };
  } catch {
    return { kind: 'unusable' };
  }
}

/** iSCSI names compare case-insensitively (RFC 3722 normalises to lower case; ceph-iscsi stores lower case). */
function norm(iqn: string): string {
  return iqn.toLowerCase();
}

/** The LUN masking of a target in ACL mode: per client, mapped LUN -> target LUN. */
export function lunMaskingFrom(config: TargetConfig): LunMasking {
  const masking = new Map<string, Map<number, number>>();
  const groupOf = new Map<string, string>();
  for (const [group, g] of Object.entries(config.groups)) for (const m of g.members) groupOf.set(norm(m), group);
  for (const [iqn, client] of Object.entries(config.clients)) {
    const map = new Map<number, number>();
    const place = (disk: string, lunId: number) => {
      const target = config.disks[disk];
      if (target) map.set(lunId, target.lun_id);
    };
    for (const [disk, { lun_id }] of Object.entries(client.luns)) place(disk, lun_id);
    // A host group's disks carry the group's LUN id on every member (VMware/cluster hosts need it).
    const group = config.groups[client.group_name || groupOf.get(norm(iqn)) || ''];
    for (const [disk, { lun_id }] of Object.entries(group?.disks ?? {})) place(disk, lun_id);
    masking.set(norm(iqn), map);
  }
  return masking;
}

export class ConfiguredTarget implements IscsiTargetNode {
  private current!: TargetSettings;
  /** The target's configuration as last applied. */
  config!: TargetConfig;
  /** Every gateway's portals of this target, in `portals` order, each with its TPGT. */
  portals: AdvertisedPortal[] = [];
  /** Undefined: every portal is the target's portal_group_tag (no multi-gateway topology). */
  private local: LocalTopology | undefined;
  /** Client auth blocks by normalised initiator name (decoded per login, by the catalog). */
  private clients = new Map<string, AuthConfig>();

  constructor(
    readonly name: string,
    config: TargetConfig,
    readonly device: ScsiTarget,
    portals: AdvertisedPortal[],
    local?: LocalTopology,
  ) {
    this.update(config, portals, local);
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

  /** The target port (one per portal IP, its TPGT = relative target port id) a login at `local` reaches. */
  portAt(local: PortalAddress): TargetPortBinding | undefined {
    if (!this.local) return { tpgt: this.portalGroupTag, relativeTargetPortId: this.portalGroupTag, targetPortGroup: this.portalGroupTag };
    const p = this.local.topology.portAt(this.local.gateway, local.host);
    return p && { tpgt: p.relativeTargetPortId, relativeTargetPortId: p.relativeTargetPortId, targetPortGroup: p.targetPortGroup };
  }

  /**
   * Apply new controls, ACLs, credentials and LUN mappings: new logins see them at once, and
   * a logged-in initiator whose LUN inventory changed gets REPORTED LUNS DATA HAS CHANGED.
   */
  update(config: TargetConfig, portals: AdvertisedPortal[], local?: LocalTopology): void {
    // Controls first: a bad control throws and leaves the running target as it was.
    this.current = targetSettingsFrom(normalizeTargetControls(config.controls));
    this.config = config;
    this.portals = portals;
    this.local = local;
    this.clients = new Map(Object.entries(config.clients).map(([iqn, c]) => [norm(iqn), c.auth]));
    this.device.setLunMasking(config.acl_enabled ? lunMaskingFrom(config) : undefined);
  }

  allows(initiatorName: string): boolean {
    return !this.config.acl_enabled || this.clients.has(norm(initiatorName));
  }

  /** The auth block this initiator must satisfy: its ACL's CHAP, else the target's (stored form). */
  authFor(initiatorName: string): AuthConfig | undefined {
    const own = this.config.acl_enabled ? this.clients.get(norm(initiatorName)) : undefined;
    return own?.username ? own : this.config.auth;
  }
}

/** A method list that fails every login with a target error (credentials configured but unusable). */
const UNUSABLE: AuthMethodHandler = {
  name: 'CHAP',
  start: () => ({
    step: () => {
      throw new AuthError('CHAP credentials of this login cannot be decoded (encrypted without a key?)', LoginStatus.TargetError);
    },
  }),
};

export class ConfiguredCatalog implements TargetCatalog, AuthPolicy {
  private readonly targets = new Map<string, ConfiguredTarget>();
  private applied: GatewayConfig | undefined;
  /** Challenges sent by this gateway, shared by all logins (reflection check). */
  private readonly challenges = new ChallengeMemory();
  readonly auth: AuthPolicy = this;

  /**
   * Stored passwords are decoded at each login (so a key change needs no reload, and clear
   * secrets live only as long as a login). Set by the daemon when a CHAP key pair is configured.
   */
  decode: PasswordDecoder = PLAINTEXT_ONLY;

  /** The whole configuration as last applied (its `discovery_auth` governs discovery sessions). */
  get config(): GatewayConfig | undefined {
    return this.applied;
  }

  set config(config: GatewayConfig | undefined) {
    this.applied = config;
  }

  methodsFor(context: AuthContext): readonly AuthMethodHandler[] {
    let auth: AuthConfig | undefined;
    if (context.sessionType === 'Discovery') auth = this.applied?.discovery_auth;
    else {
      const target = context.targetName === undefined ? undefined : this.find(context.targetName);
      if (!target) return [];
      auth = target.authFor(context.initiatorName);
    }
    const credentials = credentialsFrom(auth, this.decode);
    switch (credentials.kind) {
      case 'none': return [NO_AUTHENTICATION];
      case 'chap': return [chapMethod(credentials.chap, { memory: this.challenges })];
      case 'unusable': return [UNUSABLE];
    }
  }

  add(target: ConfiguredTarget): void {
    this.targets.set(target.name, target);
  }

  remove(name: string): void {
    this.targets.delete(name);
  }

  find(name: string): ConfiguredTarget | undefined {
    return this.targets.get(name) ?? this.targets.get(norm(name));
  }

  list(): ConfiguredTarget[] {
    return [...this.targets.values()];
  }

  discoverySettings(): TargetSettings {
    return targetSettingsFrom({});
  }

  portalsFor(target: IscsiTargetNode, local: PortalAddress): AdvertisedPortal[] {
    const t = this.targets.get(target.name);
    const portals = t?.portals ?? [];
    // A wildcard portal is reachable at the address the initiator used to get here.
    const out = portals.map((p) => (isWildcard(p.host) ? { host: local.host.replace(/^::ffff:/, ''), port: p.port, tpgt: p.tpgt } : p));
    const seen = new Set<string>();
    return out.filter((p) => {
      const k = `${p.host}|${p.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
}
