/**
 * State that belongs to the logical unit, not the gateway: two gateway processes (iscsi1 on
 * 127.0.0.1, iscsi2 on 127.0.0.2) on one data dir, two initiators. Persistent reservations
 * made through one gateway bind the other (conflict, READ KEYS, PREEMPT's unit attention
 * across gateways), survive SIGKILL of the gateway they were made on, SPC-2 RESERVE binds
 * both gateways, a disk mapped to two targets of one gateway has one reservation, and
 * REGISTER AND MOVE hands the reservation to a port of the other gateway.
 *
 * iscsi2 owns the images (active); iscsi1's paths are standby, where PERSISTENT RESERVE and
 * TEST UNIT READY still work (SPC-4 §5.15.2.4.4) and media access is NOT READY.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';
import { emptyAuth, GatewayConfig } from '../../src/config/schema';
import { freePort, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';
import { RESERVATION_CONFLICT, assertGood, assertSense, inquiryVpd, prIn, prOut, read10, write10 } from '../helpers/scsi';
import { rbdOk } from '../helpers/store';

const T1 = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:shared-lu';
const T2 = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:shared-lu-2';
const HOST_A = 'iqn.2024-01.test:cluster-node-a';
const HOST_B = 'iqn.2024-01.test:cluster-node-b';
const ISID_A = '80000000000a';
const ISID_B = '80000000000b';
const WE = 1;
const ALL_TG_PT = 0x04;
const BLOCK = Buffer.alloc(512, 0x3c);

function addTarget(d: GatewayConfig, iqn: string): void {
  d.targets[iqn] = {
    acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ['127.0.0.1', '127.0.0.2'],
    portals: {
      iscsi1: { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: ['127.0.0.2'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
      iscsi2: { portal_ip_addresses: ['127.0.0.2'], inactive_portal_ips: ['127.0.0.1'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
    },
    disks: {}, clients: {}, groups: {},
  };
}

function addDisk(d: GatewayConfig, image: string, wwn: string, maps: Array<[string, number]>): void {
  const id = `rbd/${image}`;
  d.disks[id] = {
    pool: 'rbd', image, wwn, backstore: 'rbd', backstore_object_name: `rbd.${image}`, controls: {}, allocating_host: 'iscsi2', owner: 'iscsi2',
  };
  d.gateways.iscsi2.active_luns += 1;
  for (const [iqn, lun] of maps) d.targets[iqn].disks[id] = { lun_id: lun };
}

async function login(host: string, port: number, target: string, initiatorName: string, isid: string, luns: number[]): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port, host);
  await i.login({ targetName: target, initiatorName, isid: Buffer.from(isid, 'hex') });
  for (const lun of luns) await i.clearUnitAttentions(lun);
  return i;
}

function out(i: TestInitiator, sa: number, type: number, rk: bigint, sark: bigint, flags = 0, lun = 0) {
  const p = prOut(sa, type, rk, sark, flags);
  return i.scsi(p.cdb, { write: p.data, immediate: 24, lun });
}

async function keys(i: TestInitiator, lun = 0): Promise<bigint[]> {
  const r = await i.scsi(prIn(0), { read: 1024, lun });
  assertGood(r, 'READ KEYS');
  const list: bigint[] = [];
  for (let at = 8; at < 8 + r.data.readUInt32BE(4); at += 8) list.push(r.data.readBigUInt64BE(at));
  return list;
}

async function reservation(i: TestInitiator, lun = 0): Promise<{ key: bigint; type: number } | undefined> {
  const r = await i.scsi(prIn(1), { read: 1024, lun });
  assertGood(r, 'READ RESERVATION');
  return r.data.readUInt32BE(4) === 0 ? undefined : { key: r.data.readBigUInt64BE(8), type: r.data[21] & 0x0f };
}

/** READ FULL STATUS: key -> R_HOLDER of each registration. */
async function holders(i: TestInitiator, lun = 0): Promise<Map<bigint, boolean>> {
  const r = await i.scsi(prIn(3), { read: 4096, lun });
  assertGood(r, 'READ FULL STATUS');
  const m = new Map<bigint, boolean>();
  for (let at = 8; at < 8 + r.data.readUInt32BE(4);) {
    m.set(r.data.readBigUInt64BE(at), (r.data[at + 12] & 0x01) !== 0);
    at += 24 + r.data.readUInt32BE(at + 20);
  }
  return m;
}

