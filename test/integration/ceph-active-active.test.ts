/**
 * `rbd` on Ceph is active/active (src/ha/active-active.ts): two gateway processes (iscsi1 on
 * 127.0.0.1, iscsi2 on 127.0.0.2, one data dir for the LU state, the configuration in RADOS)
 * serve one `rbd` disk of a real (memstore) cluster, both read-write at once.
 *
 * - REPORT TARGET PORT GROUPS through either gateway: both groups active/optimized, no PREF,
 *   supported states AO and unavailable; both gateways have the image open (two header watchers), no
 *   exclusive lock exists, librbd's cache is off for the image (`rbd config image ls`).
 * - The API creates the image without exclusive-lock and refuses to export an image that has it.
 * - Writes through one gateway are read back through the other right after GOOD, interleaved
 *   and concurrent.
 * - COMPARE AND WRITE raced through both gateways on one LBA: exactly one wins each round, and
 *   both paths read the winner's data (no torn block); MAXIMUM COMPARE AND WRITE LENGTH is the
 *   one sector the OSD does atomically and a longer one is refused.
 * - libiscsi's MultipathIO suite with one path on each gateway.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { call } from '../helpers/api';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { freePort, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';
import { runSuite } from '../helpers/conformance';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:active-active';
const IMAGE = 'aa1';
const BS = 512;
const RTPG = Buffer.from([0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 0, 0]);
const TUR = Buffer.alloc(6);

function rw10(op: 0x28 | 0x2a, lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(10);
  b[0] = op;
  b.writeUInt32BE(lba, 2);
  b.writeUInt16BE(blocks, 7);
  return b;
}

function caw(lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x89;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b[13] = blocks;
  return b;
}

function sense(out: { status: number; sense: Buffer | undefined }): [number, number, number] | undefined {
  return out.status === 2 && out.sense ? [out.sense[2] & 0x0f, out.sense[12], out.sense[13]] : undefined;
}

async function session(host: string, port: number, name: string): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port, host);
  await i.login({ targetName: IQN, initiatorName: name });
  for (let n = 0; n < 4; n++) if ((await i.scsi(TUR)).status === 0) break;
  return i;
}

/** RTPG (extended header): id -> state, PREF, supported states. */
function rtpgGroups(data: Buffer): Map<number, { state: number; pref: boolean; sup: number }> {
  const groups = new Map<number, { state: number; pref: boolean; sup: number }>();
  const end = 4 + data.readUInt32BE(0);
  for (let at = 8; at < end;) {
    groups.set(data.readUInt16BE(at + 2), { state: data[at] & 0x0f, pref: (data[at] & 0x80) !== 0, sup: data[at + 1] });
    at += 8 + 4 * data[at + 7];
  }
  return groups;
}

async function ok(r: Promise<{ status: number; text: string }>, what: string): Promise<void> {
  const x = await r;
  assert.equal(x.status, 200, `${what}: ${x.text}`);
}

