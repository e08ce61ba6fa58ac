/**
 * ALUA on the gateway side: the multi-gateway topology of a target and the asymmetric access
 * state of each LU per target port group, the same on every gateway.
 *
 * Topology (identical on every gateway, computed from the shared configuration only):
 *   - one target port group (TPG) per gateway that is a portal of the target:
 *     `targets.<iqn>.portals.<gw>.tpg_id`;
 *   - one target port per portal IP, its RELATIVE TARGET PORT IDENTIFIER also being the iSCSI
 *     target portal group tag (TPGT) the portal is advertised and logged in with:
 *     `targets.<iqn>.portals.<gw>.port_ids.<ip>`.
 *   Ids missing from the document (older documents, portals just added) are derived in
 *   `portals` order as the smallest unused numbers (the first portal keeps the target's
 *   portal_group_tag, 1 by default, so single-gateway TPGTs do not change), and every gateway
 *   stores them once (assignTopologyIds), after which they never change: adding or removing a
 *   gateway leaves the others' ids alone.
 *
 * States (config-based, ConfigAccessControl): the disk's `owner` gateway's group is
 * active/optimized; the others active/non-optimized (implicit) or standby (explicit); every
 * group active/optimized for active/active disks (rbd on Ceph, snapshots, null disks). This
 * gateway's own group reads `transitioning` while it becomes owner (activate) or has not yet
 * opened the storage it owns. The failover branch replaces activate() with lock takeover.
 */
import type { DiskConfig, GatewayConfig, TargetConfig } from '../config/schema';
import { isImageBackstore } from '../config/schema';
import type { ConfigStore } from '../config/store';
import { AluaAccess, AluaChange, AluaMode, AluaPortGroup, AluaState, AluaTransitionError } from '../scsi/alua';
import { isWildcard, parsePortal } from '../transport/portal';
import type { Logger } from '../util/log';

export type { AluaAccess, AluaChange, AluaMode, AluaPortGroup, AluaState } from '../scsi/alua';
export { AluaTransitionError } from '../scsi/alua';

/** Which image provider serves `rbd`/`user:rbd` disks (active/active needs Ceph's OSD-side atomicity). */
export type ImageProviderKind = 'embedded' | 'ceph';

// ------------------------------------------------------------------------------ topology

/** One target port: a portal IP of one gateway. */
export interface TargetPortInfo {
  readonly gateway: string;
  readonly ip: string;
  /** RELATIVE TARGET PORT IDENTIFIER, also the iSCSI TPGT of this portal. */
  readonly relativeTargetPortId: number;
  /** The target port group (gateway) it belongs to. */
  readonly targetPortGroup: number;
}

export interface TargetPortGroupInfo extends AluaPortGroup {
  readonly gateway: string;
  readonly targetPorts: readonly TargetPortInfo[];
}

export interface TargetTopology {
  readonly target: string;
  /** Ascending by id. */
  readonly groups: readonly TargetPortGroupInfo[];
  groupOf(gateway: string): TargetPortGroupInfo | undefined;
  group(id: number): TargetPortGroupInfo | undefined;
  /** The port of `gateway` a connection arriving at local address `host` uses (wildcard portals match any). */
  portAt(gateway: string, host: string): TargetPortInfo | undefined;
}

const MAX_ID = 65535;

function hostOf(ip: string): string {
  try {
    return parsePortal(ip, 3260).host;
  } catch {
    return ip;
  }
}

/** Smallest id >= 1 not in `used` (preferring `prefer` when free). */
function nextId(used: Set<number>, prefer?: number): number {
  if (prefer !== undefined && !used.has(prefer)) return prefer;
  for (let i = 1; i <= MAX_ID; i++) if (!used.has(i)) return i;
  throw new RangeError('no free target port group or relative target port identifier');
}

