/**
 * The seed's disk settings (ceph-iscsi-reference.md §4.3), each observed from an initiator
 * in both states. One daemon, one target, one LUN per settings profile:
 *   LUN 0  the defaults
 *   LUN 1  block_size 4096 and most switches inverted (thin, no 3PC/CAW/DPO/PR, SANITIZE allowed, ...)
 *   LUN 2  FUA writes off, UA_INTLCK_CTRL 10b, PR without ISIDs, forced APTPL, thin without LBPRZ
 *   LUN 3  UA_INTLCK_CTRL 11b
 * emulate_fua_read only decides whether a READ with FUA writes the volatile cache back
 * first, which no initiator can observe; its effect is covered by a unit test.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import {
  GOOD, MiB, RESERVATION_CONFLICT, assertGood, assertSense, cdb10, cdb16, compareAndWrite, dataDirWith, extendedCopy, inquiryVpd,
  prIn, prOut, read10, session, unmap, write10,
} from '../helpers/scsi';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:settings';
const TASK_SET_FULL = 0x28;
const INVALID_OPCODE = 0x2000;
const INVALID_FIELD_IN_CDB = 0x2400;

const PROFILES: Record<string, Record<string, number>> = {
  'rbd/defaults': {},
  'rbd/inverted': {
    block_size: 4096, emulate_3pc: 0, emulate_caw: 0, emulate_dpo: 0, emulate_model_alias: 1, emulate_pr: 0,
    emulate_rest_reord: 0, emulate_tas: 0, emulate_tpu: 1, emulate_tpws: 1, emulate_write_cache: 1, is_nonrot: 0,
    max_unmap_block_desc_count: 4, max_unmap_lba_count: 2048, max_write_same_len: 1024, optimal_sectors: 64,
    unmap_granularity: 16, unmap_granularity_alignment: 3, unmap_zeroes_data: 1, queue_depth: 1, emulate_sanitize: 1,
  },
  'rbd/cluster': {
    emulate_fua_write: 0, emulate_ua_intlck_ctrl: 1, enforce_pr_isids: 0, force_pr_aptpl: 1, emulate_tpu: 1, unmap_zeroes_data: 0,
  },
  'rbd/interlock': { emulate_ua_intlck_ctrl: 2 },
};

/** REQUEST SENSE until no unit attention is left (works whatever UA_INTLCK_CTRL says). */
async function takeUnitAttentions(i: TestInitiator, luns: number[]): Promise<void> {
  for (const lun of luns) {
    for (let k = 0; k < 8; k++) {
      const rs = await i.scsi(Buffer.from([0x03, 0, 0, 0, 252, 0]), { read: 252, lun });
      assertGood(rs, 'REQUEST SENSE');
      if ((rs.data[2] & 0x0f) !== 0x6) break;
    }
  }
}

function modeSense(page: number, alloc = 255): Buffer {
  return Buffer.from([0x1a, 0x08, page, 0, alloc, 0]);
}

/** MODE SENSE(6) without block descriptors: [device-specific parameter, page bytes]. */
async function mode(i: TestInitiator, lun: number, page: number): Promise<{ dsp: number; page: Buffer }> {
  const r = await i.scsi(modeSense(page), { read: 255, lun });
  assertGood(r, 'MODE SENSE');
  return { dsp: r.data[2], page: r.data.subarray(4 + r.data[3]) };
}

async function inquiry(i: TestInitiator, lun: number): Promise<Buffer> {
  const r = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96, lun });
  assertGood(r, 'INQUIRY');
  return r.data;
}

async function vpd(i: TestInitiator, lun: number, page: number): Promise<Buffer> {
  const r = await i.scsi(inquiryVpd(page, 1024), { read: 1024, lun });
  assertGood(r, `VPD ${page.toString(16)}`);
  return r.data;
}

