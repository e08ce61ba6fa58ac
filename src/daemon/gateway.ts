/**
 * The gateway daemon: configuration -> backstores -> SCSI target devices -> iSCSI service ->
 * portals. Owns start-up order and the clean shutdown (initiators logged out, backstores
 * flushed and closed).
 */
import type { Server } from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../block/block-device';
import { ConfigStore, FileConfigStore } from '../config/config-store';
import { configPath } from '../config/paths';
import { GatewayConfig } from '../config/schema';
import { IscsiService } from '../iscsi/service';
import { LogicalUnitConfig, ScsiTarget } from '../scsi/scsi-target';
import { openAptplReservationStore } from '../scsi/aptpl-file';
import type { ReservationStore } from '../scsi/reservations';
import { PortalAddress, formatAddress, isLoopback, listenPortal } from '../transport/portal';
import type { Logger } from '../util/log';
import { Backstores } from './backstores';
import { ConfiguredCatalog, ConfiguredTarget } from './catalog';
import { DEMO_TARGET, createDemoImage, demoConfig } from './demo';

export interface GatewayOptions {
  readonly dataDir: string;
  readonly portals: readonly PortalAddress[];
  readonly log: Logger;
  /** Seconds initiators get to log out on shutdown. */
  readonly shutdownGrace?: number;
}

export class Gateway {
  private readonly servers: Server[] = [];
  private readonly devices = new Map<string, BlockDevice>();
  /** Persistent reservations per disk (shared by every target that maps it). */
  private readonly reservations = new Map<string, ReservationStore>();
  private readonly scsiTargets = new Map<string, ScsiTarget>();
  private readonly catalog: ConfiguredCatalog;
  private readonly backstores: Backstores;
  readonly service: IscsiService;
  readonly configStore: ConfigStore;
  config: GatewayConfig | undefined;
  /** Set when this start created the demo target. */
  createdDemo = false;
  private stopping: Promise<void> | undefined;

  private constructor(private readonly options: GatewayOptions) {
    this.catalog = new ConfiguredCatalog(options.portals);
    this.service = new IscsiService(this.catalog, options.log);
    this.configStore = new FileConfigStore(configPath(options.dataDir));
    this.backstores = new Backstores(options.dataDir, options.log);
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(options);
    try {
      await gw.load();
      await gw.listen();
    } catch (e) {
      await gw.stop();
      throw e;
    }
    return gw;
  }

  private async load(): Promise<void> {
    const { dataDir, log, portals } = this.options;
    await fs.promises.mkdir(dataDir, { recursive: true, mode: 0o700 });
    let config = await this.configStore.load();
    if (!config) {
      if (portals.every((p) => isLoopback(p.host))) {
        await createDemoImage(await this.backstores.imageStore());
        config = await this.configStore.save(demoConfig());
        this.createdDemo = true;
        log.info({ target: DEMO_TARGET }, 'empty data directory: created the demo target');
      } else {
        config = await this.configStore.save({ ...demoConfig(), disks: {}, targets: {} });
        log.info('empty data directory: no targets configured (the demo target is only created on loopback-only portals)');
      }
    }
    this.config = config;
    for (const [name, target] of Object.entries(config.targets)) {
      const luns: LogicalUnitConfig[] = [];
      for (const [diskId, { lun_id }] of Object.entries(target.disks)) {
        const disk = config.disks[diskId];
        if (!disk) throw new Error(`target ${name} maps unknown disk ${diskId}`);
        let device = this.devices.get(diskId);
        if (!device) {
          device = await this.backstores.open(disk);
          this.devices.set(diskId, device);
        }
        let reservations = this.reservations.get(diskId);
        if (!reservations) {
          // APTPL state is kept in the data dir under the disk's unit serial number.
          reservations = await openAptplReservationStore(path.join(dataDir, 'pr'), disk.wwn);
          this.reservations.set(diskId, reservations);
        }
        luns.push({ lun: lun_id, device, wwn: disk.wwn, name: diskId, settings: disk.controls, reservations });
      }
      const scsi = new ScsiTarget({ targetName: name, logicalUnits: luns, log: log.child({ target: name }) });
      this.scsiTargets.set(name, scsi);
      this.catalog.add(new ConfiguredTarget(name, target, scsi));
    }
  }

  private async listen(): Promise<void> {
    for (const portal of this.options.portals) {
      try {
        this.servers.push(await listenPortal(portal, (socket) => this.service.accept(socket)));
      } catch (e) {
        throw new Error(`cannot listen on ${formatAddress(portal)}: ${(e as Error).message}`, { cause: e });
      }
      this.options.log.info({ portal: formatAddress(portal) }, 'portal listening');
    }
  }

  /** The SCSI target devices by target name (metrics, status). */
  targets(): ReadonlyMap<string, ScsiTarget> {
    return this.scsiTargets;
  }

  /** The portal addresses actually bound (resolves port 0 to the real port). */
  boundPortals(): PortalAddress[] {
    return this.servers.map((s) => {
      const a = s.address();
      if (a === null || typeof a === 'string') throw new Error('portal has no address');
      return { host: a.address, port: a.port };
    });
  }

  /** Clean shutdown: stop accepting, log initiators out, flush and close backstores. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        for (const s of this.servers) s.close();
        await this.service.shutdown((this.options.shutdownGrace ?? 3) * 1000);
        for (const t of this.scsiTargets.values()) await t.close();
        for (const [id, d] of this.devices) {
          try {
            await d.close();
          } catch (e) {
            this.options.log.error({ err: e, disk: id }, 'closing backstore failed');
          }
        }
        await this.backstores.close();
      })();
    }
    return this.stopping;
  }
}