/** TPG id per gateway and port id per (gateway, ip), stored ones kept, missing ones derived. */
function ids(t: TargetConfig): { tpg: Map<string, number>; port: Map<string, Map<string, number>> } {
  const tpg = new Map<string, number>();
  const usedTpg = new Set<number>();
  for (const [gw, p] of Object.entries(t.portals)) {
    if (p.tpg_id !== undefined && !usedTpg.has(p.tpg_id)) {
      tpg.set(gw, p.tpg_id);
      usedTpg.add(p.tpg_id);
    }
  }
  for (const gw of Object.keys(t.portals)) {
    if (tpg.has(gw)) continue;
    const id = nextId(usedTpg);
    tpg.set(gw, id);
    usedTpg.add(id);
  }
  const port = new Map<string, Map<string, number>>();
  const usedPort = new Set<number>();
  for (const [gw, p] of Object.entries(t.portals)) {
    const m = new Map<string, number>();
    port.set(gw, m);
    for (const ip of p.portal_ip_addresses) {
      const id = p.port_ids?.[ip];
      if (id !== undefined && !usedPort.has(id)) {
        m.set(ip, id);
        usedPort.add(id);
      }
    }
  }
  let first = true;
  for (const [gw, p] of Object.entries(t.portals)) {
    for (const ip of p.portal_ip_addresses) {
      if (port.get(gw)!.has(ip)) continue;
      const id = nextId(usedPort, first ? (t.portal_group_tag ?? 1) : undefined);
      first = false;
      port.get(gw)!.set(ip, id);
      usedPort.add(id);
    }
  }
  return { tpg, port };
}

export function targetTopology(config: GatewayConfig, iqn: string): TargetTopology {
  const t = config.targets[iqn];
  const groups: TargetPortGroupInfo[] = [];
  if (t) {
    const { tpg, port } = ids(t);
    for (const [gw, p] of Object.entries(t.portals)) {
      const id = tpg.get(gw)!;
      const targetPorts = p.portal_ip_addresses.map((ip) => ({ gateway: gw, ip, relativeTargetPortId: port.get(gw)!.get(ip)!, targetPortGroup: id }));
      groups.push({ id, gateway: gw, targetPorts, ports: targetPorts.map((x) => x.relativeTargetPortId).sort((a, b) => a - b) });
    }
    groups.sort((a, b) => a.id - b.id);
  }
  return {
    target: iqn,
    groups,
    groupOf: (gateway) => groups.find((g) => g.gateway === gateway),
    group: (id) => groups.find((g) => g.id === id),
    portAt: (gateway, host) => {
      const g = groups.find((x) => x.gateway === gateway);
      if (!g) return undefined;
      const h = host.replace(/^::ffff:/, '');
      return g.targetPorts.find((p) => hostOf(p.ip) === h) ?? g.targetPorts.find((p) => isWildcard(hostOf(p.ip)));
    },
  };
}

/**
 * Mutator: store every derived id (tpg_id, port_ids) so they stay put when gateways come and
 * go. Idempotent; returns whether anything changed (every gateway may run it concurrently:
 * they all derive the same ids from the same document).
 */
export function assignTopologyIds(draft: GatewayConfig): boolean {
  let changed = false;
  for (const t of Object.values(draft.targets)) {
    const { tpg, port } = ids(t);
    for (const [gw, p] of Object.entries(t.portals)) {
      if (p.tpg_id !== tpg.get(gw)) {
        p.tpg_id = tpg.get(gw);
        changed = true;
      }
      const want = Object.fromEntries(port.get(gw)!);
      const have = p.port_ids ?? {};
      const same = Object.keys(want).length === Object.keys(have).length && Object.entries(want).every(([ip, id]) => have[ip] === id);
      if (!same) {
        p.port_ids = want;
        changed = true;
      }
    }
  }
  return changed;
}

// ------------------------------------------------------------------------------ states

/**
 * The ALUA model of a disk in a target. `rbd` on Ceph is active/active (no gateway caches
 * data, COMPARE AND WRITE is atomic at the OSD); read-only snapshots and null disks have no
 * writer to protect; everything else is active/passive in the target's alua_failover_type
 * (`controls.alua_failover_type`, default the iscsi-gateway.cfg setting).
 */
export function aluaMode(config: GatewayConfig, iqn: string, diskId: string, provider: ImageProviderKind, fallback: 'implicit' | 'explicit'): AluaMode {
  const disk: DiskConfig | undefined = config.disks[diskId];
  if (disk) {
    if (disk.backstore === 'null') return 'active/active';
    if (isImageBackstore(disk.backstore) && disk.snapshot) return 'active/active';
    if (disk.backstore === 'rbd' && provider === 'ceph') return 'active/active';
  }
  const v = config.targets[iqn]?.controls.alua_failover_type;
  return v === 'explicit' || v === 'implicit' ? v : fallback;
}

