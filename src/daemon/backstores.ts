/**
 * Opens the block device behind a configured disk. One place that knows every backstore
 * kind; the SCSI layer only ever sees the BlockDevice interface.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../block/block-device';
import { FileBackstore } from '../block/file-backstore';
import { NullBackstore } from '../block/null-backstore';
import { storeRoot } from '../config/paths';
import { DiskConfig } from '../config/schema';
import { ImageStore } from '../store';
import type { Logger } from '../util/log';

export class Backstores {
  private store: ImageStore | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  /** The embedded image store of this data dir (opened on first use). */
  async imageStore(): Promise<ImageStore> {
    if (!this.store) {
      this.store = await ImageStore.open(storeRoot(this.dataDir), {
        client: `iscsi-gateway@${os.hostname()}`,
        logger: this.log.child({ component: 'store' }),
      });
    }
    return this.store;
  }

  async open(disk: DiskConfig): Promise<BlockDevice> {
    switch (disk.backstore) {
      case 'file': {
        const file = path.resolve(this.dataDir, disk.path!);
        await fs.promises.mkdir(path.dirname(file), { recursive: true });
        return FileBackstore.open({ path: file, createSize: disk.size });
      }
      case 'store': {
        const store = await this.imageStore();
        // A snapshot is exported read-only; the head is opened with the exclusive lock so a
        // second gateway cannot write the same image behind our back.
        return store.openImage(`${disk.pool}/${disk.image}`, disk.snapshot ? { snapshot: disk.snapshot } : {});
      }
      case 'null':
        this.log.warn({ wwn: disk.wwn, size: disk.size }, 'null backstore: reads return zeros and writes are discarded');
        return new NullBackstore({ size: disk.size!, name: `null:${disk.wwn}` });
    }
  }

  async close(): Promise<void> {
    await this.store?.close();
    this.store = undefined;
  }
}