describe('disk settings observed from an initiator', () => {
  let daemon: Daemon;
  let i: TestInitiator;
  before(async () => {
    const { dir } = await dataDirWith(
      Object.entries(PROFILES).map(([id, controls]) => ({ id, size: 64 * MiB, controls })),
      [{ iqn: IQN, luns: { 'rbd/defaults': 0, 'rbd/inverted': 1, 'rbd/cluster': 2, 'rbd/interlock': 3 } }],
    );
    daemon = await Daemon.start({ dataDir: dir });
    i = await session(daemon.port, IQN, { luns: [0, 1] });
    await takeUnitAttentions(i, [2, 3]);
  });
  after(async () => {
    i?.close();
    await daemon.stop();
  });

  it('block_size, is_nonrot, optimal_sectors, unmap_* and max_write_same_len in READ CAPACITY and VPD B0/B1/B2', async () => {
    const rc0 = await i.scsi(cdb16(0x9e, 0, 32, 0x10), { read: 32, lun: 0 });
    const rc1 = await i.scsi(cdb16(0x9e, 0, 32, 0x10), { read: 32, lun: 1 });
    const rc2 = await i.scsi(cdb16(0x9e, 0, 32, 0x10), { read: 32, lun: 2 });
    assert.deepEqual([rc0.data.readUInt32BE(8), rc1.data.readUInt32BE(8)], [512, 4096], 'block_size');
    assert.equal(Number(rc1.data.readBigUInt64BE(0)) + 1, (64 * MiB) / 4096);
    assert.deepEqual([rc0.data[14] & 0xc0, rc1.data[14] & 0xc0, rc2.data[14] & 0xc0], [0x00, 0xc0, 0x80], 'LBPME/LBPRZ: emulate_tpu, unmap_zeroes_data');
    assert.deepEqual([(await vpd(i, 0, 0xb1)).readUInt16BE(4), (await vpd(i, 1, 0xb1)).readUInt16BE(4)], [1, 0], 'is_nonrot');
    const b00 = await vpd(i, 0, 0xb0);
    const b01 = await vpd(i, 1, 0xb0);
    assert.deepEqual([b00.readUInt32BE(12), b01.readUInt32BE(12)], [8192, 64], 'optimal_sectors');
    assert.deepEqual([b01.readUInt32BE(20), b01.readUInt32BE(24)], [2048, 4], 'max_unmap_lba_count, max_unmap_block_desc_count');
    assert.deepEqual([b01.readUInt32BE(28), b01.readUInt32BE(32)], [16, 0x80000003], 'unmap_granularity, UGAVALID + alignment');
    assert.deepEqual([Number(b00.readBigUInt64BE(36)), Number(b01.readBigUInt64BE(36))], [65535, 1024], 'max_write_same_len');
    const b20 = await vpd(i, 0, 0xb2);
    const b21 = await vpd(i, 1, 0xb2);
    assert.deepEqual([b20[5], b20[6] & 7], [0x00, 0x00], 'fully provisioned by default');
    assert.deepEqual([b21[5], b21[6] & 7], [0xe4, 0x02], 'thin: LBPU LBPWS LBPWS10 LBPRZ');
  });

  it('emulate_tpu and emulate_tpws: UNMAP and the WRITE SAME UNMAP bit exist only when set; limits are enforced', async () => {
    const u = unmap([[0, 8]]);
    assertSense(await i.scsi(u.cdb, { write: u.data, immediate: u.data.length, lun: 0 }), 0x5, INVALID_OPCODE);
    assertSense(await i.scsi(cdb16(0x93, 0, 8, 0x08), { write: Buffer.alloc(512), immediate: 512, lun: 0 }), 0x5, INVALID_FIELD_IN_CDB);
    assertGood(await i.scsi(u.cdb, { write: u.data, immediate: u.data.length, lun: 1 }));
    assertGood(await i.scsi(cdb16(0x93, 0, 8, 0x08), { write: Buffer.alloc(4096), immediate: 4096, lun: 1 }));
    const tooMany = unmap([[0, 8], [16, 8], [32, 8], [48, 8], [64, 8]]);
    assertSense(await i.scsi(tooMany.cdb, { write: tooMany.data, immediate: tooMany.data.length, lun: 1 }), 0x5, 0x2600);
    const tooLong = unmap([[0, 2049]]);
    assertSense(await i.scsi(tooLong.cdb, { write: tooLong.data, immediate: tooLong.data.length, lun: 1 }), 0x5, 0x2600);
    assertSense(await i.scsi(cdb16(0x93, 0, 1025), { write: Buffer.alloc(4096), immediate: 4096, lun: 1 }), 0x5, INVALID_FIELD_IN_CDB);
  });

  it('emulate_3pc: 3PC bit, Third-party Copy VPD page and EXTENDED COPY', async () => {
    assert.deepEqual([(await inquiry(i, 0))[5] & 0x08, (await inquiry(i, 1))[5] & 0x08], [0x08, 0x00]);
    assert.ok([...(await vpd(i, 0, 0x00)).subarray(4)].includes(0x8f));
    assert.ok(![...(await vpd(i, 1, 0x00)).subarray(4)].includes(0x8f));
    const x = extendedCopy(1, [], []);
    assertGood(await i.scsi(x.cdb, { write: x.data, immediate: x.data.length, lun: 0 }));
    assertSense(await i.scsi(x.cdb, { write: x.data, immediate: x.data.length, lun: 1 }), 0x5, INVALID_OPCODE);
  });

  it('emulate_caw: MAXIMUM COMPARE AND WRITE LENGTH and COMPARE AND WRITE', async () => {
    assert.deepEqual([(await vpd(i, 0, 0xb0))[5], (await vpd(i, 1, 0xb0))[5]], [255, 0]);
    assertGood(await i.scsi(compareAndWrite(0, 1), { write: Buffer.alloc(1024), lun: 0 }));
    assertSense(await i.scsi(compareAndWrite(0, 1), { write: Buffer.alloc(8192), lun: 1 }), 0x5, INVALID_OPCODE);
  });

  it('emulate_dpo and emulate_fua_write: DPOFUA in MODE SENSE and the DPO/FUA bits of READ and WRITE', async () => {
    const dsp: number[] = [];
    for (const lun of [0, 1, 2]) dsp.push((await mode(i, lun, 0x3f)).dsp & 0x10);
    assert.deepEqual(dsp, [0x10, 0x00, 0x00]);
    assertGood(await i.scsi(cdb10(0x28, 0, 1, 0x18), { read: 512, lun: 0 }), 'READ with DPO and FUA');
    assertGood(await i.scsi(cdb10(0x2a, 0, 1, 0x08), { write: Buffer.alloc(512), lun: 0 }), 'WRITE with FUA');
    assertSense(await i.scsi(cdb10(0x28, 0, 1, 0x10), { read: 4096, lun: 1 }), 0x5, INVALID_FIELD_IN_CDB);
    const j = await cluster();
    try {
      assertSense(await j.scsi(cdb10(0x2a, 0, 1, 0x08), { write: Buffer.alloc(512), lun: 2 }), 0x5, INVALID_FIELD_IN_CDB);
    } finally {
      j.close();
    }
  });

  it('emulate_model_alias: the product identification is the disk name', async () => {
    assert.deepEqual([(await inquiry(i, 0)).toString('latin1', 16, 32), (await inquiry(i, 1)).toString('latin1', 16, 32)],
      ['Virtual Disk    ', 'rbd/inverted    ']);
  });

  it('emulate_write_cache, emulate_tas, emulate_rest_reord, emulate_ua_intlck_ctrl: caching and control mode pages', async () => {
    assert.deepEqual([(await mode(i, 0, 0x08)).page[2] & 0x04, (await mode(i, 1, 0x08)).page[2] & 0x04], [0x00, 0x04], 'WCE');
    const ctl = [(await mode(i, 0, 0x0a)).page, (await mode(i, 1, 0x0a)).page];
    assert.deepEqual([ctl[0][5] & 0x40, ctl[1][5] & 0x40], [0x40, 0x00], 'TAS');
    assert.deepEqual([ctl[0][3] >> 4, ctl[1][3] >> 4], [0, 1], 'QUEUE ALGORITHM MODIFIER');
    const j = await cluster();
    try {
      const ua: number[] = [];
      for (const lun of [0, 2, 3]) ua.push(((await mode(j, lun, 0x0a)).page[4] >> 4) & 0x03);
      assert.deepEqual(ua, [0, 2, 3], 'UA_INTLCK_CTRL 00b, 10b, 11b');
    } finally {
      j.close();
    }
  });

  it('emulate_ua_intlck_ctrl 10b: a unit attention stays until REQUEST SENSE; 11b adds PREVIOUS RESERVATION CONFLICT STATUS', async () => {
    const j = await TestInitiator.connect(daemon.port);
    try {
      await j.login({ targetName: IQN, isid: Buffer.from('800000000077', 'hex') });
      // LUN 2 (10b): the power-on UA is reported on every command until REQUEST SENSE takes it.
      assertSense(await j.scsi(Buffer.alloc(6), { lun: 2 }), 0x6, 0x2900);
      assertSense(await j.scsi(Buffer.alloc(6), { lun: 2 }), 0x6, 0x2900);
      const rs = await j.scsi(Buffer.from([0x03, 0, 0, 0, 252, 0]), { read: 252, lun: 2 });
      assert.deepEqual([rs.data[2] & 0x0f, rs.data[12]], [0x6, 0x29]);
      assertGood(await j.scsi(Buffer.alloc(6), { lun: 2 }));
      // LUN 0 (00b): reporting the UA clears it.
      assertSense(await j.scsi(Buffer.alloc(6), { lun: 0 }), 0x6, 0x2900);
      assertGood(await j.scsi(Buffer.alloc(6), { lun: 0 }));
      // LUN 3 (11b): RESERVATION CONFLICT leaves a PREVIOUS RESERVATION CONFLICT STATUS UA,
      // which (as every UA with 11b) stays until REQUEST SENSE.
      await j.scsi(Buffer.from([0x03, 0, 0, 0, 252, 0]), { read: 252, lun: 3 });
      const reg = prOut(0, 0, 0n, 0x33n);
      assertGood(await i.scsi(reg.cdb, { write: reg.data, immediate: 24, lun: 3 }));
      const rsv = prOut(1, 3, 0x33n, 0n);
      assertGood(await i.scsi(rsv.cdb, { write: rsv.data, immediate: 24, lun: 3 }));
      assert.equal((await j.scsi(read10(0, 1), { read: 512, lun: 3 })).status, RESERVATION_CONFLICT);
      const clear = prOut(3, 0, 0x33n, 0n);
      assertGood(await i.scsi(clear.cdb, { write: clear.data, immediate: 24, lun: 3 }));
      assertSense(await j.scsi(Buffer.alloc(6), { lun: 3 }), 0x6, 0x2c09);
      assertSense(await j.scsi(Buffer.alloc(6), { lun: 3 }), 0x6, 0x2c09);
      const rs3 = await j.scsi(Buffer.from([0x03, 0, 0, 0, 252, 0]), { read: 252, lun: 3 });
      assert.deepEqual([rs3.data[2] & 0x0f, rs3.data[12], rs3.data[13]], [0x6, 0x2c, 0x09]);
      assertGood(await j.scsi(Buffer.alloc(6), { lun: 3 }));
    } finally {
      j.close();
    }
  });

  it('emulate_pr, enforce_pr_isids, force_pr_aptpl', async () => {
    assertSense(await i.scsi(prIn(0), { read: 1024, lun: 1 }), 0x5, INVALID_OPCODE);
    assertSense(await i.scsi(Buffer.from([0x16, 0, 0, 0, 0, 0]), { lun: 1 }), 0x5, INVALID_OPCODE);
    const other = await TestInitiator.connect(daemon.port);
    try {
      // The same initiator name through another ISID.
      await other.login({ targetName: IQN, isid: Buffer.from('800000000099', 'hex') });
      for (const lun of [0, 2]) {
        assert.equal((await other.scsi(Buffer.from([0x03, 0, 0, 0, 252, 0]), { read: 252, lun })).status, GOOD, 'REQUEST SENSE takes the UA');
        const reg = prOut(0, 0, 0n, 0x44n);
        assertGood(await i.scsi(reg.cdb, { write: reg.data, immediate: 24, lun }));
        const rsv = prOut(1, 3, 0x44n, 0n);
        assertGood(await i.scsi(rsv.cdb, { write: rsv.data, immediate: 24, lun }));
      }
      assert.equal((await other.scsi(read10(0, 1), { read: 512, lun: 0 })).status, RESERVATION_CONFLICT, 'enforce_pr_isids=1');
      assertGood(await other.scsi(read10(0, 1), { read: 512, lun: 2 }), 'enforce_pr_isids=0: the initiator name is the registrant');
      const caps: number[] = [];
      for (const lun of [0, 2]) caps.push((await i.scsi(prIn(2, 8), { read: 8, lun })).data[3] & 0x01);
      assert.deepEqual(caps, [0, 1], 'PTPL_A: force_pr_aptpl');
      for (const lun of [0, 2]) {
        const clear = prOut(3, 0, 0x44n, 0n);
        assertGood(await i.scsi(clear.cdb, { write: clear.data, immediate: 24, lun }));
      }
    } finally {
      other.close();
    }
  });

  it('queue_depth: a command beyond the LU\'s task set depth gets TASK SET FULL', async () => {
    const j = await session(daemon.port, IQN, { isid: '800000000055', luns: [0, 1] });
    try {
      // The first WRITE stays in the task set while it waits for its Data-Out.
      const stalled = await j.scsi(write10(0, 2), { write: Buffer.alloc(8192), lun: 1, stallOnR2T: true });
      assert.equal(stalled.status, -1, 'R2T received');
      const r = await j.scsi(Buffer.alloc(6), { lun: 1 });
      assert.equal(r.status, TASK_SET_FULL);
      assertGood(await j.scsi(Buffer.alloc(6), { lun: 0 }), 'LUN 0 (depth 256) is not affected');
    } finally {
      j.close();
    }
  });

  it('emulate_sanitize (gateway extension): SANITIZE exists only where it is allowed', async () => {
    const sanitize = Buffer.from([0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]);
    assertSense(await i.scsi(sanitize, { lun: 0 }), 0x5, INVALID_OPCODE);
    const rsoc = (lun: number) => i.scsi(Buffer.from([0xa3, 0x0c, 0x03, 0x48, 0, 0x02, 0, 0, 0, 32, 0, 0]), { read: 32, lun });
    assert.deepEqual([(await rsoc(0)).data[1] & 0x07, (await rsoc(1)).data[1] & 0x07], [0x01, 0x03], 'BLOCK ERASE: not supported / supported');
  });

  it('pi_prot_type: protection information is refused when the gateway starts', async () => {
    const { dir } = await dataDirWith([{ id: 'rbd/pi', size: 8 * MiB, controls: { pi_prot_type: 1 } }], [{ iqn: IQN, luns: { 'rbd/pi': 0 } }]);
    await assert.rejects(Daemon.start({ dataDir: dir }), /pi_prot_type 1 is not supported/);
  });

  /** A second session, its unit attentions taken. */
  async function cluster(): Promise<TestInitiator> {
    const j = await TestInitiator.connect(daemon.port);
    await j.login({ targetName: IQN, isid: Buffer.from('800000000066', 'hex') });
    await takeUnitAttentions(j, [0, 1, 2, 3]);
    return j;
  }
});