describe('rbd on Ceph: two gateways active/active', { timeout: 420_000 }, () => {
  let cluster: TestCephCluster;
  const dir = tempDir('igw-ceph-aa-');
  const gws: GatewayProcess[] = [];
  let port = 0;
  let api1 = '';
  const open: TestInitiator[] = [];

  before(async () => {
    cluster = await startCephCluster();
    port = await freePort();
    const cfg = path.join(dir, 'iscsi-gateway.cfg');
    fs.writeFileSync(cfg, '[config]\ncluster_name = ceph\napi_secure = false\nprometheus_exporter = false\nminimum_gateways = 1\n');
    const env = { CEPH_CONF: cluster.cephConf };
    const apis: string[] = [];
    for (const [name, ip] of [['iscsi1', '127.0.0.1'], ['iscsi2', '127.0.0.2']] as const) {
      const apiPort = await freePort();
      apis.push(`http://${ip}:${apiPort}`);
      gws.push(await GatewayProcess.start(dir, name, `${ip}:${port}`, `${ip}:${apiPort}`, { args: ['--config', cfg], env }));
    }
    api1 = apis[0];
    await ok(call(api1, 'PUT', `/api/target/${IQN}`), 'target');
    await ok(call(api1, 'PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', nosync: 'false', skipchecks: 'true' }), 'gateway iscsi1');
    await ok(call(api1, 'PUT', `/api/gateway/${IQN}/iscsi2`, { ip_address: '127.0.0.2', nosync: 'false', skipchecks: 'true' }), 'gateway iscsi2');
    await ok(call(api1, 'PUT', `/api/targetauth/${IQN}`, { action: 'disable_acl' }), 'acl off');
    await ok(call(api1, 'PUT', `/api/disk/rbd/${IMAGE}`, { mode: 'create', size: '64M', backstore: 'rbd' }), 'disk');
    await ok(call(api1, 'PUT', `/api/targetlun/${IQN}`, { disk: `rbd/${IMAGE}`, lun_id: '0' }), 'lun');
    const epoch = (await call(api1, 'GET', '/api/config')).body.epoch as number;
    await waitApplied(dir, ['iscsi1', 'iscsi2'], epoch, 60_000);
  });
  /** One session through each gateway (kept for the following tests). */
  async function paths(): Promise<TestInitiator[]> {
    if (open.length === 0) open.push(await session('127.0.0.1', port, 'iqn.2024-01.test:aa-a'), await session('127.0.0.2', port, 'iqn.2024-01.test:aa-b'));
    return open;
  }
  after(async () => {
    for (const i of open) i.close();
    for (const g of gws) await g.stop();
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the image has no exclusive lock and no cache; an image with exclusive-lock is refused for rbd', async () => {
    const info = JSON.parse(await cluster.rbd(['info', '--format', 'json', `rbd/${IMAGE}`])) as { features: string[] };
    assert.deepEqual(info.features, ['layering', 'deep-flatten'], 'the API creates active/active images without exclusive-lock');
    const conf = await cluster.rbd(['config', 'image', 'ls', `rbd/${IMAGE}`]);
    assert.match(conf, /^rbd_cache\s+false\s+image\s*$/m, 'librbd cache off for every client of the image');
    const status = JSON.parse(await cluster.rbd(['status', '--format', 'json', `rbd/${IMAGE}`])) as { watchers: unknown[] };
    assert.ok(status.watchers.length >= 2, `both gateways have the image open: ${JSON.stringify(status.watchers)}`);

    await cluster.rbd(['create', '--size', '16M', `rbd/${IMAGE}-locked`]);
    const r = await call(api1, 'PUT', `/api/disk/rbd/${IMAGE}-locked`, { mode: 'create', create_image: 'false', backstore: 'rbd' });
    assert.equal(r.status, 400, r.text);
    assert.match(String(r.body.message), new RegExp(`^\\(LUN\\.allocate\\) rbd '${IMAGE}-locked' is not compatible with LIO\\nImage features exclusive-lock,object-map,fast-diff are not supported by the rbd backstore on Ceph`));
    assert.match(String(r.body.message), new RegExp(`rbd feature disable rbd/${IMAGE}-locked fast-diff object-map exclusive-lock`));
    // user:rbd (active/passive) still takes it.
    const u = await call(api1, 'PUT', `/api/disk/rbd/${IMAGE}-locked`, { mode: 'create', create_image: 'false', backstore: 'user:rbd' });
    assert.equal(u.status, 200, u.text);
  });

  it('REPORT TARGET PORT GROUPS through either gateway: both groups active/optimized', async () => {
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const i = await session(host, port, `iqn.2024-01.test:aa-rtpg-${host.at(-1)}`);
      try {
        const inq = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96 });
        assert.equal((inq.data[5] >> 4) & 3, 1, 'TPGS 01b: implicit only');
        const r = await i.scsi(RTPG, { read: 1024 });
        assert.equal(r.status, 0, JSON.stringify(sense(r)));
        assert.equal(r.data[4] & 0x70, 0x10, 'extended header');
        const groups = rtpgGroups(r.data);
        assert.equal(groups.size, 2, 'one group per gateway');
        for (const [id, g] of groups) {
          assert.equal(g.state, 0, `group ${id} active/optimized through ${host}`);
          assert.equal(g.pref, false, 'no preferred group');
          assert.equal(g.sup, 0x09, 'AO_SUP and U_SUP (a stopping gateway reports unavailable)');
        }
        // Block Limits VPD: MAXIMUM COMPARE AND WRITE LENGTH = one 512-byte sector (the OSD's atomic unit).
        const bl = await i.scsi(Buffer.from([0x12, 1, 0xb0, 0, 64, 0]), { read: 64 });
        assert.equal(bl.status, 0);
        assert.equal(bl.data[5], 1, 'MAXIMUM COMPARE AND WRITE LENGTH');
      } finally {
        i.close();
      }
    }
  });

  it('writes through one gateway read back through the other right after GOOD, interleaved and concurrent', async () => {
    const [a, b] = await paths();
    // A SYNCHRONIZE CACHE first: with librbd's cache on, writes would be acknowledged before the OSDs have them from now on.
    for (const i of [a, b]) assert.equal((await i.scsi(Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).status, 0);
    const blocks = 8;
    for (let round = 0; round < 200; round++) {
      const [w, r] = round % 2 === 0 ? [a, b] : [b, a];
      const lba = (round * 7919 * blocks) % (64 * 2048 - blocks);
      const data = randomBytes(blocks * BS);
      assert.equal((await w.scsi(rw10(0x2a, lba, blocks), { write: data })).status, 0);
      const back = await r.scsi(rw10(0x28, lba, blocks), { read: blocks * BS });
      assert.equal(back.status, 0);
      assert.ok(back.data.equals(data), `round ${round}: the other gateway reads what was acknowledged`);
    }
    // Concurrent: both paths write their own blocks at once, then each reads all through the other.
    const written = new Map<number, Buffer>();
    await Promise.all([a, b].map(async (i, k) => {
      for (let n = 0; n < 64; n++) {
        const lba = 100_000 + (2 * n + k) * blocks;
        const data = randomBytes(blocks * BS);
        written.set(lba, data);
        assert.equal((await i.scsi(rw10(0x2a, lba, blocks), { write: data })).status, 0);
      }
    }));
    for (const [lba, data] of written) {
      for (const i of [a, b]) assert.ok((await i.scsi(rw10(0x28, lba, blocks), { read: blocks * BS })).data.equals(data), `LBA ${lba}`);
    }
  });

  it('COMPARE AND WRITE raced through both gateways on one LBA: exactly one wins each round, nothing torn', async () => {
    const [a, b] = await paths();
    const lba = 4242;
    let current = randomBytes(BS);
    assert.equal((await a.scsi(rw10(0x2a, lba, 1), { write: current })).status, 0);
    const wins = [0, 0];
    for (let round = 0; round < 100; round++) {
      const mine = [randomBytes(BS), randomBytes(BS)];
      const outs = await Promise.all([a, b].map((i, k) => i.scsi(caw(lba, 1), { write: Buffer.concat([current, mine[k]]) })));
      const good = outs.map((o) => o.status === 0);
      assert.equal(good.filter(Boolean).length, 1, `round ${round}: exactly one COMPARE AND WRITE wins (${JSON.stringify(outs.map(sense))})`);
      const loser = outs[good.indexOf(false)];
      assert.deepEqual(sense(loser)?.slice(0, 2), [0x0e, 0x1d], 'the other gets MISCOMPARE DURING VERIFY OPERATION');
      const winner = good.indexOf(true);
      wins[winner]++;
      current = mine[winner];
      for (const i of [a, b]) assert.ok((await i.scsi(rw10(0x28, lba, 1), { read: BS })).data.equals(current), `round ${round}: both paths read the winner's block`);
    }
    process.stdout.write(`# COMPARE AND WRITE race, 100 rounds: iscsi1 won ${wins[0]}, iscsi2 won ${wins[1]}\n`);
    // Longer than the OSD-atomic sector: refused (never the non-atomic read-compare-write).
    const two = await a.scsi(caw(lba, 2), { write: Buffer.alloc(4 * BS) });
    assert.deepEqual(sense(two), [5, 0x24, 0], 'INVALID FIELD IN CDB');
  });

  it('ORWRITE through one gateway racing a WRITE through the other never loses the acknowledged write', async () => {
    const [a, b] = await paths();
    const lba = 5151;
    const or16 = Buffer.alloc(16);
    or16[0] = 0x8b;
    or16.writeBigUInt64BE(BigInt(lba), 2);
    or16.writeUInt32BE(1, 10);
    const bits = Buffer.alloc(BS, 0x01);
    for (let round = 0; round < 100; round++) {
      assert.equal((await a.scsi(rw10(0x2a, lba, 1), { write: Buffer.alloc(BS) })).status, 0);
      const y = randomBytes(BS).map((x) => x & 0xfe);
      const [o, w] = await Promise.all([a.scsi(or16, { write: bits }), b.scsi(rw10(0x2a, lba, 1), { write: Buffer.from(y) })]);
      assert.equal(o.status, 0, JSON.stringify(sense(o)));
      assert.equal(w.status, 0);
      const back = (await b.scsi(rw10(0x28, lba, 1), { read: BS })).data;
      const ored = Buffer.from(y).map((x) => x | 1);
      assert.ok(back.equals(Buffer.from(y)) || back.equals(Buffer.from(ored)), `round ${round}: the WRITE through iscsi2 was lost (block = old | ORWRITE data)`);
    }
  });

  it('libiscsi MultipathIO with one path on each gateway', { timeout: 240_000 }, async (t) => {
    const url = (host: string) => `iscsi://${host}:${port}/${IQN}/0`;
    const r = await runSuite(url('127.0.0.1'), 'MultipathIO', ['--dataloss'], url('127.0.0.2'));
    const verdicts = Object.fromEntries(r.results);
    t.diagnostic(JSON.stringify(verdicts));
    process.stdout.write(`# MultipathIO across the two gateways: ${JSON.stringify(verdicts)}\n`);
    for (const name of ['Simple', 'Reset', 'CompareAndWrite', 'CompareAndWriteAsync']) {
      assert.equal(verdicts[`MultipathIO.${name}`], 'PASS', `${name}\n${r.log.slice(-3000)}`);
    }
  });
});
