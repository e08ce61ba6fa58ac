/**
 * EXTENDED COPY (VMware full copy) between LUNs of the gateway, issued with the test
 * initiator and checked with QEMU's iSCSI driver (qemu-io) on source and destination:
 * within one target (LUN 0 -> LUN 1) and across targets, holes copied as zeros (and kept
 * deallocated on the thin destination), copy targets matched against VPD 83h designators.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import {
  MiB, assertGood, assertSense, dataDirWith, extendedCopy, getLbaStatus, inquiryVpd, lbaStatusDescriptors, naaOf, qemuIo, session,
} from '../helpers/scsi';

const T1 = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:vmware-a';
const T2 = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:vmware-b';
const THIN = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1 };
const BS = 512;

/** The source's content: [offset, length, byte]; everything else is a hole. */
const SOURCE: Array<[number, number, number]> = [
  [0, 1 * MiB, 0x11],
  [8 * MiB - 64 * 1024, 3 * MiB, 0x22], // crosses the copy manager's 8 MiB chunk boundary
  [40 * MiB, 4096, 0x33],
];

function verify(ranges: Array<[number, number, number]>): string[] {
  return ranges.map(([o, l, p]) => `read -P 0x${p.toString(16)} ${o} ${l}`);
}

describe('EXTENDED COPY between LUNs, checked with qemu-io', () => {
  let daemon: Daemon;
  let a: TestInitiator;
  let url: (target: string, lun: number) => string;
  before(async () => {
    const { dir } = await dataDirWith(
      [
        { id: 'rbd/golden', size: 64 * MiB, controls: THIN },
        { id: 'rbd/clone', size: 64 * MiB, controls: THIN },
        { id: 'rbd/other', size: 16 * MiB, controls: THIN },
      ],
      [{ iqn: T1, luns: { 'rbd/golden': 0, 'rbd/clone': 1 } }, { iqn: T2, luns: { 'rbd/other': 0 } }],
    );
    daemon = await Daemon.start({ dataDir: dir });
    url = (target, lun) => `iscsi://127.0.0.1:${daemon.port}/${target}/${lun}`;
    await qemuIo(url(T1, 0), SOURCE.map(([o, l, p]) => `write -P 0x${p.toString(16)} ${o} ${l}`));
    await qemuIo(url(T1, 1), ['write -P 0xee 0 64M']);
    await qemuIo(url(T2, 0), ['write -P 0xee 0 16M']);
    a = await session(daemon.port, T1, { luns: [0, 1] });
  });
  after(async () => {
    a?.close();
    await daemon.stop();
  });

  it('advertises the copy manager: Third-party Copy VPD page, 3PC', async () => {
    const std = await a.scsi(Buffer.from([0x12, 0, 0, 0, 36, 0]), { read: 36 });
    assert.equal(std.data[5] & 0x08, 0x08, '3PC');
    const tpc = await a.scsi(inquiryVpd(0x8f, 1024), { read: 1024 });
    assertGood(tpc);
    assert.equal(tpc.data[1], 0x8f);
  });

  it('copies 48 MiB from LUN 0 to LUN 1: data, holes as zeros (deallocated), nothing past the range', async () => {
    const src = await naaOf(a, 0);
    const dst = await naaOf(a, 1);
    const blocks = (48 * MiB) / BS;
    const x = extendedCopy(1, [src, dst], [
      { src: 0, dst: 1, blocks: 65535, srcLba: 0, dstLba: 0 },
      { src: 0, dst: 1, blocks: blocks - 65535, srcLba: 65535, dstLba: 65535 },
    ]);
    assertGood(await a.scsi(x.cdb, { write: x.data, immediate: x.data.length }), 'EXTENDED COPY');
    const out = await qemuIo(url(T1, 1), [
      ...verify(SOURCE),
      'read -P 0 1M 6M', // a hole of the source
      'read -P 0 12M 28M',
      'read -P 0xee 48M 16M', // beyond the copied range: untouched
    ]);
    assert.doesNotMatch(out, /Pattern verification failed|error/i, out);
    const back = await qemuIo(url(T1, 0), verify(SOURCE));
    assert.doesNotMatch(back, /Pattern verification failed|error/i, 'the source is unchanged');
    // The copied holes stay holes on the thin destination.
    const st = await a.scsi(getLbaStatus((20 * MiB) / BS), { read: 4096, lun: 1 });
    assertGood(st);
    const [first] = lbaStatusDescriptors(st.data);
    assert.equal(first[0], (20 * MiB) / BS);
    assert.equal(first[2], 1, 'deallocated');
  });

  it('copies to a LUN of another target, found by its NAA designator', async () => {
    const b = await session(daemon.port, T2);
    let other: Buffer;
    try {
      other = await naaOf(b, 0);
    } finally {
      b.close();
    }
    const x = extendedCopy(2, [await naaOf(a, 0), other], [
      { src: 0, dst: 1, blocks: (4 * MiB) / BS, srcLba: (8 * MiB - 64 * 1024) / BS, dstLba: (1 * MiB) / BS },
    ]);
    assertGood(await a.scsi(x.cdb, { write: x.data, immediate: x.data.length }), 'EXTENDED COPY across targets');
    const out = await qemuIo(url(T2, 0), ['read -P 0xee 0 1M', 'read -P 0x22 1M 3M', 'read -P 0 4M 1M', 'read -P 0xee 5M 11M']);
    assert.doesNotMatch(out, /Pattern verification failed|error/i, out);
  });

  it('an unknown copy target is COPY ABORTED / UNREACHABLE COPY TARGET', async () => {
    const bogus = Buffer.from('3fffffffffffffff', 'hex');
    const x = extendedCopy(3, [await naaOf(a, 0), bogus], [{ src: 0, dst: 1, blocks: 8, srcLba: 0, dstLba: 0 }]);
    assertSense(await a.scsi(x.cdb, { write: x.data, immediate: x.data.length }), 0xa, 0x0804);
  });
});
