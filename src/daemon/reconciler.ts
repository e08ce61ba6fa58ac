/**
 * Turns each committed configuration into this gateway's running state: portals, targets, LUNs,
 * backstores, ACLs and controls — by difference, so that unrelated sessions never notice.
 *
 *   desired (config, this gateway's name)      running (this process)
 *   targets with portals[<me>]            ->   ScsiTarget + ConfiguredTarget in the catalog
 *   their disks, access per owner (src/ha) ->   one BlockDevice per disk (rw only when owner)
 *   disks -> lun_id                       ->   logical units (added / removed / replaced)
 *   listen addresses                      ->   portal servers
 *
 * A disk whose storage cannot be opened (image missing, still held by the previous owner) is
 * served in standby and retried on the next pass; apply() reports what is still pending.
 * Passes are serialized; a burst of commits collapses into one pass over the newest document.
 */
import type { Server } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { BlockDevice } from '../block/block-device';
import { DiskConfig, GatewayConfig, TargetConfig } from '../config/schema';
import type { HaManager } from '../ha/manager';
import { AccessState } from '../ha/ownership';
import { ConfigAccessControl, ImageProviderKind, LuAccess, targetTopology, transitionCause } from '../ha/access-state';
import { LockAccessControl } from '../ha/lock-access';
import { diskAccess, isActiveActive } from '../ha/active-active';
import type { ConfigStore } from '../config/store';
import { StandbyDevice } from '../ha/standby-device';
import { IscsiService } from '../iscsi/service';
import { SharedLus } from '../ha/lu-states';
import { LogicalUnitConfig, ScsiTarget } from '../scsi/scsi-target';
import { Asc } from '../scsi/sense';
import { aluaChangeAnnounced } from '../scsi/alua';
import { PortalAddress, formatAddress, listenPortal } from '../transport/portal';
import type { Logger } from '../util/log';
import { Backstores } from './backstores';
import { ConfiguredCatalog, ConfiguredTarget } from './catalog';
import { listenAddresses, targetPortals } from './portals';

interface OpenDisk {
  /** What the device was opened for: a change means reopen. */
  readonly signature: string;
  readonly device: BlockDevice;
  /** 'managed': the owner changes at run time (src/ha decides, the device follows). */
  readonly access: AccessState | 'managed';
}

interface RunningLun {
  readonly disk: string;
  readonly device: BlockDevice;
  readonly wwn: string;
  readonly controls: DiskConfig['controls'];
  readonly standby: boolean;
  readonly alua: LuAccess;
}

interface RunningTarget {
  readonly scsi: ScsiTarget;
  readonly node: ConfiguredTarget;
  readonly luns: Map<number, RunningLun>;
}

export interface ReconcilerOptions {
  readonly gateway: string;
  readonly dataDir: string;
  readonly service: IscsiService;
  readonly catalog: ConfiguredCatalog;
  readonly backstores: Backstores;
  readonly log: Logger;
  /** Servers bound before the first pass (explicit --portal, port 0 resolved), by "ip:port". */
  readonly preBound?: Map<string, Server>;
  /**
   * Run-time ownership (HA): image and file disks get one OwnedDevice whose owner follows the
   * image lock; the configured owner is only the preferred one, and ALUA states follow the lock
   * (src/ha/lock-access.ts). Without it the configured owner alone writes and the others stay
   * in standby (ALUA from the configuration, src/ha/access-state.ts).
   */
  readonly ha?: HaManager;
  /** ALUA (src/ha/access-state.ts): where ownership changes commit, the image provider, the default mode. */
  readonly alua?: {
    readonly store?: ConfigStore;
    readonly provider?: ImageProviderKind;
    readonly defaultMode?: 'implicit' | 'explicit';
    readonly transitionTimeoutMs?: number;
  };
}

export interface ApplyReport {
  readonly epoch: number;
  /** Problems that leave part of the config not applied (retried on the next pass). */
  readonly problems: readonly string[];
}

/**
 * Every target port of a target on every gateway, by RELATIVE TARGET PORT IDENTIFIER, as
 * the iSCSI layer names them ("<iqn>,t,0x<TPGT>", the TPGT being the port's identifier):
 * REGISTER AND MOVE may name a port of another gateway.
 */