/** RELATIVE TARGET PORT IDENTIFIER of the session's port (VPD 83h designator type 4). */
async function relativeTargetPort(i: TestInitiator): Promise<number> {
  const r = await i.scsi(inquiryVpd(0x83), { read: 255 });
  assertGood(r, 'INQUIRY VPD 83h');
  for (let at = 4; at + 4 <= r.data.length;) {
    const len = r.data[at + 3];
    if ((r.data[at + 1] & 0x0f) === 4 && ((r.data[at + 1] >> 4) & 0x3) === 1) return r.data.readUInt16BE(at + 6);
    at += 4 + len;
  }
  throw new Error('no relative target port designator');
}

/** REGISTER AND MOVE parameter list with an iSCSI initiator port TransportID (format 01b). */
function registerAndMove(rk: bigint, sark: bigint, rtpi: number, initiatorPort: string, unreg: boolean): { cdb: Buffer; data: Buffer } {
  const name = Buffer.from(initiatorPort, 'utf8');
  const len = Math.max(20, (name.length + 1 + 3) & ~3);
  const tid = Buffer.alloc(4 + len);
  tid[0] = 0x40 | 0x05;
  tid.writeUInt16BE(len, 2);
  name.copy(tid, 4);
  const data = Buffer.alloc(24 + tid.length);
  data.writeBigUInt64BE(rk, 0);
  data.writeBigUInt64BE(sark, 8);
  data[17] = unreg ? 0x02 : 0;
  data.writeUInt16BE(rtpi, 18);
  data.writeUInt32BE(tid.length, 20);
  tid.copy(data, 24);
  const cdb = Buffer.from([0x5f, 7, WE, 0, 0, 0, 0, 0, 0, 0]);
  cdb.writeUInt32BE(data.length, 5);
  return { cdb, data };
}

