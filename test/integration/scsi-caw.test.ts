/**
 * COMPARE AND WRITE (VMware ATS) through the real daemon under concurrent writers from
 * several iSCSI sessions:
 *  - two sessions increment a counter block only with COMPARE AND WRITE: no update is lost;
 *  - COMPARE AND WRITE, WRITE and READ of a multi-block record race from three sessions: no
 *    READ ever sees a record half written, and every MISCOMPARE points at a byte that really
 *    differed;
 *  - MISCOMPARE reports the offset of the first differing byte, at any length up to the
 *    advertised maximum.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import { GOOD, assertGood, assertSense, compareAndWrite, dataDirWith, decodeSense, inquiryVpd, read10, session, write10 } from '../helpers/scsi';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:ats';
const BS = 512;

/** A record of `blocks` blocks whose every 8-byte word holds `value` (a torn record shows two values). */
function record(value: bigint, blocks: number): Buffer {
  const b = Buffer.alloc(blocks * BS);
  for (let at = 0; at < b.length; at += 8) b.writeBigUInt64BE(value, at);
  return b;
}

/** A random pause of up to `ms`, so that the sessions do not fall into lockstep. */
function jitter(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * ms));
}

function valuesIn(b: Buffer): Set<bigint> {
  const s = new Set<bigint>();
  for (let at = 0; at < b.length; at += 8) s.add(b.readBigUInt64BE(at));
  return s;
}

async function readRecord(i: TestInitiator, lba: number, blocks: number): Promise<Buffer> {
  const r = await i.scsi(read10(lba, blocks), { read: blocks * BS });
  assertGood(r, 'READ');
  return r.data;
}

/** CAW old -> next; true when written, false on MISCOMPARE (whose offset is checked). */
async function caw(i: TestInitiator, lba: number, old: Buffer, next: Buffer): Promise<boolean> {
  const blocks = old.length / BS;
  const r = await i.scsi(compareAndWrite(lba, blocks), { write: Buffer.concat([old, next]) });
  if (r.status === GOOD) return true;
  const s = assertSense(r, 0xe, 0x1d00, 'COMPARE AND WRITE');
  // Every word of a record holds its one value, so a record that changed differs in its
  // first word already: the first differing byte is one of bytes 0..7.
  assert.ok(s.information !== undefined && s.information < 8, `MISCOMPARE offset ${s.information}`);
  return false;
}

describe('COMPARE AND WRITE under concurrent writers', () => {
  let daemon: Daemon;
  const sessions: TestInitiator[] = [];
  before(async () => {
    const { dir } = await dataDirWith([{ id: 'rbd/vmfs', size: 64 << 20 }], [{ iqn: IQN, luns: { 'rbd/vmfs': 0 } }]);
    daemon = await Daemon.start({ dataDir: dir });
    for (let n = 1; n <= 3; n++) sessions.push(await session(daemon.port, IQN, { initiatorName: `iqn.2024-01.test:esxi-${n}`, isid: `80000000000${n}` }));
  });
  after(async () => {
    for (const s of sessions) s.close();
    await daemon.stop();
  });

  it('two sessions incrementing one counter with COMPARE AND WRITE lose no update', async () => {
    const lba = 100;
    const per = 150;
    assertGood(await sessions[0].scsi(write10(lba, 1), { write: record(0n, 1) }));
    let attempts = 0;
    const worker = async (i: TestInitiator) => {
      for (let done = 0; done < per;) {
        const cur = await readRecord(i, lba, 1);
        const v = cur.readBigUInt64BE(0);
        assert.equal(valuesIn(cur).size, 1, 'the counter block is never torn');
        attempts++;
        if (await caw(i, lba, cur, record(v + 1n, 1))) done++;
      }
    };
    await Promise.all([worker(sessions[0]), worker(sessions[1])]);
    const final = await readRecord(sessions[2], lba, 1);
    assert.equal(final.readBigUInt64BE(0), BigInt(2 * per), `every successful CAW counted (${attempts} attempts)`);
    assert.ok(attempts > 2 * per, 'the two sessions really raced (some CAWs miscompared)');
  });

  it('CAW, WRITE and READ of a 32-block record from three sessions: never torn, miscompares are real', async () => {
    const lba = 2048;
    const blocks = 32;
    assertGood(await sessions[0].scsi(write10(lba, blocks), { write: record(1n, blocks) }));
    let cawOk = 0;
    let cawMiss = 0;
    const cawWorker = async (i: TestInitiator, tag: bigint) => {
      for (let k = 0; k < 60; k++) {
        const cur = await readRecord(i, lba, blocks);
        assert.equal(valuesIn(cur).size, 1, 'READ saw a torn record');
        const next = (tag << 32n) | BigInt(k);
        if (await caw(i, lba, cur, record(next, blocks))) cawOk++;
        else cawMiss++;
        await jitter(2);
      }
    };
    const writer = async (i: TestInitiator) => {
      for (let k = 0; k < 60; k++) {
        assertGood(await i.scsi(write10(lba, blocks), { write: record((3n << 32n) | BigInt(k), blocks) }));
        const back = await readRecord(i, lba, blocks);
        assert.equal(valuesIn(back).size, 1, 'READ saw a torn record');
        await jitter(4);
      }
    };
    await Promise.all([cawWorker(sessions[0], 1n), cawWorker(sessions[1], 2n), writer(sessions[2])]);
    assert.equal(cawOk + cawMiss, 120);
    assert.ok(cawOk > 0 && cawMiss > 0, `both outcomes happened (${cawOk} written, ${cawMiss} miscompared)`);
    assert.equal(valuesIn(await readRecord(sessions[2], lba, blocks)).size, 1);
  });

  it('MISCOMPARE reports the first differing byte, for every length up to the advertised maximum', async () => {
    const i = sessions[0];
    const b0 = await i.scsi(inquiryVpd(0xb0, 64), { read: 64 });
    const max = b0.data[5];
    assert.ok(max >= 1, 'MAXIMUM COMPARE AND WRITE LENGTH');
    for (const blocks of [1, 2, 7, 64, max]) {
      const lba = 4096;
      const data = Buffer.alloc(blocks * BS);
      for (let k = 0; k < data.length; k++) data[k] = (k * 7 + blocks) & 0xff;
      assertGood(await i.scsi(write10(lba, blocks), { write: data }));
      const wrong = Buffer.from(data);
      const at = Math.floor(data.length * 0.6) + 3;
      wrong[at] ^= 0x40;
      wrong[at + 9] ^= 0x01;
      const r = await i.scsi(compareAndWrite(lba, blocks), { write: Buffer.concat([wrong, Buffer.alloc(data.length, 0xee)]) });
      const s = assertSense(r, 0xe, 0x1d00, `CAW of ${blocks} blocks`);
      assert.equal(s.information, at, `first differing byte of ${blocks} blocks`);
      assert.ok((await readRecord(i, lba, blocks)).equals(data), 'nothing written on MISCOMPARE');
      assertGood(await i.scsi(compareAndWrite(lba, blocks), { write: Buffer.concat([data, Buffer.alloc(data.length, 0xee)]) }));
      assert.ok((await readRecord(i, lba, blocks)).equals(Buffer.alloc(data.length, 0xee)));
    }
    const tooLong = await i.scsi(compareAndWrite(0, max + 1), { write: Buffer.alloc(2 * (max + 1) * BS) });
    assert.equal(decodeSense(tooLong.sense!).asc, 0x2400, 'beyond the maximum: INVALID FIELD IN CDB');
  });
});