export interface LocalView {
  /** This gateway's name. */
  readonly gateway: string;
  /** This gateway has the disk's storage open for writing (false while it cannot yet). */
  readonly holdsWriter: boolean;
  /** This gateway is taking ownership right now. */
  readonly transitioning: boolean;
}

/** State per target port group id, as this gateway reports it. */
export function aluaStates(config: GatewayConfig, iqn: string, diskId: string, mode: AluaMode, local?: LocalView): Map<number, AluaState> {
  const topo = targetTopology(config, iqn);
  const out = new Map<number, AluaState>();
  const owner = config.disks[diskId]?.owner;
  const ownerGroup = owner === undefined ? undefined : topo.groupOf(owner)?.id;
  for (const g of topo.groups) {
    let s: AluaState;
    if (mode === 'active/active' || g.id === ownerGroup) s = 'active/optimized';
    else s = mode === 'implicit' ? 'active/non-optimized' : 'standby';
    if (local && g.gateway === local.gateway && mode !== 'active/active') {
      if (local.transitioning || (g.id === ownerGroup && !local.holdsWriter)) s = 'transitioning';
    }
    out.set(g.id, s);
  }
  return out;
}

// ------------------------------------------------------------------------------ per LU

/** The ALUA view of one LU (a disk in a target) on this gateway. */
export interface LuAccess extends AluaAccess {
  readonly target: string;
  readonly disk: string;
  /** This gateway's target port group (undefined: this gateway is no portal of the target). */
  readonly localGroup: number | undefined;
}

export interface AccessControlOptions {
  readonly gateway: string;
  readonly provider: ImageProviderKind;
  /** alua_failover_type of iscsi-gateway.cfg: the default of a target without the control. */
  readonly defaultMode: 'implicit' | 'explicit';
  /** Where ownership changes are committed (undefined: activate() fails: read-only view). */
  readonly store?: ConfigStore;
  /** Resolves once this gateway applied the document of `epoch` (the reconciler). */
  whenApplied(epoch: number): Promise<void>;
  /** Does this gateway hold the disk's storage open for writing now? */
  holdsWriter(diskId: string): boolean;
  /** Ask the reconciler for a pass now (a disk it could not open for writing yet). */
  retry(): Promise<void>;
  /** Resolves once no pass is running (the LUs reflect what the last pass opened). */
  settled?(): Promise<void>;
  /** Bound of one transition (IMPLICIT TRANSITION TIME is this, rounded up). Default 10 s. */
  readonly transitionTimeoutMs?: number;
  readonly log: Logger;
}

export const DEFAULT_TRANSITION_TIMEOUT_MS = 10_000;

/**
 * Mutator: make `gateway` the owner of `diskId` (active_luns moved along). `initiator`: the
 * node whose I/O caused it (implicit transition), recorded so that every gateway spares its
 * paths the unit attention (AluaChange.initiator).
 */
export function moveOwner(draft: GatewayConfig, diskId: string, gateway: string, initiator?: string): boolean {
  const disk = draft.disks[diskId];
  if (!disk) throw new AluaTransitionError(`disk ${diskId} no longer exists`);
  if (!draft.gateways[gateway]) throw new AluaTransitionError(`gateway ${gateway} is not defined`);
  if (disk.owner === gateway) return false;
  const old = disk.owner ? draft.gateways[disk.owner] : undefined;
  if (old && old.active_luns > 0) old.active_luns -= 1;
  disk.owner = gateway;
  draft.gateways[gateway].active_luns += 1;
  // The commit gets the next epoch (ConfigStore: +1 per commit).
  if (initiator) disk.alua_cause = { initiator, owner: gateway, epoch: draft.epoch + 1 };
  else delete disk.alua_cause;
  return true;
}

/** How many commits an owner change's cause stays valid for (passes collapse bursts of commits). */
const CAUSE_WINDOW = 8;

/** The initiator whose I/O made the disk's current owner the owner, if that is recent. */
export function transitionCause(config: GatewayConfig, diskId: string): string | undefined {
  const d = config.disks[diskId];
  const c = d?.alua_cause;
  if (!c || c.owner !== d.owner || c.epoch > config.epoch || config.epoch - c.epoch > CAUSE_WINDOW) return undefined;
  return c.initiator;
}