describe('logical unit state shared by two gateways', () => {
  const gws: GatewayProcess[] = [];
  const sessions: TestInitiator[] = [];
  let dir: string;
  let port: number;
  let p1: string;
  let p2: string;

  const open = async (host: string, target: string, name: string, isid: string, luns = [0]) => {
    const i = await login(host, port, target, name, isid, luns);
    sessions.push(i);
    return i;
  };

  before(async () => {
    dir = tempDir();
    port = await freePort();
    p1 = `127.0.0.1:${port}`;
    p2 = `127.0.0.2:${port}`;
    gws.push(await GatewayProcess.start(dir, 'iscsi1', p1));
    gws.push(await GatewayProcess.start(dir, 'iscsi2', p2));
    await rbdOk(dir, 'create', '--size', '32M', 'rbd/prdisk');
    await rbdOk(dir, 'create', '--size', '32M', 'rbd/twice');
    const store = new FileConfigStore(configPath(dir));
    const r = await store.update((d) => {
      addTarget(d, T1);
      addTarget(d, T2);
      addDisk(d, 'prdisk', '7b1e0c3a-0000-4000-8000-0000000000a1', [[T1, 0]]);
      addDisk(d, 'twice', '7b1e0c3a-0000-4000-8000-0000000000a2', [[T1, 1], [T2, 0]]);
      // A null disk is active on every gateway (nothing to protect): SPC-2 conflicts show on both paths.
      d.disks['null/both'] = {
        pool: 'null', image: 'both', backstore: 'null', backstore_object_name: 'null.both', size: 16 << 20,
        wwn: '7b1e0c3a-0000-4000-8000-0000000000a3', controls: {},
      };
      d.targets[T1].disks['null/both'] = { lun_id: 2 };
    });
    await store.close();
    await waitApplied(dir, ['iscsi1', 'iscsi2'], r.epoch);
  });

  after(async () => {
    for (const s of sessions) s.close();
    for (const g of gws) await g.stop();
  });

  it('a reservation made through gateway 1 binds gateway 2; PREEMPT through gateway 2 reaches A on gateway 1', async () => {
    const a1 = await open('127.0.0.1', T1, HOST_A, ISID_A);
    const b2 = await open('127.0.0.2', T1, HOST_B, ISID_B);
    assertGood(await out(a1, 0, 0, 0n, 0xaaan, ALL_TG_PT), 'A REGISTER through gateway 1');
    assertGood(await out(a1, 1, WE, 0xaaan, 0n), 'A RESERVE (Write Exclusive) through gateway 1');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT, 'B writes through gateway 2');
    assertGood(await b2.scsi(read10(0, 1), { read: 512 }), 'Write Exclusive lets B read');
    assert.deepEqual(await keys(b2), [0xaaan], 'B sees A\'s key through gateway 2');
    assert.deepEqual(await reservation(b2), { key: 0xaaan, type: WE });

    assertGood(await out(b2, 0, 0, 0n, 0xbbbn), 'B REGISTER through gateway 2');
    assertGood(await out(b2, 4, WE, 0xbbbn, 0xaaan), 'B PREEMPT through gateway 2');
    // The PREEMPT returned GOOD only after gateway 1 applied it: A's very next command learns it.
    assertSense(await a1.scsi(Buffer.alloc(6)), 0x6, 0x2a05, 'A on gateway 1: REGISTRATIONS PREEMPTED');
    assert.deepEqual(await keys(a1), [0xbbbn]);
    assert.deepEqual(await reservation(a1), { key: 0xbbbn, type: WE });
    assertGood(await b2.scsi(write10(0, 1), { write: BLOCK }), 'the new holder writes');
    assertGood(await out(b2, 3, 0, 0xbbbn, 0n), 'CLEAR');
    assertGood(await a1.scsi(Buffer.alloc(6)), 'A was no longer registered: CLEAR tells it nothing');
  });

  it('the reservation survives SIGKILL of the gateway it was made on', async () => {
    const a1 = await open('127.0.0.1', T1, HOST_A, ISID_A);
    const b2 = await open('127.0.0.2', T1, HOST_B, ISID_B);
    assertGood(await out(a1, 0, 0, 0n, 0xa2n, ALL_TG_PT), 'A REGISTER (all target ports) through gateway 1');
    assertGood(await out(a1, 1, WE, 0xa2n, 0n), 'A RESERVE through gateway 1');
    const g1 = gws[0];
    g1.proc.kill('SIGKILL');
    await g1.exited;
    assert.deepEqual(await reservation(b2), { key: 0xa2n, type: WE }, 'B through gateway 2 still sees it');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
    // A's multipath moves to gateway 2: its registration and reservation are there.
    const a2 = await open('127.0.0.2', T1, HOST_A, ISID_A);
    assert.deepEqual(await keys(a2), [0xa2n]);
    assert.deepEqual([...await holders(a2)], [[0xa2n, true]], 'A\'s registration holds the reservation');
    // Take it over on this path as multipath tools do (PREEMPT of its own key), and write.
    assertGood(await out(a2, 4, WE, 0xa2n, 0xa2n), 'A PREEMPT own key through gateway 2');
    assertGood(await a2.scsi(write10(0, 1), { write: BLOCK }), 'A writes through gateway 2');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
    assertGood(await out(a2, 3, 0, 0xa2n, 0n), 'CLEAR');

    // Gateway 1 comes back and joins the same state.
    gws[0] = await GatewayProcess.start(dir, 'iscsi1', p1);
    const st = new FileConfigStore(configPath(dir));
    const epoch = (await st.read()).config.epoch;
    await st.close();
    await waitApplied(dir, ['iscsi1'], epoch);
  });

  it('a disk mapped to two targets of one gateway has one reservation and one set of unit attentions', async () => {
    const a = await open('127.0.0.2', T1, HOST_A, '80000000001a', [0, 1]);
    const b = await open('127.0.0.2', T2, HOST_B, '80000000001b');
    assertGood(await out(a, 0, 0, 0n, 0xc1n, 0, 1), 'A REGISTER through target 1 LUN 1');
    assertGood(await out(a, 1, WE, 0xc1n, 0n, 0, 1), 'A RESERVE');
    assert.equal((await b.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT, 'B writes through target 2');
    assert.deepEqual(await keys(b), [0xc1n]);
    assertGood(await out(b, 0, 0, 0n, 0xc2n), 'B REGISTER through target 2');
    assertGood(await out(b, 4, WE, 0xc2n, 0xc1n), 'B PREEMPT through target 2');
    assertSense(await a.scsi(Buffer.alloc(6), { lun: 1 }), 0x6, 0x2a05, 'A on target 1');
    assertGood(await b.scsi(write10(0, 1), { write: BLOCK }));
    assertGood(await out(b, 3, 0, 0xc2n, 0n), 'CLEAR');
  });

  it('REGISTER AND MOVE hands the reservation to a port of the other gateway', async () => {
    const a1 = await open('127.0.0.1', T1, HOST_A, '80000000002a');
    const b2 = await open('127.0.0.2', T1, HOST_B, '80000000002b');
    await a1.clearUnitAttentions(0);
    assertGood(await out(a1, 0, 0, 0n, 0xd1n), 'A REGISTER through gateway 1');
    assertGood(await out(a1, 1, WE, 0xd1n, 0n), 'A RESERVE');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
    const rtpi = await relativeTargetPort(b2);
    assert.notEqual(rtpi, await relativeTargetPort(a1), 'gateway 2\'s port is another target port');
    const move = registerAndMove(0xd1n, 0xd2n, rtpi, `${HOST_B},i,0x80000000002b`, true);
    assertGood(await a1.scsi(move.cdb, { write: move.data, immediate: move.data.length }), 'REGISTER AND MOVE to gateway 2\'s port');
    assert.deepEqual(await reservation(b2), { key: 0xd2n, type: WE });
    assert.deepEqual(await keys(b2), [0xd2n], 'A unregistered (UNREG)');
    assertGood(await b2.scsi(write10(0, 1), { write: BLOCK }), 'B holds it through gateway 2');
    assertGood(await out(b2, 3, 0, 0xd2n, 0n), 'CLEAR');
  });

  it('MODE SELECT and LOGICAL UNIT RESET through one gateway reach the other gateway\'s nexuses', async () => {
    const lun = 2;
    const a1 = await open('127.0.0.1', T1, HOST_A, '80000000004a', [lun]);
    const b2 = await open('127.0.0.2', T1, HOST_B, '80000000004b', [lun]);
    // Control mode page with SWP=1 (software write protect).
    const control = (swp: boolean) => Buffer.from(`000000000a0a0200${swp ? '08' : '00'}400000ffff0000`, 'hex');
    const select = (p: Buffer) => a1.scsi(Buffer.from([0x15, 0x10, 0, 0, p.length, 0]), { write: p, immediate: p.length, lun });
    assertGood(await select(control(true)), 'MODE SELECT SWP=1 through gateway 1');
    assertSense(await b2.scsi(Buffer.alloc(6), { lun }), 0x6, 0x2a01, 'B on gateway 2: MODE PARAMETERS CHANGED');
    assertSense(await b2.scsi(write10(0, 1), { write: BLOCK, lun }), 0x7, 0x2700, 'B on gateway 2: WRITE PROTECTED');
    // LOGICAL UNIT RESET through gateway 1: the mode parameters return to their defaults on
    // both gateways, and B learns of the reset.
    const itt = a1.nextItt();
    a1.sendRaw(TestInitiator.bhs(0x02 | 0x40, 0x80 | 5, 0, (h) => {
      h.writeUInt16BE(lun, 8);
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(0xffffffff, 20);
      h.writeUInt32BE(a1.cmdSN, 24);
      h.writeUInt32BE(a1.expStatSN, 28);
    }));
    const rsp = await a1.receive();
    assert.equal(rsp?.opcode, 0x22);
    assert.equal(rsp?.bhs[2], 0, 'LOGICAL UNIT RESET: FUNCTION COMPLETE');
    assertSense(await b2.scsi(Buffer.alloc(6), { lun }), 0x6, 0x2903, 'B on gateway 2: BUS DEVICE RESET FUNCTION OCCURRED');
    assertGood(await b2.scsi(write10(0, 1), { write: BLOCK, lun }), 'SWP is back to its default on gateway 2');
  });

  it('SPC-2 RESERVE through one gateway binds the other, and is released when that gateway dies', async () => {
    const a1 = await open('127.0.0.1', T1, HOST_A, '80000000003a', [2]);
    const b2 = await open('127.0.0.2', T1, HOST_B, '80000000003b', [2]);
    const lun = 2;
    assertGood(await a1.scsi(Buffer.from([0x16, 0, 0, 0, 0, 0]), { lun }), 'RESERVE(6) through gateway 1');
    assert.equal((await b2.scsi(read10(0, 1), { read: 512, lun })).status, RESERVATION_CONFLICT, 'B reads through gateway 2');
    assert.equal((await b2.scsi(Buffer.from([0x16, 0, 0, 0, 0, 0]), { lun })).status, RESERVATION_CONFLICT, 'B RESERVE(6)');
    assertGood(await b2.scsi(Buffer.from([0x17, 0, 0, 0, 0, 0]), { lun }), 'B RELEASE(6): not the holder, a no-op');
    assert.equal((await b2.scsi(read10(0, 1), { read: 512, lun })).status, RESERVATION_CONFLICT);
    assertGood(await a1.scsi(read10(0, 1), { read: 512, lun }), 'the holder reads through gateway 1');
    assertGood(await a1.scsi(Buffer.from([0x17, 0, 0, 0, 0, 0]), { lun }), 'RELEASE(6) through gateway 1');
    assertGood(await b2.scsi(read10(0, 1), { read: 512, lun }), 'released everywhere');

    // An SPC-2 reservation ends with its I_T nexus: the holder's gateway dying releases it.
    assertGood(await a1.scsi(Buffer.from([0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { lun }), 'RESERVE(10) through gateway 1');
    assert.equal((await b2.scsi(read10(0, 1), { read: 512, lun })).status, RESERVATION_CONFLICT);
    gws[0].proc.kill('SIGKILL');
    await gws[0].exited;
    let status = -1;
    for (let i = 0; i < 100 && status !== 0; i++) {
      status = (await b2.scsi(read10(0, 1), { read: 512, lun })).status;
      if (status !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 0, 'released after the holder\'s gateway died');
  });
});
