/**
 * What the iSCSI layer needs to know about the targets it serves. The daemon builds these from
 * the configuration; the iSCSI layer never reads configuration itself.
 */
import { PortalAddress } from '../transport/portal';
import { ScsiTargetDevice } from '../scsi/sam';
import { AuthPolicy } from './auth';
import { DEFAULT_TARGET_OFFER, TargetOffer } from './parameters';

/** Per-target behaviour (ceph-iscsi target controls, RFC 7143 timers). Times in seconds. */
export interface TargetSettings {
  /** CmdSN window per session (back-pressure). */
  readonly cmdsnDepth: number;
  /** Idle time before the target pings with NOP-In. 0 disables. */
  readonly nopinTimeout: number;
  /** Time a NOP-In ping may go unanswered before the connection is dropped. */
  readonly nopinResponseTimeout: number;
  /** Time the target waits for solicited Data-Out before failing the connection. */
  readonly dataoutTimeout: number;
  /** Time a login may take from TCP accept to full feature phase. */
  readonly loginTimeout: number;
  readonly offer: TargetOffer;
}

export const DEFAULT_TARGET_SETTINGS: TargetSettings = {
  cmdsnDepth: 128,
  nopinTimeout: 5,
  nopinResponseTimeout: 5,
  dataoutTimeout: 20,
  loginTimeout: 15,
  offer: DEFAULT_TARGET_OFFER,
};

/**
 * The SCSI target port a connection reaches (RFC 7143 §4.4.1: a target portal group is a SCSI
 * target port): its TPGT, RELATIVE TARGET PORT IDENTIFIER and ALUA target port group.
 */
export interface TargetPortBinding {
  readonly tpgt: number;
  readonly relativeTargetPortId: number;
  readonly targetPortGroup: number;
}

/** A portal advertised in SendTargets, with the TPGT of its portal group. */
export interface AdvertisedPortal extends PortalAddress {
  readonly tpgt?: number;
}

/** One iSCSI target node (an IQN) with its SCSI target device. */
export interface IscsiTargetNode {
  readonly name: string;
  readonly alias: string | undefined;
  /** TargetPortalGroupTag of the target's portals that portAt() does not tell apart. */
  readonly portalGroupTag: number;
  /**
   * The target port behind the local address a login arrived at; undefined: the target has
   * no portal there (the login fails). Without it every portal is portalGroupTag.
   */
  portAt?(local: PortalAddress): TargetPortBinding | undefined;
  readonly device: ScsiTargetDevice;
  settings(): TargetSettings;
  /** Access control: may this initiator log in (and see the target in SendTargets)? */
  allows(initiatorName: string): boolean;
}


/** The set of targets reachable through this gateway's portals. */
export interface TargetCatalog {
  find(name: string): IscsiTargetNode | undefined;
  list(): readonly IscsiTargetNode[];
  /** Authentication policy (discovery and normal sessions). */
  readonly auth: AuthPolicy;
  /** Settings for discovery sessions (timers, offer). */
  discoverySettings(): TargetSettings;
  /**
   * Portal addresses to advertise for a target in SendTargets. `local` is the address the
   * asking connection arrived on (used when a portal listens on a wildcard address).
   */
  portalsFor(target: IscsiTargetNode, local: PortalAddress): readonly AdvertisedPortal[];
}

/** The target port of a login at `local`: portAt() when the node has it, else portalGroupTag. */
export function targetPortAt(target: IscsiTargetNode, local: PortalAddress | undefined): TargetPortBinding | undefined {
  if (target.portAt && local) return target.portAt(local);
  const tag = target.portalGroupTag;
  return { tpgt: tag, relativeTargetPortId: tag, targetPortGroup: tag };
}

export function formatPortal(p: PortalAddress, tpgt: number): string {
  const host = p.host.includes(':') ? `[${p.host}]` : p.host;
  return `${host}:${p.port},${tpgt}`;
}