class ConfigLuAccess implements LuAccess {
  readonly mode: AluaMode;
  private states = new Map<number, AluaState>();
  private base = new Map<number, AluaState>();
  private groupList: readonly TargetPortGroupInfo[] = [];
  private ownerGroup: number | undefined;
  private listeners = new Set<(c: AluaChange) => void>();
  transitioning = false;
  private inFlight = new Map<number, Promise<void>>();
  localGroup: number | undefined;

  constructor(
    private readonly control: ConfigAccessControl,
    readonly target: string,
    readonly disk: string,
    mode: AluaMode,
  ) {
    this.mode = mode;
  }

  get implicitTransitionSeconds(): number {
    return Math.min(255, Math.ceil(this.control.transitionTimeoutMs / 1000));
  }

  groups(): readonly AluaPortGroup[] {
    return this.groupList;
  }

  state(tpgId: number): AluaState {
    return this.states.get(tpgId) ?? 'unavailable';
  }

  preferred(tpgId: number): boolean {
    return this.mode !== 'active/active' && tpgId === this.ownerGroup;
  }

  onChange(listener: (change: AluaChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Recompute from the document; tell the listeners when any state changed. */
  refresh(config: GatewayConfig, reason: AluaChange['reason']): void {
    const topo = targetTopology(config, this.target);
    this.groupList = topo.groups;
    this.localGroup = topo.groupOf(this.control.gateway)?.id;
    const owner = config.disks[this.disk]?.owner;
    this.ownerGroup = owner === undefined ? undefined : topo.groupOf(owner)?.id;
    const view = { gateway: this.control.gateway, holdsWriter: this.control.holdsWriter(this.disk), transitioning: this.transitioning };
    // Listeners hear of settled changes only (the owner moved): while this gateway takes over
    // (activate, storage not open yet) it reports transitioning (RTPG, NOT READY) but that
    // raises no unit attention of its own.
    const base = aluaStates(config, this.target, this.disk, this.mode);
    const changed = base.size !== this.base.size || [...base].some(([id, s]) => this.base.get(id) !== s);
    this.base = base;
    this.states = aluaStates(config, this.target, this.disk, this.mode, view);
    if (!changed) return;
    const initiator = transitionCause(config, this.disk);
    const change: AluaChange = initiator ? { reason: 'implicit', initiator } : { reason };
    for (const l of [...this.listeners]) l(change);
  }

  activate(reason: 'implicit' | 'explicit', tpgId?: number, initiator?: string): Promise<void> {
    const id = tpgId ?? this.localGroup;
    if (id === undefined) return Promise.reject(new AluaTransitionError(`this gateway is no portal of ${this.target}`));
    if (this.mode === 'active/active') return Promise.resolve();
    const group = this.groupList.find((g) => (g as TargetPortGroupInfo).id === id) as TargetPortGroupInfo | undefined;
    if (!group) return Promise.reject(new AluaTransitionError(`target port group ${id} does not exist`));
    const local = id === this.localGroup;
    if (this.state(id) === 'active/optimized' && (!local || this.control.holdsWriter(this.disk))) {
      // Done, once the pass that opened the storage has replaced the logical units.
      return this.control.options.settled?.() ?? Promise.resolve();
    }
    let p = this.inFlight.get(id);
    if (!p) {
      p = this.transition(group.gateway, local, reason, reason === 'implicit' ? initiator : undefined).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, p);
    }
    return p;
  }

  private async transition(gateway: string, local: boolean, reason: 'implicit' | 'explicit', initiator: string | undefined): Promise<void> {
    const c = this.control;
    const store = c.options.store;
    if (!store) throw new AluaTransitionError('no configuration store to commit the ownership change to');
    const deadline = Date.now() + c.transitionTimeoutMs;
    c.options.log.info({ target: this.target, disk: this.disk, to: gateway, reason, initiator }, 'ALUA transition: moving the disk owner');
    if (local) {
      this.transitioning = true;
      c.refreshOne(this, reason);
    }
    try {
      const r = await store.update((d) => moveOwner(d, this.disk, gateway, initiator), { timeoutMs: c.transitionTimeoutMs });
      await withDeadline(c.options.whenApplied(r.epoch), deadline, 'the ownership change was not applied in time');
      if (!local) return;
      // The storage opens once the previous owner closed it; ask for passes until it has.
      while (!c.holdsWriter(this.disk)) {
        if (Date.now() > deadline) throw new AluaTransitionError(`disk ${this.disk}: the storage could not be opened for writing in time`);
        const cur = c.currentOwner(this.disk);
        if (cur !== undefined && cur !== gateway) throw new AluaTransitionError(`disk ${this.disk}: ownership moved on to ${cur}`);
        await new Promise((res) => setTimeout(res, 50));
        await c.options.retry();
      }
      // The pass that opened the storage may still be replacing the LUs.
      if (c.options.settled) await withDeadline(c.options.settled(), deadline, 'the logical units were not updated in time');
    } finally {
      if (local) {
        this.transitioning = false;
        c.refreshOne(this, reason);
      }
    }
  }
}

async function withDeadline<T>(p: Promise<T>, deadline: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AluaTransitionError(message)), Math.max(0, deadline - Date.now()));
    })]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * The config-based access control of one gateway: owner from the configuration, transitions
 * are configuration commits applied by the reconciler. The reconciler calls update() after
 * each pass opened the disks; LUs get their LuAccess from access().
 */
