/**
 * One logical-unit state per image inside a gateway: every target (and every portal) that
 * maps a disk gets the same LuStateStore and the same range locks, so reservations, unit
 * attentions and COMPARE AND WRITE serialization hold across targets and ports; the store
 * itself is shared with the other gateways: a RADOS object per LU in the configuration's pool
 * when the configuration is in RADOS (Ceph: gateways on different hosts), else a file in the
 * data dir (the embedded store: gateway processes of one host).
 */
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { RangeLocks } from '../scsi/range-lock';
import type { LuStateStore } from '../scsi/lu-state';
import type { ConfigStore } from '../config/store';
import { RadosConfigStore } from '../config/rados-store';
import { RadosObject } from '../ceph/rados-object';
import type { Logger } from '../util/log';
import { FileLuStateStore } from './lu-state-file';
import { RadosLuStateStore, luStateObjectName } from './lu-state-rados';

export interface SharedLu {
  readonly luState: LuStateStore;
  readonly locks: RangeLocks;
}

interface Entry extends SharedLu {
  readonly wwn: string;
  readonly luState: FileLuStateStore | RadosLuStateStore;
}

/** Directory of the shared LU state files inside a data dir. */
export function luStateDir(dataDir: string): string {
  return path.join(dataDir, 'lu-state');
}

/** A watcher name unique to this process: "<gateway>.<pid>.<random>", file-name safe. */
export function luStateInstance(gateway: string): string {
  const safe = gateway.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60) || 'gateway';
  return `${safe}.${process.pid}.${randomBytes(3).toString('hex')}`;
}

export class SharedLus {
  private readonly byDisk = new Map<string, Entry>();
  private readonly opening = new Map<string, Promise<Entry>>();
  readonly instance: string;

  /** `config`: the configuration store; a RADOS one puts the LU states beside it. */
  constructor(private readonly dataDir: string, gateway: string, private readonly log: Logger, private readonly config?: ConfigStore) {
    this.instance = luStateInstance(gateway);
  }

  /** Where the LU states live: "rados:<pool>" or the data dir's directory. */
  get location(): string {
    return this.config instanceof RadosConfigStore ? `rados:${this.config.obj.pool}` : luStateDir(this.dataDir);
  }

  private open(wwn: string): Promise<FileLuStateStore | RadosLuStateStore> {
    const legacyAptplDir = path.join(this.dataDir, 'pr');
    if (this.config instanceof RadosConfigStore) {
      const cfg = this.config.obj;
      const obj = new RadosObject(cfg.ioCtx, cfg.pool, luStateObjectName(wwn));
      const legacyStateFile = path.join(luStateDir(this.dataDir), `${wwn}.json`);
      return RadosLuStateStore.open({ obj, wwn, instance: this.instance, log: this.log, legacyAptplDir, legacyStateFile });
    }
    return FileLuStateStore.open({ dir: luStateDir(this.dataDir), wwn, instance: this.instance, log: this.log, legacyAptplDir });
  }

  /** The shared state of a disk (opened on first use; a new unit serial reopens it). */
  async get(diskId: string, wwn: string): Promise<SharedLu> {
    const cur = this.byDisk.get(diskId);
    if (cur && cur.wwn === wwn) return cur;
    if (cur) await this.release(diskId);
    let p = this.opening.get(diskId);
    if (!p) {
      p = (async () => {
        const luState = await this.open(wwn);
        const e: Entry = { wwn, luState, locks: new RangeLocks() };
        this.byDisk.set(diskId, e);
        return e;
      })();
      this.opening.set(diskId, p);
      p.then(() => this.opening.delete(diskId), () => this.opening.delete(diskId));
    }
    return p;
  }

  /** The disk is no longer served here: stop watching its state (it stays for the others). */
  async release(diskId: string): Promise<void> {
    const e = this.byDisk.get(diskId);
    if (!e) return;
    this.byDisk.delete(diskId);
    await e.luState.close();
  }

  async close(): Promise<void> {
    for (const id of [...this.byDisk.keys()]) await this.release(id);
  }
}