export function targetPortDirectory(config: GatewayConfig, iqn: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const g of targetTopology(config, iqn).groups) {
    for (const p of g.targetPorts) out.set(p.relativeTargetPortId, `${iqn},t,0x${p.relativeTargetPortId.toString(16).padStart(4, '0')}`);
  }
  return out;
}

/** The unit attention of an access change: none for an implicit transition an initiator caused (scsi/alua.ts). */
function aluaUnitAttention(cause: string | undefined): Asc | 'none' {
  return aluaChangeAnnounced(cause ? { reason: 'implicit', initiator: cause } : { reason: 'config' }) ? Asc.AsymmetricAccessStateChanged : 'none';
}

function diskSignature(d: DiskConfig, access: AccessState | 'managed'): string {
  return JSON.stringify([d.backstore, d.pool, d.image, d.snapshot ?? '', d.path ?? '', d.size ?? 0, access]);
}

export class Reconciler {
  private readonly disks = new Map<string, OpenDisk>();
  /** One shared LU state (reservations, attentions, range locks) per disk, for every target. */
  private readonly sharedLus: SharedLus;
  private readonly targets = new Map<string, RunningTarget>();
  private readonly servers = new Map<string, Server>();
  private applied = -1;
  private lastConfig: GatewayConfig | undefined;
  private pending: GatewayConfig | undefined;
  private running: Promise<void> | undefined;
  private problems: string[] = [];
  /** Disks this gateway owns but could not open read-write in the last pass. */
  private ownedOpenFailures: Error[] = [];
  /** Targets the last pass could not apply (bad controls, a LUN the SCSI layer refused). */
  private targetFailures: Error[] = [];
  private readonly waiters = new Set<{ epoch: number; resolve: () => void }>();
  private stopped = false;
  /** ALUA states of every LU of this gateway (owner from the configuration). */
  readonly access: ConfigAccessControl | LockAccessControl;

  constructor(private readonly o: ReconcilerOptions) {
    for (const [k, s] of o.preBound ?? []) this.servers.set(k, s);
    this.sharedLus = new SharedLus(o.dataDir, o.gateway, o.log, o.alua?.store);
    this.access = o.ha ? new LockAccessControl({
      gateway: o.gateway,
      provider: o.alua?.provider ?? 'embedded',
      defaultMode: o.alua?.defaultMode ?? 'implicit',
      ha: o.ha,
      transitionTimeoutMs: o.alua?.transitionTimeoutMs,
      log: o.log,
    }) : new ConfigAccessControl({
      gateway: o.gateway,
      provider: o.alua?.provider ?? 'embedded',
      defaultMode: o.alua?.defaultMode ?? 'implicit',
      store: o.alua?.store,
      transitionTimeoutMs: o.alua?.transitionTimeoutMs,
      whenApplied: (epoch) => this.whenApplied(epoch),
      holdsWriter: (disk) => this.disks.get(disk)?.access === 'active',
      retry: () => this.retry(),
      settled: async () => {
        while (this.running) await this.running;
      },
      log: o.log,
    });
  }

  /** Epoch of the last document applied (possibly with problems: see lastProblems). */
  /** The running SCSI target device of each target this gateway serves (read-only view). */
  scsiTargets(): Map<string, ScsiTarget> {
    return new Map([...this.targets].map(([name, t]) => [name, t.scsi]));
  }

  appliedEpoch(): number {
    return this.applied;
  }

  /** Owned disks whose storage the last pass could not open for writing (held elsewhere, missing). */
  lastOwnedOpenFailures(): readonly Error[] {
    return this.ownedOpenFailures;
  }

  lastTargetFailures(): readonly Error[] {
    return this.targetFailures;
  }

  lastProblems(): readonly string[] {
    return this.problems;
  }

  config(): GatewayConfig | undefined {
    return this.lastConfig;
  }

  /** Disks this gateway holds open read-write. */
  activeDisks(): string[] {
    return [...this.disks.entries()].filter(([id, d]) => d.access === 'active' || (d.access === 'managed' && this.o.ha?.owned(id))).map(([id]) => id);
  }

  /** Every disk this gateway serves, whatever its access state. */
  servedDisks(): string[] {
    return [...this.disks.keys()];
  }

  /** Disk ids of the LUNs a target serves here. */
  targetDisks(iqn: string): string[] {
    return [...(this.targets.get(iqn)?.luns.values() ?? [])].map((l) => l.disk);
  }

