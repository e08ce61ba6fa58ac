/**
 * Thin provisioning through the real daemon, for a store image and a sparse file: UNMAP and
 * WRITE SAME with UNMAP -> GET LBA STATUS reports the blocks deallocated -> the space is
 * really freed on disk (stat blocks of the image's data file / the file) and the blocks read
 * back as zeros. Also what the LU advertises (READ CAPACITY(16), VPD B0/B2) and a read-only
 * snapshot export: WP in MODE SENSE, DATA PROTECT for writes and UNMAP, holes still reported.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { storeRoot } from '../../src/config/paths';
import { ImageStore } from '../../src/store';
import { Daemon } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import {
  MiB, assertGood, assertSense, cdb10, cdb16, dataDirWith, getLbaStatus, inquiryVpd, lbaStatusDescriptors, qemuIo, session, unmap, write10,
} from '../helpers/scsi';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:thin';
const BS = 512;
const THIN = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1, max_unmap_lba_count: 65536, max_unmap_block_desc_count: 16, max_write_same_len: 65536 };
const blocks = (bytes: number): number => bytes / BS;

describe('thin provisioning: UNMAP -> GET LBA STATUS -> space freed', () => {
  let daemon: Daemon;
  let dir: string;
  let i: TestInitiator;
  const url = (lun: number) => `iscsi://127.0.0.1:${daemon.port}/${IQN}/${lun}`;

  /** Bytes allocated on disk for a LUN's data: the store image's head file, or the sparse file. */
  async function allocated(lun: number): Promise<number> {
    if (lun === 1) return fs.statSync(path.join(dir, 'disks', 'thin.img')).blocks * 512;
    const store = await ImageStore.open(storeRoot(dir));
    try {
      const head = (await store.diskUsage({ pool: 'rbd', image: 'thin' })).find((u) => u.snapshot === undefined);
      return head!.used;
    } finally {
      await store.close();
    }
  }

  async function status(lun: number, lba: number): Promise<Array<[number, number, number]>> {
    const r = await i.scsi(getLbaStatus(lba), { read: 4096, lun });
    assertGood(r, 'GET LBA STATUS');
    return lbaStatusDescriptors(r.data);
  }

  before(async () => {
    ({ dir } = await dataDirWith(
      [
        { id: 'rbd/thin', size: 256 * MiB, controls: THIN },
        { id: 'disks/thin.img', backstore: 'file', size: 256 * MiB, controls: THIN },
        { id: 'rbd/base', size: 64 * MiB, controls: THIN },
        { id: 'rbd/base', snapshot: 'gold', size: 64 * MiB, controls: THIN },
      ],
      [{ iqn: IQN, luns: { 'rbd/thin': 0, 'disks/thin.img': 1, 'rbd/base': 2, 'rbd/base@gold': 3 } }],
      async (store) => {
        const d = await store.openImage('rbd/base');
        await d.write(0, Buffer.alloc(4 * MiB, 0x77));
        await d.close();
      },
    ));
    daemon = await Daemon.start({ dataDir: dir });
    i = await session(daemon.port, IQN, { luns: [0, 1, 2, 3] });
  });
  after(async () => {
    i?.close();
    await daemon.stop();
  });

  it('advertises thin provisioning: LBPME/LBPRZ, VPD B2 (thin, LBPU/LBPWS/LBPWS10/LBPRZ), B0 limits', async () => {
    for (const lun of [0, 1]) {
      const rc16 = await i.scsi(cdb16(0x9e, 0, 32, 0x10), { read: 32, lun });
      assert.equal(rc16.data[14] & 0xc0, 0xc0, 'LBPME LBPRZ');
      const b2 = (await i.scsi(inquiryVpd(0xb2, 8), { read: 8, lun })).data;
      assert.equal(b2[5], 0x80 | 0x40 | 0x20 | 0x04);
      assert.equal(b2[6] & 0x07, 0x02, 'provisioning type thin');
      const b0 = (await i.scsi(inquiryVpd(0xb0, 64), { read: 64, lun })).data;
      assert.equal(b0.readUInt32BE(20), 65536, 'MAXIMUM UNMAP LBA COUNT');
      assert.equal(b0.readUInt32BE(24), 16, 'MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT');
    }
  });

  for (const [lun, what] of [[0, 'store image'], [1, 'sparse file']] as const) {
    it(`${what}: UNMAP and WRITE SAME (UNMAP, NDOB) free the space; zeros are read back`, async () => {
      await qemuIo(url(lun), ['write -P 0xab 0 64M']);
      assertGood(await i.scsi(cdb10(0x35, 0, 0), { lun }), 'SYNCHRONIZE CACHE');
      const full = await allocated(lun);
      assert.ok(full >= 64 * MiB, `64 MiB allocated (${full})`);
      assert.deepEqual((await status(lun, 0))[0], [0, blocks(64 * MiB), 0], 'mapped');

      // UNMAP the first 32 MiB with two descriptors.
      const u = unmap([[0, blocks(16 * MiB)], [blocks(16 * MiB), blocks(16 * MiB)]]);
      assertGood(await i.scsi(u.cdb, { write: u.data, immediate: u.data.length, lun }), 'UNMAP');
      assert.deepEqual((await status(lun, 0)).slice(0, 2), [[0, blocks(32 * MiB), 1], [blocks(32 * MiB), blocks(32 * MiB), 0]]);
      const afterUnmap = await allocated(lun);
      assert.ok(full - afterUnmap >= 31 * MiB, `UNMAP freed ${(full - afterUnmap) / MiB} MiB`);

      // WRITE SAME (16) with UNMAP over the next 16 MiB; WRITE SAME (16) UNMAP+NDOB over 8 MiB.
      assertGood(await i.scsi(cdb16(0x93, blocks(32 * MiB), blocks(16 * MiB), 0x08), { write: Buffer.alloc(BS), immediate: BS, lun }));
      assertGood(await i.scsi(cdb16(0x93, blocks(48 * MiB), blocks(8 * MiB), 0x09), { lun }), 'WRITE SAME NDOB');
      assert.deepEqual((await status(lun, 0)).slice(0, 2), [[0, blocks(56 * MiB), 1], [blocks(56 * MiB), blocks(8 * MiB), 0]]);
      const afterWs = await allocated(lun);
      assert.ok(afterUnmap - afterWs >= 23 * MiB, `WRITE SAME UNMAP freed ${(afterUnmap - afterWs) / MiB} MiB`);

      // WRITE SAME of zeros without UNMAP provisions the blocks (they stay mapped, read zeros).
      assertGood(await i.scsi(cdb10(0x41, blocks(64 * MiB), blocks(4 * MiB)), { write: Buffer.alloc(BS), immediate: BS, lun }));
      assert.equal((await status(lun, blocks(64 * MiB)))[0][2], 0, 'zeros written without UNMAP stay mapped');

      const out = await qemuIo(url(lun), ['read -P 0 0 56M', 'read -P 0xab 56M 8M', 'read -P 0 64M 4M']);
      assert.doesNotMatch(out, /Pattern verification failed/);
    });
  }

  it('refuses what it does not do: UNMAP ANCHOR, limits beyond VPD B0', async () => {
    const u = unmap([[0, 8]]);
    u.cdb[1] = 0x01; // ANCHOR: ANC_SUP=0
    assertSense(await i.scsi(u.cdb, { write: u.data, immediate: u.data.length }), 0x5, 0x2400);
    const tooMany = unmap([[0, 65537]]);
    assertSense(await i.scsi(tooMany.cdb, { write: tooMany.data, immediate: tooMany.data.length }), 0x5, 0x2600);
    const tooLong = cdb16(0x93, 0, 65537, 0x08);
    assertSense(await i.scsi(tooLong, { write: Buffer.alloc(BS), immediate: BS }), 0x5, 0x2400);
  });

  it('a snapshot exported read-only: WP, DATA PROTECT for writes and UNMAP, holes still reported', async () => {
    const ms = await i.scsi(Buffer.from([0x1a, 0x08, 0x3f, 0, 255, 0]), { read: 255, lun: 3 });
    assert.equal(ms.data[2] & 0x80, 0x80, 'MODE SENSE WP');
    const head = await i.scsi(Buffer.from([0x1a, 0x08, 0x3f, 0, 255, 0]), { read: 255, lun: 2 });
    assert.equal(head.data[2] & 0x80, 0, 'the image head is writable');
    assertSense(await i.scsi(write10(0, 1), { write: Buffer.alloc(BS), lun: 3 }), 0x7, 0x2700);
    const u = unmap([[0, 8]]);
    assertSense(await i.scsi(u.cdb, { write: u.data, immediate: u.data.length, lun: 3 }), 0x7, 0x2700);
    assertSense(await i.scsi(cdb16(0x93, 0, 8, 0x08), { write: Buffer.alloc(BS), immediate: BS, lun: 3 }), 0x7, 0x2700);
    assert.deepEqual((await status(3, 0)).slice(0, 2), [[0, blocks(4 * MiB), 0], [blocks(4 * MiB), blocks(60 * MiB), 1]]);
    // Writing the head does not change the snapshot.
    await qemuIo(url(2), ['write -P 0x99 0 1M']);
    const out = await qemuIo(url(3), ['read -P 0x77 0 4M', 'read -P 0 4M 1M'], { readOnly: true });
    assert.doesNotMatch(out, /Pattern verification failed/);
  });
});
