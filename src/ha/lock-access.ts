/**
 * ALUA states from the image lock (the failover model): the active/optimized target port group
 * of a disk is the group of the gateway holding its lock now — every gateway reads the same
 * lease — not the configured owner, which only marks the preferred group (PREF bit) and is
 * where failback returns to. Same public surface as ConfigAccessControl (access-state.ts), so
 * the reconciler uses one or the other.
 *
 *   implicit: holder AO, others ANO; I/O at an ANO port moves the lock there inside the LU's
 *             OwnedDevice (the command waits, no transitioning refusal, no LU swap).
 *   explicit: holder AO, others standby; SET TARGET PORT GROUPS moves the lock (to this gateway
 *             or, via its inbox, to the gateway of the group named); this gateway's group reads
 *             transitioning while it takes the lock.
 *   no holder (free lock, holder dead): the preferred group is reported AO, so initiators send
 *             I/O where the lock will be taken.
 */
import type { GatewayConfig } from '../config/schema';
import {
  AluaChange, AluaMode, AluaPortGroup, AluaState, AluaTransitionError, ImageProviderKind, LuAccess, LuAccessRegistry, TargetPortGroupInfo,
  targetTopology,
} from './access-state';
import type { HaManager } from './manager';
import type { Logger } from '../util/log';

export interface LockAccessOptions {
  readonly gateway: string;
  readonly provider: ImageProviderKind;
  readonly defaultMode: 'implicit' | 'explicit';
  readonly ha: HaManager;
  readonly log: Logger;
  /** IMPLICIT TRANSITION TIME and the bound of an explicit move (default 10 s). */
  readonly transitionTimeoutMs?: number;
}

class LockLuAccess implements LuAccess {
  private states = new Map<number, AluaState>();
  private base = new Map<number, AluaState>();
  private groupList: readonly TargetPortGroupInfo[] = [];
  private preferredGroup: number | undefined;
  private readonly listeners = new Set<(c: AluaChange) => void>();
  localGroup: number | undefined;
  /** An explicit transition to this gateway is running (its group reads transitioning). */
  private explicitRunning = false;

  constructor(
    private readonly control: LockAccessControl,
    readonly target: string,
    readonly disk: string,
    readonly mode: AluaMode,
  ) {}

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
    return this.mode !== 'active/active' && tpgId === this.preferredGroup;
  }

  onChange(listener: (change: AluaChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  refresh(config: GatewayConfig, reason: AluaChange['reason']): void {
    const topo = targetTopology(config, this.target);
    this.groupList = topo.groups;
    this.localGroup = topo.groupOf(this.control.gateway)?.id;
    const preferred = config.disks[this.disk]?.owner;
    const prefBefore = this.preferredGroup;
    const first = this.base.size === 0;
    this.preferredGroup = preferred === undefined ? undefined : topo.groupOf(preferred)?.id;
    const ha = this.control.options.ha;
    const holder = ha.managed(this.disk) ? ha.holder(this.disk) : preferred;
    const aoGroup = holder !== undefined ? topo.groupOf(holder)?.id : this.preferredGroup;
    const base = new Map<number, AluaState>();
    for (const g of topo.groups) {
      const s: AluaState = this.mode === 'active/active' || g.id === aoGroup ? 'active/optimized'
        : this.mode === 'implicit' ? 'active/non-optimized' : 'standby';
      base.set(g.id, s);
    }
    // Listeners hear of settled changes only; the transitioning overlay of an explicit move in
    // progress here is reported (RTPG, NOT READY) but raises no unit attention of its own.
    // A new preferred group (the administrator named another owner) is announced too.
    // This gateway is stopping for maintenance and another one serves the disk: its group is
    // unavailable (on this gateway), so ALUA initiators move their I/O before the sessions go.
    if (this.localGroup !== undefined && base.size > 1 && this.control.isLeaving(this.disk)) base.set(this.localGroup, 'unavailable');
    const changed = base.size !== this.base.size || [...base].some(([id, s]) => this.base.get(id) !== s)
      || (!first && prefBefore !== this.preferredGroup);
    this.base = base;
    this.states = new Map(base);
    if (this.explicitRunning && this.localGroup !== undefined && this.states.has(this.localGroup)) this.states.set(this.localGroup, 'transitioning');
    if (changed) for (const l of [...this.listeners]) l({ reason });
  }

  async activate(reason: 'implicit' | 'explicit', tpgId?: number): Promise<void> {
    const id = tpgId ?? this.localGroup;
    if (id === undefined) throw new AluaTransitionError(`this gateway is no portal of ${this.target}`);
    if (this.mode === 'active/active') return;
    const group = this.groupList.find((g) => g.id === id) as TargetPortGroupInfo | undefined;
    if (!group) throw new AluaTransitionError(`target port group ${id} does not exist`);
    const ha = this.control.options.ha;
    if (!ha.managed(this.disk)) throw new AluaTransitionError(`disk ${this.disk} has no image lock to move`);
    const local = id === this.localGroup;
    this.control.options.log.info({ target: this.target, disk: this.disk, to: group.gateway, reason }, 'ALUA transition: moving the image lock');
    try {
      if (local) {
        this.explicitRunning = reason === 'explicit';
        this.control.refreshOne(this, reason);
        await ha.activate(this.disk, reason);
      } else {
        await ha.moveTo(this.disk, group.gateway, this.control.transitionTimeoutMs);
      }
    } catch (e) {
      throw e instanceof AluaTransitionError ? e : new AluaTransitionError((e as Error).message);
    } finally {
      this.explicitRunning = false;
      this.control.refreshOne(this, reason);
    }
  }
}

export class LockAccessControl extends LuAccessRegistry<LockLuAccess> {
  private readonly unsubscribe: () => void;

  constructor(override readonly options: LockAccessOptions) {
    super(options);
    // The lock moved (here or elsewhere): the active/optimized group moves with it; every nexus
    // of the disk's LUs hears ASYMMETRIC ACCESS STATE CHANGED unless an initiator's I/O moved it
    // (implicit: states follow the I/O, scsi/alua.ts aluaChangeAnnounced).
    this.unsubscribe = options.ha.onHolderChange((disk, _holder, reason) => {
      if (!this.config) return;
      for (const a of this.lus.values()) if (a.disk === disk) a.refresh(this.config, reason);
    });
  }

  /** Disks whose local group reads unavailable because this gateway is leaving (planned stop). */
  private readonly leaving = new Set<string>();

  isLeaving(disk: string): boolean {
    return this.leaving.has(disk);
  }

  /**
   * A planned stop: this gateway's target port group becomes unavailable for `disks` (every
   * gateway's other groups keep their states) and every nexus of their LUs gets ASYMMETRIC
   * ACCESS STATE CHANGED, so a multipath initiator re-reads the states and moves its I/O to
   * another gateway while this one still serves it. Not undone: the process is stopping.
   */
  leave(disks: readonly string[]): void {
    for (const d of disks) this.leaving.add(d);
    if (!this.config) return;
    for (const a of this.lus.values()) if (this.leaving.has(a.disk)) a.refresh(this.config, 'config');
  }

  protected create(target: string, disk: string, mode: AluaMode): LockLuAccess {
    return new LockLuAccess(this, target, disk, mode);
  }

  close(): void {
    this.unsubscribe();
  }
}