  boundPortals(): PortalAddress[] {
    const out: PortalAddress[] = [];
    for (const s of this.servers.values()) {
      const a = s.address();
      if (a !== null && typeof a !== 'string') out.push({ host: a.address, port: a.port });
    }
    return out;
  }

  /** Resolve once a document with epoch >= `epoch` has been applied. */
  whenApplied(epoch: number): Promise<void> {
    if (this.applied >= epoch) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add({ epoch, resolve }));
  }

  /** Queue a document; passes run one at a time, always on the newest queued document. */
  submit(config: GatewayConfig): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.pending || config.epoch >= this.pending.epoch) this.pending = config;
    if (!this.running) {
      this.running = (async () => {
        try {
          while (this.pending && !this.stopped) {
            const next = this.pending;
            this.pending = undefined;
            await this.pass(next);
          }
        } finally {
          this.running = undefined;
        }
      })();
    }
    return this.running;
  }

  /** Run a pass now on the last document (retry of pending problems). */
  retry(): Promise<void> {
    if (this.lastConfig && this.problems.length > 0) return this.submit(this.lastConfig);
    return Promise.resolve();
  }

  private async pass(config: GatewayConfig): Promise<void> {
    const { gateway, log } = this.o;
    const problems: string[] = [];
    const served = Object.entries(config.targets).filter(([, t]) => t.portals[gateway] !== undefined);
    const servedNames = new Set(served.map(([n]) => n));

    // 1. Targets no longer served here go first (their sessions end: the target is gone).
    for (const [name, rt] of [...this.targets]) {
      if (servedNames.has(name)) continue;
      await this.removeTarget(name, rt, 'target removed from this gateway');
    }

    // 2. Backstores: open or reopen what the served targets map, in the access state of this gateway.
    const wanted = new Map<string, { disk: DiskConfig; access: AccessState }>();
    for (const [, t] of served) {
      for (const id of Object.keys(t.disks)) {
        const disk = config.disks[id];
        if (disk) wanted.set(id, { disk, access: diskAccess(config, gateway, id, this.o.alua?.provider) });
      }
    }
    const replaced = new Map<string, OpenDisk>();
    const ownedOpenFailures: Error[] = [];
    const targetFailures: Error[] = [];
    for (const [id, { disk, access }] of wanted) {
      const managedSig = diskSignature(disk, 'managed');
      const cur0 = this.disks.get(id);
      if (this.o.ha && cur0?.signature === managedSig) {
        // Named the owner by the administrator: the pass completes once the disk moved here.
        await this.o.ha.setPreferred(id, access === 'active');
        continue;
      }
      // Active/active disks (rbd on Ceph) have no owner to move: every gateway writes them.
      const parts = this.o.ha && !isActiveActive(disk, this.o.alua?.provider) ? await this.o.backstores.managedParts(id, disk).catch((e: Error) => {
        problems.push(`disk ${id}: ${e.message}`);
        return undefined;
      }) : undefined;
      if (parts && this.o.ha) {
        // The owner follows the image lock from now on: one device for good, the LU never changes.
        try {
          if (cur0) {
            await this.closeDevice(id, cur0);
            this.disks.delete(id);
          }
          const device = await this.o.ha.manage(id, parts.key, parts.view, parts.openRw, access === 'active', parts.viewReads);
          this.disks.set(id, { signature: managedSig, device, access: 'managed' });
          continue;
        } catch (e) {
          problems.push(`disk ${id}: ${(e as Error).message}`);
          if (access === 'active') ownedOpenFailures.push(e as Error);
          log.warn({ disk: id, err: e }, 'cannot serve the disk; serving it in standby for now');
          try {
            const device = await this.o.backstores.open(id, disk, 'standby');
            this.disks.set(id, { signature: `retry:${managedSig}`, device, access: 'standby' });
          } catch (e2) {
            problems.push(`disk ${id} (standby): ${(e2 as Error).message}`);
          }
          continue;
        }
      }
      const sig = diskSignature(disk, access);
      const cur = this.disks.get(id);
      if (cur && cur.signature === sig) continue;
      try {
        if (cur && cur.access === 'active' && access !== 'active') {
          // Giving up ownership: every LUN of the disk moves to a standby view, then the
          // writer closes (flushes, releases the image lock) for the new owner to take it.
          const view = await this.o.backstores.open(id, disk, 'standby');
          await this.swapDevice(id, view, true);
          this.disks.set(id, { signature: sig, device: view, access });
          await this.closeDevice(id, cur);
          continue;
        }
        const device = await this.o.backstores.open(id, disk, access);
        if (cur) replaced.set(id, cur);
        this.disks.set(id, { signature: sig, device, access });
      } catch (e) {
        problems.push(`disk ${id}: ${(e as Error).message}`);
        if (access === 'active') ownedOpenFailures.push(e as Error);
        log.warn({ disk: id, err: e }, 'cannot open the disk; serving it in standby for now');
        if (!cur && access === 'active') {
          // Serve the LUN in standby until the storage can be opened (next pass retries).
          try {
            const device = await this.o.backstores.open(id, disk, 'standby');
            this.disks.set(id, { signature: `retry:${sig}`, device, access: 'standby' });
          } catch (e2) {
            problems.push(`disk ${id} (standby): ${(e2 as Error).message}`);
          }
        }
      }
    }

    // ALUA states follow the storage actually opened (an owner that cannot open it yet is transitioning).
    this.access.update(config);

    // 3. Targets: create or update, LUNs by difference.
    for (const [name, t] of served) {
      try {
        await this.applyTarget(config, name, t);
      } catch (e) {
        problems.push(`target ${name}: ${(e as Error).message}`);
        targetFailures.push(e as Error);
        log.error({ target: name, err: e }, 'cannot apply the target');
      }
    }

    // 4. Close what no LUN uses any more (old devices of replaced LUNs, unmapped disks).
    for (const [id, d] of replaced) await this.closeDevice(id, d);
    for (const [id, d] of [...this.disks]) {
      if (wanted.has(id)) continue;
      this.disks.delete(id);
      await this.closeDevice(id, d);
      await this.sharedLus.release(id);
    }

    // 5. Portals: listen on new addresses, stop listening on removed ones (sessions stay).
    const addresses = listenAddresses(config, gateway);
    const want = new Set(addresses.map(formatAddress));
    for (const p of addresses) {
      const key = formatAddress(p);
      if (this.servers.has(key)) continue;
      try {
        this.servers.set(key, await listenPortal(p, (socket) => this.o.service.accept(socket)));
        log.info({ portal: key }, 'portal listening');
      } catch (e) {
        problems.push(`portal ${key}: ${(e as Error).message}`);
      }
    }
    for (const [key, s] of [...this.servers]) {
      if (want.has(key)) continue;
      s.close();
      this.servers.delete(key);
      log.info({ portal: key }, 'portal closed');
    }

    this.o.catalog.config = config;
    this.lastConfig = config;
    this.problems = problems;
    this.ownedOpenFailures = ownedOpenFailures;
    this.targetFailures = targetFailures;
    this.applied = config.epoch;
    for (const w of [...this.waiters]) {
      if (w.epoch <= config.epoch) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
    log.info({ epoch: config.epoch, targets: served.length, disks: wanted.size, problems: problems.length }, 'configuration applied');
  }

  /** Point every LUN of a disk at a new device (used when ownership moves away). */
  private async swapDevice(id: string, device: BlockDevice, standby: boolean): Promise<void> {
    for (const rt of this.targets.values()) {
      for (const [lun, l] of rt.luns) {
        if (l.disk !== id) continue;
        const next: RunningLun = { ...l, device, standby };
        // The state change itself was announced by the LU's ALUA listener (and is carried over).
        await rt.scsi.replaceLogicalUnit(await this.luConfig(lun, next), 'none');
        rt.luns.set(lun, next);
      }
    }
  }

  private async luConfig(lun: number, l: RunningLun): Promise<LogicalUnitConfig> {
    // The same state object for every target mapping the disk; shared with the other gateways.
    const shared = await this.sharedLus.get(l.disk, l.wwn);
    return {
      lun,
      device: l.device,
      wwn: l.wwn,
      name: l.disk,
      settings: l.controls,
      luState: shared.luState,
      locks: shared.locks,
      standby: l.standby,
      alua: l.alua,
      standbyReads: l.standby && l.device instanceof StandbyDevice && l.device.servesReads,
    };
  }

  private async applyTarget(config: GatewayConfig, name: string, t: TargetConfig): Promise<void> {
    const desired = new Map<number, RunningLun>();
    for (const [id, { lun_id }] of Object.entries(t.disks)) {
      const disk = config.disks[id];
      const open = this.disks.get(id);
      if (!disk || !open) continue;
      // A managed disk's LU accepts media access on every path its ALUA state allows (implicit:
      // the first command on a non-owner path moves the lock here inside its OwnedDevice).
      desired.set(lun_id, {
        disk: id, device: open.device, wwn: disk.wwn, controls: disk.controls, standby: open.access === 'standby',
        alua: this.access.access(config, name, id),
      });
    }
    const portals = targetPortals(config, name);
    const local = { gateway: this.o.gateway, topology: targetTopology(config, name) };
    let rt = this.targets.get(name);
    if (!rt) {
      const luns: LogicalUnitConfig[] = [];
      for (const [lun, l] of desired) luns.push(await this.luConfig(lun, l));
      const scsi = new ScsiTarget({ targetName: name, logicalUnits: luns, log: this.o.log.child({ target: name }) });
      scsi.setTargetPorts(targetPortDirectory(config, name));
      const node = new ConfiguredTarget(name, t, scsi, portals, local);
      rt = { scsi, node, luns: new Map(desired) };
      this.targets.set(name, rt);
      this.o.catalog.add(node);
      this.o.log.info({ target: name, luns: desired.size }, 'target added');
      return;
    }
    // Controls and ACL first (validated: a bad control leaves the running target as it was).
    rt.node.update(t, portals, local);
    rt.scsi.setTargetPorts(targetPortDirectory(config, name));
    for (const [lun, l] of [...rt.luns]) {
      const want = desired.get(lun);
      if (!want) {
        await rt.scsi.removeLogicalUnit(lun);
        rt.luns.delete(lun);
        continue;
      }
      if (want.disk === l.disk && want.device === l.device && want.wwn === l.wwn && want.standby === l.standby
        && want.alua === l.alua && isDeepStrictEqual(want.controls, l.controls)) continue;
      if (want.disk !== l.disk || want.wwn !== l.wwn) {
        // A different disk behind the same LUN number: remove and add (REPORTED LUNS DATA HAS CHANGED).
        await rt.scsi.removeLogicalUnit(lun);
        rt.luns.delete(lun);
        rt.scsi.addLogicalUnit(await this.luConfig(lun, want));
        rt.luns.set(lun, want);
        continue;
      }
      // Same disk: new controls, backstore or access state reach logged-in initiators as a UA.
      // A new ALUA mode is a state change of its own; a new device for the same states was
      // announced by the LU's ALUA listener already (its pending UAs carry over).
      const ua = want.alua !== l.alua ? aluaUnitAttention(transitionCause(config, want.disk)) : want.standby !== l.standby ? 'none' : Asc.ModeParametersChanged;
      await rt.scsi.replaceLogicalUnit(await this.luConfig(lun, want), ua);
      rt.luns.set(lun, want);
    }
    for (const [lun, l] of desired) {
      if (rt.luns.has(lun)) continue;
      rt.scsi.addLogicalUnit(await this.luConfig(lun, l));
      rt.luns.set(lun, l);
    }
    // Sessions of initiators the ACL no longer admits end now (a deleted client).
    for (const s of this.o.service.sessions.ofTarget(name)) {
      if (!rt.node.allows(s.params.initiatorName)) await s.terminate('initiator removed from the target ACL');
    }
  }

  private async removeTarget(name: string, rt: RunningTarget, reason: string): Promise<void> {
    this.o.catalog.remove(name);
    await this.o.service.closeTarget(name, reason);
    await rt.scsi.close();
    this.targets.delete(name);
    this.o.log.info({ target: name }, 'target removed');
  }

  private async closeDevice(id: string, open: OpenDisk): Promise<void> {
    try {
      if (open.access === 'managed' && this.o.ha) await this.o.ha.unmanage(id);
      else await open.device.close();
    } catch (e) {
      this.o.log.error({ err: e, disk: id }, 'closing backstore failed');
    }
  }

  /** Stop listening (existing connections stay for the caller to log out). */
  closePortals(): void {
    for (const s of this.servers.values()) s.close();
    this.servers.clear();
  }

  /** After the sessions are gone: detach LUs, flush and close backstores. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.running;
    for (const rt of this.targets.values()) await rt.scsi.close();
    this.targets.clear();
    for (const [id, d] of this.disks) await this.closeDevice(id, d);
    this.disks.clear();
    await this.sharedLus.close();
  }
}
