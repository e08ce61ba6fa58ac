/**
 * Ceph RBD as the image provider, end to end on a real (memstore) cluster: a gateway whose
 * settings file names the cluster exports RBD images; initiators are qemu-io / qemu-img
 * (iscsi://) and the raw test initiator; the other side is Ceph's own `rbd` CLI.
 *
 *  - data written through the gateway equals `rbd export`; an `rbd import`ed image reads back;
 *  - `rbd resize` reaches a logged-in initiator as CAPACITY DATA HAS CHANGED + the new size
 *    (update watch); `rbd snap create` while the LUN is in use, exported read-only; an
 *    `rbd clone` attached and mapped through the REST API;
 *  - the API creates images with ceph-iscsi's features and refuses journaling / small stripes;
 *  - COMPARE AND WRITE through librbd (miscompare offset in the sense);
 *  - an OSD stopped (SIGSTOP) under I/O: the initiator gets an error within cmd_time_out, I/O
 *    resumes after SIGCONT, every acknowledged write reads back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon, freePort, run, tempDir } from '../helpers/daemon';
import { call } from '../helpers/api';
import { IQN_PREFIX, gatewayConfig, lunUrl } from '../helpers/store';
import { CHECK_CONDITION, GOOD, assertGood, assertSense, compareAndWrite, decodeSense, session } from '../helpers/scsi';
import { TestCephCluster, startCephCluster } from '../helpers/ceph';
import { writeFileAtomic } from '../../src/sys/durable';
import { configPath } from '../../src/config/paths';
import { seedRadosConfig } from '../helpers/ceph-config';

const MiB = 1024 * 1024;
const uniq = randomUUID().slice(0, 8);
const img = (name: string) => `${name}-${uniq}`;

function read16(lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x88;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt32BE(blocks, 10);
  return b;
}
function write16(lba: number, blocks: number, fua = false): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x8a;
  b[1] = fua ? 0x08 : 0;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt32BE(blocks, 10);
  return b;
}
function readCapacity16(): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x9e;
  b[1] = 0x10;
  b.writeUInt32BE(32, 10);
  return b;
}
const testUnitReady = (): Buffer => Buffer.alloc(6);

describe('Ceph RBD provider: data path against the rbd CLI', { timeout: 240_000 }, () => {
  let cluster: TestCephCluster;
  let daemon: Daemon;
  let api: string;
  const dataDir = tempDir('igw-ceph-data-');
  const rbd = (...args: string[]) => cluster.rbd(args);
  const names = {
    data: img('data'), imported: img('imported'), resize: img('resize'), snap: img('snap'), parent: img('parent'),
    clone: img('clone'), created: img('created'), journal: img('journal'), striped: img('striped'), stall: img('stall'),
  };
  const importedFile = path.join(dataDir, 'import.raw');

  before(async () => {
    cluster = await startCephCluster();
    // Images made outside the gateway, with Ceph's own tool.
    // The `rbd` backstore on Ceph is active/active: no exclusive-lock (nor object-map/fast-diff).
    for (const n of [names.data, names.resize, names.snap, names.parent, names.stall]) await rbd('create', '--size', '64M', '--image-feature', 'layering,deep-flatten', `rbd/${n}`);
    fs.writeFileSync(importedFile, randomBytes(8 * MiB));
    await rbd('import', '--no-progress', '--image-feature', 'layering,deep-flatten', importedFile, `rbd/${names.imported}`);
    // The snapshot disk: data, a snapshot taken by rbd, exported read-only.
    await rbd('bench', '--io-type', 'write', '--io-size', '4096', '--io-total', String(MiB), '--io-pattern', 'seq', `rbd/${names.snap}`);
    await rbd('snap', 'create', `rbd/${names.snap}@frozen`);
    const api0 = await freePort();
    api = `http://127.0.0.1:${api0}`;
    const cfg = path.join(dataDir, 'iscsi-gateway.cfg');
    fs.writeFileSync(cfg, [
      '[config]',
      'cluster_name = ceph',
      `ceph_config_dir = ${cluster.dir}`,
      'api_host = 127.0.0.1',
      `api_port = ${api0}`,
      'api_secure = false',
      'prometheus_exporter = false',
      'minimum_gateways = 1',
      '',
    ].join('\n'));
    const config = gatewayConfig({
      data: [{ disk: `rbd/${names.data}` }, { disk: `rbd/${names.imported}` }],
      resize: [{ disk: `rbd/${names.resize}` }],
      snap: [{ disk: `rbd/${names.snap}` }, { disk: `rbd/${names.snap}@frozen` }],
      clone: [{ disk: `rbd/${names.parent}` }],
      stall: [{ disk: `rbd/${names.stall}`, controls: { cmd_time_out: 3 } }],
    });
    await writeFileAtomic(configPath(dataDir), JSON.stringify(config));
    // With Ceph configured the daemon's configuration is the RADOS object (branch rados-config).
    await seedRadosConfig(cluster.cephConf, JSON.stringify(config));
    daemon = await Daemon.start({ dataDir, extraArgs: ['--config', cfg] });
  });

  after(async () => {
    await daemon?.stop();
    await cluster?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('data written through the gateway equals rbd export', async () => {
    const url = lunUrl(daemon.port, 'data', 0);
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 1M', '-c', 'write -P 0xcd 5M 512k', '-c', 'write -P 0x11 63M 4k', '-c', 'flush', url], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /error|failed/i);
    const out = path.join(dataDir, 'export.raw');
    await rbd('export', '--no-progress', `rbd/${names.data}`, out);
    const got = fs.readFileSync(out);
    assert.equal(got.length, 64 * MiB);
    const expect = Buffer.alloc(64 * MiB);
    expect.fill(0xab, 0, MiB);
    expect.fill(0xcd, 5 * MiB, 5 * MiB + 512 * 1024);
    expect.fill(0x11, 63 * MiB, 63 * MiB + 4096);
    assert.ok(got.equals(expect), 'rbd export differs from what was written through the gateway');
  });

  it('GET /api/disk answers the bytes allocated (used), bounded as rbd du sees them', async () => {
    // After the test above: 1 MiB + 512 KiB + 4 KiB written, in 3 of the 16 4-MiB objects.
    const r = await call(api, 'GET', `/api/disk/rbd/${names.data}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const used = r.body.used;
    assert.ok(typeof used === 'number' && used >= MiB + 512 * 1024 + 4096 && used <= 12 * MiB, `used ${String(used)}`);
    const du = JSON.parse(await rbd('du', '--format', 'json', `rbd/${names.data}`)) as { images: Array<{ snapshot?: string; used_size: number }> };
    const head = du.images.find((i) => i.snapshot === undefined);
    assert.ok(head && used <= head.used_size, `used ${used} <= rbd du ${JSON.stringify(du)}`);
    console.log(`GET /api/disk used ${used} B, rbd du used_size ${head.used_size} B`);
    // An image nothing was written to has nothing allocated.
    const empty = await call(api, 'GET', `/api/disk/rbd/${names.resize}`);
    assert.equal(empty.body.used, 0, JSON.stringify(empty.body));
  });

  it('an image written with rbd import reads back through the gateway', async () => {
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', importedFile, lunUrl(daemon.port, 'data', 1)], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
  });

  it('rbd resize reaches a logged-in initiator: CAPACITY DATA HAS CHANGED and the new size', async () => {
    const i = await session(daemon.port, `${IQN_PREFIX}resize`);
    try {
      const before = await i.scsi(readCapacity16(), { read: 32 });
      assertGood(before, 'READ CAPACITY (16)');
      assert.equal(Number(before.data.readBigUInt64BE(0)) + 1, (64 * MiB) / 512);
      await rbd('resize', '--size', '96M', `rbd/${names.resize}`);
      // The update watch delivers the new size; the next command gets the unit attention.
      let ua: ReturnType<typeof decodeSense> | undefined;
      const deadline = Date.now() + 10_000;
      while (!ua && Date.now() < deadline) {
        const r = await i.scsi(testUnitReady());
        if (r.status === CHECK_CONDITION && r.sense) ua = decodeSense(r.sense);
        else await new Promise((res) => setTimeout(res, 100));
      }
      assert.ok(ua, 'no unit attention after rbd resize');
      assert.deepEqual([ua.key, ua.asc.toString(16)], [6, '2a09'], 'UNIT ATTENTION, CAPACITY DATA HAS CHANGED');
      const after = await i.scsi(readCapacity16(), { read: 32 });
      assertGood(after, 'READ CAPACITY (16) after resize');
      assert.equal(Number(after.data.readBigUInt64BE(0)) + 1, (96 * MiB) / 512);
      // The new blocks are usable.
      assertGood(await i.scsi(write16((96 * MiB) / 512 - 8, 8), { write: Buffer.alloc(4096, 0x5a) }), 'WRITE at the new end');
    } finally {
      await i.logout().catch(() => undefined);
      i.close();
    }
  });

  it('rbd snap create while the LUN is in use; the snapshot exported read-only keeps its data', async () => {
    const head = lunUrl(daemon.port, 'snap', 0);
    const frozen = lunUrl(daemon.port, 'snap', 1);
    // rbd bench wrote the first MiB before the snapshot: the snapshot LUN equals the head then.
    const before = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', head, frozen], { timeoutMs: 60_000 });
    assert.equal(before.code, 0, before.stdout + before.stderr);
    const w = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 0 64k', '-c', 'flush', head], { timeoutMs: 60_000 });
    assert.equal(w.code, 0, w.stdout + w.stderr);
    // A snapshot taken by rbd while the gateway writes the image (the gateway's librbd learns of
    // it through the header watch), then more writes: the new snapshot has the 0x77 block.
    await rbd('snap', 'create', `rbd/${names.snap}@live`);
    const w2 = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x88 0 64k', '-c', 'flush', head], { timeoutMs: 60_000 });
    assert.equal(w2.code, 0, w2.stdout + w2.stderr);
    const out = path.join(dataDir, 'live.raw');
    await rbd('export', '--no-progress', `rbd/${names.snap}@live`, out);
    const live = fs.readFileSync(out);
    assert.ok(live.subarray(0, 65536).equals(Buffer.alloc(65536, 0x77)), 'the snapshot taken under I/O holds the data written before it');
    // The frozen snapshot LUN is read-only and unchanged by the writes to the head.
    const ro = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x99 0 4k', frozen], { timeoutMs: 60_000 });
    assert.match(ro.stdout + ro.stderr, /LUN is write protected/, 'the snapshot LUN is write protected (WP in MODE SENSE)');
    const frozenOut = path.join(dataDir, 'frozen.raw');
    await rbd('export', '--no-progress', `rbd/${names.snap}@frozen`, frozenOut);
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', frozenOut, frozen], { timeoutMs: 60_000 });
    assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
  });

  it('an rbd clone attaches through the API and reads its parent snapshot', async () => {
    const parentUrl = lunUrl(daemon.port, 'clone', 0);
    const w = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 1M 1M', '-c', 'flush', parentUrl], { timeoutMs: 60_000 });
    assert.equal(w.code, 0, w.stdout + w.stderr);
    await rbd('snap', 'create', `rbd/${names.parent}@base`);
    await rbd('snap', 'protect', `rbd/${names.parent}@base`);
    // The parent is an active/active `rbd` disk (no exclusive-lock); the clone is exported user:rbd, which needs it.
    await rbd('clone', '--image-feature', 'layering,exclusive-lock,object-map,fast-diff,deep-flatten', `rbd/${names.parent}@base`, `rbd/${names.clone}`);
    const attach = await call(api, 'PUT', `/api/disk/rbd/${names.clone}`, { mode: 'create', create_image: 'false', backstore: 'user:rbd' }, { auth: 'admin:admin' });
    assert.equal(attach.status, 200, attach.text);
    const map = await call(api, 'PUT', `/api/targetlun/${IQN_PREFIX}clone`, { disk: `rbd/${names.clone}`, lun_id: '1' });
    assert.equal(map.status, 200, map.text);
    const url = lunUrl(daemon.port, 'clone', 1);
    let out = '';
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x3c 1M 1M', '-c', 'read -P 0 0 1M', url], { timeoutMs: 60_000 });
      out = r.stdout + r.stderr;
      if (r.code === 0 && !/fail|error|No such|Cannot/i.test(out)) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.match(out, /read 1048576\/1048576 bytes[\s\S]*read 1048576\/1048576 bytes/);
    assert.doesNotMatch(out, /Pattern verification failed|error/i);
    // Writes to the clone stay in the clone.
    const cw = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x4d 1M 4k', '-c', 'flush', url], { timeoutMs: 60_000 });
    assert.equal(cw.code, 0, cw.stdout + cw.stderr);
    const parentOut = path.join(dataDir, 'parent.raw');
    await rbd('export', '--no-progress', `rbd/${names.parent}@base`, parentOut);
    assert.equal(fs.readFileSync(parentOut)[MiB], 0x3c);
  });

  it("the API creates RBD images with ceph-iscsi's features and refuses journaling and small stripe units", async () => {
    const settings = await call(api, 'GET', '/api/settings');
    assert.equal(settings.status, 200, settings.text);
    assert.deepEqual(settings.body.required_rbd_features, { 'user:rbd': 4, rbd: 0 });
    // rbd on Ceph is active/active: exclusive-lock, object-map and fast-diff refused besides journaling.
    assert.deepEqual(settings.body.unsupported_rbd_features, { 'user:rbd': 64, rbd: 64 | 4 | 8 | 16 });

    const created = await call(api, 'PUT', `/api/disk/rbd/${names.created}`, { mode: 'create', size: '32M' });
    assert.equal(created.status, 200, created.text);
    const info = JSON.parse(await rbd('info', '--format', 'json', `rbd/${names.created}`)) as { size: number; features: string[] };
    assert.equal(info.size, 32 * MiB);
    assert.deepEqual(info.features, ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
    const grown = await call(api, 'PUT', `/api/disk/rbd/${names.created}`, { mode: 'resize', size: '48M' });
    assert.equal(grown.status, 200, grown.text);
    assert.equal((JSON.parse(await rbd('info', '--format', 'json', `rbd/${names.created}`)) as { size: number }).size, 48 * MiB);
    const shrink = await call(api, 'PUT', `/api/disk/rbd/${names.created}`, { mode: 'resize', size: '16M' });
    assert.equal(shrink.status, 400, shrink.text);

    await rbd('create', '--size', '16M', '--image-feature', 'layering,exclusive-lock,journaling', `rbd/${names.journal}`);
    const j = await call(api, 'PUT', `/api/disk/rbd/${names.journal}`, { mode: 'create', create_image: 'false' });
    assert.equal(j.status, 400, j.text);
    assert.match(String(j.body.message), /is not compatible with LIO\nImage features journaling are not supported/);
    await rbd('create', '--size', '16M', '--stripe-unit', '2048', '--stripe-count', '4', `rbd/${names.striped}`);
    const s = await call(api, 'PUT', `/api/disk/rbd/${names.striped}`, { mode: 'create', create_image: 'false', backstore: 'rbd' });
    assert.equal(s.status, 400, s.text);
    assert.match(String(s.body.message), /stripe unit of less than 4096 bytes cannot be exported/);
    // Nothing of the refused images was registered, and they still exist.
    const disks = await call(api, 'GET', '/api/disks');
    assert.ok(!(disks.body.disks as string[]).some((d) => d.includes(names.journal) || d.includes(names.striped)));
    await rbd('info', `rbd/${names.journal}`);

    const del = await call(api, 'DELETE', `/api/disk/rbd/${names.created}`, { preserve_image: 'false' });
    assert.equal(del.status, 200, del.text);
    await assert.rejects(rbd('info', `rbd/${names.created}`), /No such file or directory|error opening image/, 'the image was removed');
  });

  it('COMPARE AND WRITE goes through librbd: miscompare offset, then a matching compare writes', async () => {
    const i = await session(daemon.port, `${IQN_PREFIX}data`);
    try {
      const lba = 4096;
      assertGood(await i.scsi(write16(lba, 1), { write: Buffer.alloc(512, 0x21) }), 'WRITE');
      const wrong = Buffer.concat([Buffer.alloc(512, 0x21), Buffer.alloc(512, 0x42)]);
      wrong[37] = 0x20;
      const miss = await i.scsi(compareAndWrite(lba, 1), { write: wrong });
      const sense = assertSense(miss, 0x0e, 0x1d00, 'COMPARE AND WRITE miscompare');
      assert.equal(sense.information, 37, 'offset of the first differing byte');
      const good = Buffer.concat([Buffer.alloc(512, 0x21), Buffer.alloc(512, 0x42)]);
      assertGood(await i.scsi(compareAndWrite(lba, 1), { write: good }), 'COMPARE AND WRITE');
      const back = await i.scsi(read16(lba, 1), { read: 512 });
      assertGood(back);
      assert.ok(back.data.equals(Buffer.alloc(512, 0x42)));
    } finally {
      await i.logout().catch(() => undefined);
      i.close();
    }
  });

  it('a start with Ceph configured but unavailable fails with the reason, never on the embedded store', async () => {
    const dir = tempDir('igw-ceph-unavail-');
    try {
      const cfg = path.join(dir, 'iscsi-gateway.cfg');
      // The binding switched off: the same as a host without librbd.
      fs.writeFileSync(cfg, `[config]\ncluster_name = ceph\nceph_config_dir = ${cluster.dir}\nprometheus_exporter = false\n`);
      await assert.rejects(Daemon.start({ dataDir: dir, extraArgs: ['--config', cfg, '--api', `127.0.0.1:${await freePort()}`], env: { ISCSI_GATEWAY_NO_CEPH: '1' } }),
        /Ceph is configured \(cluster 'ceph', conf .*ceph\.conf, client client\.admin\) but the Ceph binding is not available/);
      // A conf file that is not there.
      fs.writeFileSync(cfg, `[config]\ncluster_name = nosuch\nceph_config_dir = ${cluster.dir}\nprometheus_exporter = false\n`);
      await assert.rejects(Daemon.start({ dataDir: dir, extraArgs: ['--config', cfg, '--api', `127.0.0.1:${await freePort()}`], env: { CEPH_CONF: '' } }),
        /Ceph is configured \(cluster 'nosuch', conf .*nosuch\.conf, client client\.admin\) but .*nosuch\.conf does not exist/);
      assert.equal(fs.existsSync(path.join(dir, 'store')), false, 'no embedded store was created instead');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an OSD stopped under I/O: errors within cmd_time_out, resumes after SIGCONT, nothing acknowledged lost', async (t) => {
    const i = await session(daemon.port, `${IQN_PREFIX}stall`);
    const acked = new Map<number, number>();
    const block = (seq: number) => Buffer.alloc(4096, (seq % 250) + 1);
    let seq = 0;
    const writeOne = async (lba: number) => {
      const s = ++seq;
      const started = Date.now();
      // FUA: acknowledged means committed by the OSD (librbd's cache may complete a plain write early).
      const r = await i.scsi(write16(lba, 8, true), { write: block(s) });
      if (r.status === GOOD) acked.set(lba, s);
      return { r, ms: Date.now() - started };
    };
    try {
      for (let k = 0; k < 16; k++) assertGood((await writeOne(k * 8)).r, 'write before the stop');
      const osds = cluster.osdPids();
      assert.equal(osds.length, 1, 'one OSD');
      process.kill(osds[0], 'SIGSTOP');
      let failed: { r: Awaited<ReturnType<typeof i.scsi>>; ms: number } | undefined;
      try {
        // cmd_time_out is 3 s: the first write that cannot complete fails within ~3 s.
        for (let k = 16; k < 64 && !failed; k++) {
          const w = await writeOne(k * 8);
          if (w.r.status !== GOOD) failed = w;
        }
      } finally {
        process.kill(osds[0], 'SIGCONT');
      }
      assert.ok(failed, 'a write failed while the OSD was stopped');
      assert.equal(failed.r.status, CHECK_CONDITION);
      const s = decodeSense(failed.r.sense!);
      assert.deepEqual([s.key, s.asc.toString(16)], [2, '800'], 'NOT READY, LOGICAL UNIT COMMUNICATION FAILURE');
      t.diagnostic(`OSD stopped: the first write failed after ${failed.ms} ms (cmd_time_out 3 s); ${acked.size} writes acknowledged`);
      assert.ok(failed.ms < 3000 + 1500, `the error came after ${failed.ms} ms (cmd_time_out 3 s)`);
      // I/O resumes once the OSD runs again.
      let resumed = false;
      const deadline = Date.now() + 30_000;
      while (!resumed && Date.now() < deadline) {
        const w = await writeOne(70 * 8);
        resumed = w.r.status === GOOD;
        if (!resumed) await new Promise((res) => setTimeout(res, 250));
      }
      assert.ok(resumed, 'writes succeed again after SIGCONT');
      t.diagnostic(`writes succeeded again ${Date.now() - deadline + 30_000} ms after SIGCONT`);
      for (const [lba, s2] of acked) {
        const r = await i.scsi(read16(lba, 8), { read: 4096 });
        assertGood(r, `read back LBA ${lba}`);
        assert.ok(r.data.equals(block(s2)), `acknowledged write at LBA ${lba} reads back`);
      }
    } finally {
      await i.logout().catch(() => undefined);
      i.close();
    }
    assert.ok(daemon.alive, 'the daemon survived the stalled OSD');
  });
});
