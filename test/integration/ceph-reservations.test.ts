/**
 * Reservations shared by gateways on different hosts: two gateway daemons (iscsi1 on
 * 127.0.0.1, iscsi2 on 127.0.0.2) with SEPARATE data dirs, one (memstore) Ceph cluster, the
 * configuration in RADOS. Their logical-unit state is a RADOS object per LU
 * (src/ha/lu-state-rados.ts), nothing in the data dirs: a persistent reservation made through
 * one gateway binds the other, PREEMPT through the other reaches the holder with its unit
 * attention, and the reservation survives SIGKILL of the gateway it was made on; MODE SELECT
 * and LOGICAL UNIT RESET reach the other gateway's nexuses; an SPC-2 reservation binds both
 * and is released when its gateway dies.
 *
 * iscsi2 owns the RBD image (active); iscsi1's path only carries PERSISTENT RESERVE and TEST
 * UNIT READY there. The null disk is active on both gateways.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RadosConfigStore } from '../../src/config/rados-store';
import { cephSettingsFromEnv, closeCeph } from '../../src/ceph/settings';
import { emptyAuth, GatewayConfig } from '../../src/config/schema';
import { luStateObjectName } from '../../src/ha/lu-state-rados';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';
import { RESERVATION_CONFLICT, assertGood, assertSense, prIn, prOut, read10, write10 } from '../helpers/scsi';

const T1 = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:ceph-pr';
const HOST_A = 'iqn.2024-01.test:cluster-node-a';
const HOST_B = 'iqn.2024-01.test:cluster-node-b';
const WE = 1;
const ALL_TG_PT = 0x04;
const BLOCK = Buffer.alloc(512, 0x5a);
const PR_WWN = '7b1e0c3a-0000-4000-8000-00000000c0a1';
const NULL_WWN = '7b1e0c3a-0000-4000-8000-00000000c0a3';

function addTarget(d: GatewayConfig): void {
  d.targets[T1] = {
    acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ['127.0.0.1', '127.0.0.2'],
    portals: {
      iscsi1: { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: ['127.0.0.2'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
      iscsi2: { portal_ip_addresses: ['127.0.0.2'], inactive_portal_ips: ['127.0.0.1'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
    },
    disks: {}, clients: {}, groups: {},
  };
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

describe('reservations shared by two gateways with separate data dirs on Ceph', () => {
  let cluster: TestCephCluster;
  let store: RadosConfigStore;
  const gws: GatewayProcess[] = [];
  const sessions: TestInitiator[] = [];
  const dirs: Record<string, string> = {};
  let port: number;
  let env: NodeJS.ProcessEnv;

  const startGateway = async (name: 'iscsi1' | 'iscsi2'): Promise<GatewayProcess> => {
    const ip = name === 'iscsi1' ? '127.0.0.1' : '127.0.0.2';
    const cfg = path.join(dirs[name], 'iscsi-gateway.cfg');
    // With a settings file the REST API starts too: on a free loopback port, never the default.
    return GatewayProcess.start(dirs[name], name, `${ip}:${port}`, `${ip}:${await freePort()}`, { args: ['--config', cfg], env });
  };

  const open = async (host: string, name: string, isid: string, luns = [0]) => {
    const i = await TestInitiator.connect(port, host);
    await i.login({ targetName: T1, initiatorName: name, isid: Buffer.from(isid, 'hex') });
    for (const lun of luns) await i.clearUnitAttentions(lun);
    sessions.push(i);
    return i;
  };

  const applied = async (names: Array<'iscsi1' | 'iscsi2'>) => {
    const epoch = (await store.read()).epoch;
    for (const n of names) await waitApplied(dirs[n], [n], epoch, 30_000);
  };

  before(async () => {
    cluster = await startCephCluster();
    port = await freePort();
    // A short membership lease: a killed gateway's SPC-2 reservation goes within seconds.
    env = { CEPH_CONF: cluster.cephConf, ISCSI_GATEWAY_LU_STATE_LEASE_MS: '3000' };
    for (const name of ['iscsi1', 'iscsi2']) {
      dirs[name] = tempDir();
      fs.writeFileSync(path.join(dirs[name], 'iscsi-gateway.cfg'), '[config]\ncluster_name = ceph\napi_secure = false\nprometheus_exporter = false\n');
    }
    // Active/active on Ceph: no exclusive-lock (disk-rules.ts).
    await cluster.rbd(['create', '--size', '32M', '--image-feature', 'layering', 'rbd/prdisk']);
    gws.push(await startGateway('iscsi1'));
    gws.push(await startGateway('iscsi2'));
    const ceph = cephSettingsFromEnv({ CEPH_CONF: cluster.cephConf });
    assert.ok(ceph);
    store = await RadosConfigStore.at(ceph, 'rbd', 'gateway.conf');
    await store.update((d) => {
      addTarget(d);
      d.disks['rbd/prdisk'] = {
        pool: 'rbd', image: 'prdisk', wwn: PR_WWN, backstore: 'rbd', backstore_object_name: 'rbd.prdisk', controls: {},
        allocating_host: 'iscsi2', owner: 'iscsi2',
      };
      d.gateways.iscsi2.active_luns += 1;
      d.targets[T1].disks['rbd/prdisk'] = { lun_id: 0 };
      d.disks['null/both'] = {
        pool: 'null', image: 'both', backstore: 'null', backstore_object_name: 'null.both', size: 16 << 20, wwn: NULL_WWN, controls: {},
      };
      d.targets[T1].disks['null/both'] = { lun_id: 1 };
    });
    await applied(['iscsi1', 'iscsi2']);
  });

  after(async () => {
    for (const s of sessions) s.close();
    for (const g of gws) await g.stop();
    await store?.close();
    await closeCeph();
    await cluster?.stop();
  });

  it('the state lives in one RADOS object per LU, not in the data dirs', async () => {
    const a1 = await open('127.0.0.1', HOST_A, '80000000000a');
    assertGood(await out(a1, 0, 0, 0n, 0x1n), 'REGISTER through gateway 1');
    const ls = await run('rados', ['-p', 'rbd', 'ls'], { env: cluster.env, timeoutMs: 30_000 });
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok(ls.stdout.split('\n').includes(luStateObjectName(PR_WWN)), ls.stdout);
    for (const n of ['iscsi1', 'iscsi2']) {
      const local = path.join(dirs[n], 'lu-state');
      assert.ok(!fs.existsSync(local) || fs.readdirSync(local).length === 0, `nothing in ${n}'s data dir`);
    }
    const get = await run('rados', ['-p', 'rbd', 'get', luStateObjectName(PR_WWN), '-'], { env: cluster.env, timeoutMs: 30_000 });
    assert.equal(get.code, 0, get.stderr);
    const doc = JSON.parse(get.stdout) as { state: { pr: { registrations: Array<{ key: string }> } } };
    assert.deepEqual(doc.state.pr.registrations.map((r) => r.key), ['1']);
    assertGood(await out(a1, 0, 0, 0x1n, 0n), 'unregister');
  });

  it('a reservation made through gateway 1 binds gateway 2; PREEMPT through gateway 2 reaches A on gateway 1', async () => {
    const a1 = await open('127.0.0.1', HOST_A, '80000000001a');
    const b2 = await open('127.0.0.2', HOST_B, '80000000001b');
    assertGood(await out(a1, 0, 0, 0n, 0xaaan, ALL_TG_PT), 'A REGISTER through gateway 1');
    assertGood(await out(a1, 1, WE, 0xaaan, 0n), 'A RESERVE (Write Exclusive) through gateway 1');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT, 'B writes through gateway 2');
    assertGood(await b2.scsi(read10(0, 1), { read: 512 }), 'Write Exclusive lets B read');
    assert.deepEqual(await keys(b2), [0xaaan], "B sees A's key through gateway 2");
    assert.deepEqual(await reservation(b2), { key: 0xaaan, type: WE });

    assertGood(await out(b2, 0, 0, 0n, 0xbbbn), 'B REGISTER through gateway 2');
    assertGood(await out(b2, 4, WE, 0xbbbn, 0xaaan), 'B PREEMPT through gateway 2');
    // GOOD only after gateway 1 applied it: A's very next command learns it.
    assertSense(await a1.scsi(Buffer.alloc(6)), 0x6, 0x2a05, 'A on gateway 1: REGISTRATIONS PREEMPTED');
    assert.deepEqual(await keys(a1), [0xbbbn]);
    assert.deepEqual(await reservation(a1), { key: 0xbbbn, type: WE });
    assertGood(await b2.scsi(write10(0, 1), { write: BLOCK }), 'the new holder writes');
    assertGood(await out(b2, 3, 0, 0xbbbn, 0n), 'CLEAR');
    assertGood(await a1.scsi(Buffer.alloc(6)), 'A was no longer registered: CLEAR tells it nothing');
  });

  it('the reservation survives SIGKILL of the gateway it was made on', async () => {
    const a1 = await open('127.0.0.1', HOST_A, '80000000002a');
    const b2 = await open('127.0.0.2', HOST_B, '80000000002b');
    assertGood(await out(a1, 0, 0, 0n, 0xa2n, ALL_TG_PT), 'A REGISTER (all target ports) through gateway 1');
    assertGood(await out(a1, 1, WE, 0xa2n, 0n), 'A RESERVE through gateway 1');
    gws[0].proc.kill('SIGKILL');
    await gws[0].exited;
    assert.deepEqual(await reservation(b2), { key: 0xa2n, type: WE }, 'B through gateway 2 still sees it');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
    // A's multipath moves to gateway 2: its registration and reservation are there.
    const a2 = await open('127.0.0.2', HOST_A, '80000000002a');
    assert.deepEqual(await keys(a2), [0xa2n]);
    const t0 = Date.now();
    assertGood(await out(a2, 4, WE, 0xa2n, 0xa2n), 'A PREEMPT own key through gateway 2');
    process.stdout.write(`# PR OUT through gateway 2 right after gateway 1 was SIGKILLed: ${Date.now() - t0} ms\n`);
    assertGood(await a2.scsi(write10(0, 1), { write: BLOCK }), 'A writes through gateway 2');
    assert.equal((await b2.scsi(write10(0, 1), { write: BLOCK })).status, RESERVATION_CONFLICT);
    assertGood(await out(a2, 3, 0, 0xa2n, 0n), 'CLEAR');

    // Gateway 1 comes back (a new process) and joins the same state.
    gws[0] = await startGateway('iscsi1');
    await applied(['iscsi1']);
    const a1b = await open('127.0.0.1', HOST_A, '80000000003a');
    assertGood(await out(a1b, 0, 0, 0n, 0xa3n), 'A REGISTER through the returned gateway 1');
    assert.deepEqual(await keys(b2), [0xa3n], 'gateway 2 sees it');
    assertGood(await out(a1b, 0, 0, 0xa3n, 0n), 'unregister');
  });

  it("MODE SELECT and LOGICAL UNIT RESET through one gateway reach the other gateway's nexuses", async () => {
    const lun = 1;
    const a1 = await open('127.0.0.1', HOST_A, '80000000005a', [lun]);
    const b2 = await open('127.0.0.2', HOST_B, '80000000005b', [lun]);
    // Control mode page with SWP=1 (software write protect).
    const control = (swp: boolean) => Buffer.from(`000000000a0a0200${swp ? '08' : '00'}400000ffff0000`, 'hex');
    const select = (p: Buffer) => a1.scsi(Buffer.from([0x15, 0x10, 0, 0, p.length, 0]), { write: p, immediate: p.length, lun });
    assertGood(await select(control(true)), 'MODE SELECT SWP=1 through gateway 1');
    assertSense(await b2.scsi(Buffer.alloc(6), { lun }), 0x6, 0x2a01, 'B on gateway 2: MODE PARAMETERS CHANGED');
    assertSense(await b2.scsi(write10(0, 1), { write: BLOCK, lun }), 0x7, 0x2700, 'B on gateway 2: WRITE PROTECTED');
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
    const lun = 1;
    const a1 = await open('127.0.0.1', HOST_A, '80000000004a', [lun]);
    const b2 = await open('127.0.0.2', HOST_B, '80000000004b', [lun]);
    assertGood(await a1.scsi(Buffer.from([0x16, 0, 0, 0, 0, 0]), { lun }), 'RESERVE(6) through gateway 1');
    assert.equal((await b2.scsi(read10(0, 1), { read: 512, lun })).status, RESERVATION_CONFLICT, 'B reads through gateway 2');
    assertGood(await a1.scsi(Buffer.from([0x17, 0, 0, 0, 0, 0]), { lun }), 'RELEASE(6) through gateway 1');
    assertGood(await b2.scsi(read10(0, 1), { read: 512, lun }), 'released everywhere');
    assertGood(await a1.scsi(Buffer.from([0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { lun }), 'RESERVE(10) through gateway 1');
    assert.equal((await b2.scsi(read10(0, 1), { read: 512, lun })).status, RESERVATION_CONFLICT);
    gws[0].proc.kill('SIGKILL');
    await gws[0].exited;
    const killed = Date.now();
    let status = -1;
    for (let i = 0; i < 300 && status !== 0; i++) {
      status = (await b2.scsi(read10(0, 1), { read: 512, lun })).status;
      if (status !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 0, "released after the holder's gateway died");
    process.stdout.write(`# SPC-2 reservation of the SIGKILLed gateway released after ${Date.now() - killed} ms (member lease 3 s)\n`);
  });
});
