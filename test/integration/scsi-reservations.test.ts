/**
 * Reservations through the real daemon, with two and three iSCSI sessions: SCSI-3 persistent
 * reservations (I_T nexus identity including the ISID, PREEMPT and its unit attention, READ
 * FULL STATUS TransportIDs), APTPL across a restart, and an SPC-2 reservation released by a
 * TARGET COLD RESET whose response reaches the issuer.
 * The full type × nexus × command-class matrix is a unit test (pr-conflict-matrix.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import {
  RESERVATION_CONFLICT, assertGood, assertSense, dataDirWith, prIn, prOut, read10, session, write10,
} from '../helpers/scsi';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:pr';
const HOST_A = 'iqn.2024-01.test:cluster-node-a';
const HOST_B = 'iqn.2024-01.test:cluster-node-b';
const WE = 1, EA = 3, WE_RO = 5;
const BLOCK = Buffer.alloc(512, 0x5a);

async function out(i: TestInitiator, sa: number, type: number, rk: bigint, sark: bigint, flags = 0) {
  const p = prOut(sa, type, rk, sark, flags);
  return i.scsi(p.cdb, { write: p.data, immediate: 24 });
}

async function keys(i: TestInitiator): Promise<bigint[]> {
  const r = await i.scsi(prIn(0), { read: 1024 });
  assertGood(r, 'READ KEYS');
  const list: bigint[] = [];
  for (let at = 8; at < 8 + r.data.readUInt32BE(4); at += 8) list.push(r.data.readBigUInt64BE(at));
  return list;
}

async function reservation(i: TestInitiator): Promise<{ key: bigint; type: number } | undefined> {
  const r = await i.scsi(prIn(1), { read: 1024 });
  assertGood(r, 'READ RESERVATION');
  return r.data.readUInt32BE(4) === 0 ? undefined : { key: r.data.readBigUInt64BE(8), type: r.data[21] & 0x0f };
}

describe('persistent reservations through the gateway', () => {
  let daemon: Daemon;
  let dir: string;
  before(async () => {
    ({ dir } = await dataDirWith([{ id: 'rbd/quorum', size: 64 << 20, controls: { emulate_tpu: 1 } }], [{ iqn: IQN, luns: { 'rbd/quorum': 0 } }]));
    daemon = await Daemon.start({ dataDir: dir });
  });
  after(async () => {
    if (daemon.alive) await daemon.stop();
  });

  it('two cluster nodes: register, reserve, conflict, PREEMPT with its unit attention, READ FULL STATUS', async () => {
    const a = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '80000000000a' });
    const b = await session(daemon.port, IQN, { initiatorName: HOST_B, isid: '80000000000b' });
    try {
      assertGood(await out(a, 0, 0, 0n, 0xaaaan), 'A REGISTER');
      assertGood(await out(b, 0, 0, 0n, 0xbbbbn), 'B REGISTER');
      assertGood(await out(a, 1, EA, 0xaaaan, 0n), 'A RESERVE EA');
      assert.deepEqual(await reservation(b), { key: 0xaaaan, type: EA });
      // Exclusive Access: a registrant that does not hold it can neither read nor write...
      assert.equal((await b.scsi(read10(0, 1), { read: 512 })).status, RESERVATION_CONFLICT);
      assert.equal((await b.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
      // ...but INQUIRY, TEST UNIT READY and READ CAPACITY are allowed.
      assertGood(await b.scsi(Buffer.from([0x12, 0, 0, 0, 36, 0]), { read: 36 }));
      assertGood(await b.scsi(Buffer.alloc(6)));
      assertGood(await b.scsi(Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { read: 8 }));
      assertGood(await a.scsi(write10(0, 1), { write: BLOCK }), 'holder writes');

      // READ FULL STATUS names both I_T nexuses by iSCSI TransportID (name,i,0x<ISID>).
      const fs = await b.scsi(prIn(3), { read: 1024 });
      assertGood(fs);
      const text = fs.data.toString('latin1');
      assert.ok(text.includes(`${HOST_A},i,0x80000000000a`), text);
      assert.ok(text.includes(`${HOST_B},i,0x80000000000b`), text);

      // Node B takes over: PREEMPT node A's key with a Write Exclusive - Registrants Only reservation.
      assertGood(await out(b, 4, WE_RO, 0xbbbbn, 0xaaaan), 'B PREEMPT');
      assert.deepEqual(await keys(b), [0xbbbbn]);
      assert.deepEqual(await reservation(b), { key: 0xbbbbn, type: WE_RO });
      // A learns it was preempted (REGISTRATIONS PREEMPTED), then may read but not write.
      assertSense(await a.scsi(Buffer.alloc(6)), 0x6, 0x2a05, 'A after PREEMPT');
      assertGood(await a.scsi(read10(0, 1), { read: 512 }));
      assert.equal((await a.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
      assertGood(await b.scsi(write10(0, 1), { write: BLOCK }), 'new holder writes');

      assertGood(await out(b, 3, 0, 0xbbbbn, 0n), 'CLEAR');
      assert.deepEqual(await keys(a), []);
      assertGood(await a.scsi(write10(0, 1), { write: BLOCK }));
    } finally {
      a.close();
      b.close();
    }
  });

  it('the I_T nexus includes the ISID: the same initiator through another session is not the holder', async () => {
    const a1 = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '800000000001' });
    const a2 = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '800000000002' });
    try {
      assertGood(await out(a1, 0, 0, 0n, 0x11n));
      assertGood(await out(a1, 1, WE, 0x11n, 0n));
      assert.equal((await a2.scsi(write10(8, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
      assertGood(await a2.scsi(read10(8, 1), { read: 512 }), 'Write Exclusive lets others read');
      assertGood(await a1.scsi(write10(8, 1), { write: BLOCK }));
      // The other session cannot release it (not the holder: a no-op) nor register with the key.
      assert.equal((await out(a2, 0, 0, 0x11n, 0x22n)).status, RESERVATION_CONFLICT);
      assertGood(await out(a1, 3, 0, 0x11n, 0n), 'CLEAR');
    } finally {
      a1.close();
      a2.close();
    }
  });

  it('APTPL: registrations and the reservation survive a restart of the gateway', async () => {
    const a = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '80000000000a' });
    assertGood(await out(a, 0, 0, 0n, 0x7777n, 0x01), 'REGISTER with APTPL');
    assertGood(await out(a, 1, WE, 0x7777n, 0n));
    a.close();
    assert.equal(await daemon.stop(), 0);
    daemon = await Daemon.start({ dataDir: dir });
    const b = await session(daemon.port, IQN, { initiatorName: HOST_B, isid: '80000000000b' });
    const a2 = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '80000000000a' });
    try {
      assert.deepEqual(await keys(b), [0x7777n]);
      assert.deepEqual(await reservation(b), { key: 0x7777n, type: WE });
      const caps = await b.scsi(prIn(2, 8), { read: 8 });
      assert.equal(caps.data[3] & 0x01, 0x01, 'PTPL_A');
      assert.equal((await b.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
      assertGood(await a2.scsi(write10(0, 1), { write: BLOCK }), 'the same I_T nexus still holds it');
      // Unregistering (APTPL off) forgets it for good.
      assertGood(await out(a2, 0, 0, 0x7777n, 0n));
    } finally {
      b.close();
      a2.close();
    }
    assert.equal(await daemon.stop(), 0);
    daemon = await Daemon.start({ dataDir: dir });
    const c = await session(daemon.port, IQN, { initiatorName: HOST_B, isid: '80000000000b' });
    try {
      assert.deepEqual(await keys(c), []);
    } finally {
      c.close();
    }
  });

  it('SPC-2 RESERVE is released by TARGET COLD RESET, whose response reaches the issuer', async () => {
    const a = await session(daemon.port, IQN, { initiatorName: HOST_A, isid: '80000000000a' });
    const b = await session(daemon.port, IQN, { initiatorName: HOST_B, isid: '80000000000b' });
    assertGood(await a.scsi(Buffer.from([0x16, 0, 0, 0, 0, 0])), 'RESERVE(6)');
    assert.equal((await b.scsi(read10(0, 1), { read: 512 })).status, RESERVATION_CONFLICT);
    const itt = a.nextItt();
    a.sendRaw(TestInitiator.bhs(0x42, 0x80 | 7, 0, (h) => {
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(0xffffffff, 20);
      h.writeUInt32BE(a.cmdSN, 24);
      h.writeUInt32BE(a.expStatSN, 28);
    }));
    const rsp = await a.receive();
    assert.ok(rsp, 'a TMF response before the connection is dropped');
    assert.equal(rsp.opcode, 0x22);
    assert.equal(rsp.bhs.readUInt32BE(16), itt);
    assert.equal(rsp.bhs[2], 0, 'FUNCTION COMPLETE');
    assert.equal(await a.waitClosed(), true, 'the issuer is logged out');
    assert.equal(await b.waitClosed(), true, 'every session of the target is dropped');
    const b2 = await session(daemon.port, IQN, { initiatorName: HOST_B, isid: '80000000000b' });
    try {
      assertGood(await b2.scsi(read10(0, 1), { read: 512 }), 'the reservation is gone');
    } finally {
      b2.close();
    }
  });
});