/** A LuAccess the access controls keep per (target, disk) and recompute on every document. */
export interface RefreshableLuAccess extends LuAccess {
  readonly mode: AluaMode;
  refresh(config: GatewayConfig, reason: AluaChange['reason']): void;
}

/**
 * What both access controls (ConfigAccessControl here, LockAccessControl in lock-access.ts)
 * share: one LuAccess per mapped (target, disk), recomputed on every applied document.
 */
export abstract class LuAccessRegistry<A extends RefreshableLuAccess> {
  protected config: GatewayConfig | undefined;
  protected readonly lus = new Map<string, A>();
  readonly transitionTimeoutMs: number;

  constructor(readonly options: { readonly gateway: string; readonly provider: ImageProviderKind; readonly defaultMode: 'implicit' | 'explicit'; readonly transitionTimeoutMs?: number }) {
    this.transitionTimeoutMs = options.transitionTimeoutMs ?? DEFAULT_TRANSITION_TIMEOUT_MS;
  }

  /** A new LuAccess of this kind (its states are set by the first refresh). */
  protected abstract create(target: string, disk: string, mode: AluaMode): A;

  get gateway(): string {
    return this.options.gateway;
  }

  /** The model this disk has in this target under `config`. */
  modeOf(config: GatewayConfig, target: string, disk: string): AluaMode {
    return aluaMode(config, target, disk, this.options.provider, this.options.defaultMode);
  }

  /**
   * The LuAccess of a disk in a target (one per pair, kept while mapped; a new one when its
   * mode changes, so a LU built with it keeps a fixed mode).
   */
  access(config: GatewayConfig, target: string, disk: string): LuAccess {
    const k = `${target}\n${disk}`;
    const mode = this.modeOf(config, target, disk);
    let a = this.lus.get(k);
    if (!a || a.mode !== mode) {
      a = this.create(target, disk, mode);
      this.lus.set(k, a);
      a.refresh(config, 'config');
    }
    return a;
  }

  /** A new document applied (or the storage opened): recompute every LU's states. */
  update(config: GatewayConfig): void {
    this.config = config;
    for (const [k, a] of [...this.lus]) {
      if (!config.targets[a.target]?.disks[a.disk]) {
        this.lus.delete(k);
        continue;
      }
      a.refresh(config, 'config');
    }
  }

  refreshOne(a: A, reason: AluaChange['reason']): void {
    if (this.config) a.refresh(this.config, reason);
  }

  /** Per target and disk: state per TPG (API, metrics). */
  snapshot(): { target: string; disk: string; mode: AluaMode; groups: { id: number; gateway: string; state: AluaState; preferred: boolean }[] }[] {
    return [...this.lus.values()].map((a) => ({
      target: a.target,
      disk: a.disk,
      mode: a.mode,
      groups: (a.groups() as TargetPortGroupInfo[]).map((g) => ({ id: g.id, gateway: g.gateway, state: a.state(g.id), preferred: a.preferred(g.id) })),
    }));
  }
}

export class ConfigAccessControl extends LuAccessRegistry<ConfigLuAccess> {
  constructor(override readonly options: AccessControlOptions) {
    super(options);
  }

  protected create(target: string, disk: string, mode: AluaMode): ConfigLuAccess {
    return new ConfigLuAccess(this, target, disk, mode);
  }

  holdsWriter(disk: string): boolean {
    return this.options.holdsWriter(disk);
  }

  currentOwner(disk: string): string | undefined {
    return this.config?.disks[disk]?.owner;
  }
}
