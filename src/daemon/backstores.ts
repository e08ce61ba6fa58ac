/**
 * Opens the block device behind a configured disk. One place that knows every backstore
 * kind; the SCSI layer only ever sees the BlockDevice interface.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../block/block-device';
import { FileBackstore } from '../block/file-backstore';
import { DiskConfig } from '../config/schema';

export async function openDisk(dataDir: string, disk: DiskConfig): Promise<BlockDevice> {
  switch (disk.backstore) {
    case 'file': {
      const file = path.resolve(dataDir, disk.path!);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      return FileBackstore.open({ path: file, createSize: disk.size });
    }
    case 'store':
      throw new Error(`disk ${disk.pool}/${disk.image}: the embedded image store is not available in this build`);
  }
}
