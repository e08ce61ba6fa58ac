/**
 * The seed's whole flow (user's guide §6.4.3-6.4.5) over the REST API with two gateway daemons
 * (iscsi1 on 127.0.0.1, iscsi2 on 127.0.0.2, one shared data dir), no restart: create the
 * target, both gateways, disks, map them, create a host, set its CHAP, map a disk to it. Then
 * discovery through either portal lists both portals, iscsi-ls shows the LUNs through both,
 * qemu-io writes and reads back through the LUN's owner. With iscsi2 stopped a change still
 * succeeds (no 503 as ceph-iscsi) and iscsi2 applies it when it starts again.
 *
 * The host logs in with the CHAP credentials set through the API.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { qemuIo, qemuIoOk } from '../helpers/store';
import { call } from '../helpers/api';
import { TestInitiator } from '../helpers/initiator';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:ceph-igw';
const HOST = 'iqn.1994-05.com.redhat:rh7-client';
const CHAP_USER = 'myiscsiusername';
const CHAP_PASSWORD = 'myiscsipassword';

describe('seed flow over the REST API, two gateways', () => {
  const gws: GatewayProcess[] = [];
  after(async () => {
    for (const g of gws) await g.stop();
  });

  it('target, gateways, disks, LUNs, host, CHAP, masking: live on both gateways; owner reads and writes; a stopped gateway catches up', async () => {
    const dir = tempDir();
    const port = await freePort();
    const apiPort1 = await freePort();
    const apiPort2 = await freePort();
    const p1 = `127.0.0.1:${port}`;
    const p2 = `127.0.0.2:${port}`;
    const api1 = `http://127.0.0.1:${apiPort1}`;
    const api2 = `http://127.0.0.2:${apiPort2}`;
    const g1 = await GatewayProcess.start(dir, 'iscsi1', p1, `127.0.0.1:${apiPort1}`);
    gws.push(g1);
    const g2 = await GatewayProcess.start(dir, 'iscsi2', p2, `127.0.0.2:${apiPort2}`);
    gws.push(g2);

    // §6.4.3-6.4.5, as gwcli sends them (all through iscsi1's API except the host part,
    // which goes through iscsi2's: either gateway's API changes the one shared config).
    const steps: Array<[string, string, string, Record<string, string>?]> = [
      [api1, 'PUT', `/api/target/${IQN}`],
      [api1, 'PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', nosync: 'false', skipchecks: 'false' }],
      [api1, 'PUT', `/api/gateway/${IQN}/iscsi2`, { ip_address: '127.0.0.2', nosync: 'false', skipchecks: 'false' }],
      [api1, 'PUT', '/api/disk/rbd/disk_1', { mode: 'create', pool: 'rbd', size: '64M', count: '1', create_image: 'true', backstore: 'user:rbd' }],
      [api1, 'PUT', '/api/disk/rbd/disk_2', { mode: 'create', pool: 'rbd', size: '32M', count: '1', create_image: 'true', backstore: 'user:rbd' }],
      [api1, 'PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_1' }],
      [api1, 'PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_2' }],
      [api2, 'PUT', `/api/client/${IQN}/${HOST}`],
      [api2, 'PUT', `/api/clientauth/${IQN}/${HOST}`, { username: CHAP_USER, password: CHAP_PASSWORD, mutual_username: '', mutual_password: '' }],
      [api2, 'PUT', `/api/clientlun/${IQN}/${HOST}`, { disk: 'rbd/disk_1' }],
    ];
    for (const [base, m, u, f] of steps) {
      const r = await call(base, m, u, f);
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    const config = (await call(api1, 'GET', '/api/config')).body as {
      epoch: number;
      disks: Record<string, { owner?: string }>;
      targets: Record<string, { clients: Record<string, { luns: Record<string, unknown>; auth: { username: string } }> }>;
    };
    assert.deepEqual(Object.keys(config.targets[IQN].clients[HOST].luns), ['rbd/disk_1']);
    assert.equal(config.targets[IQN].clients[HOST].auth.username, CHAP_USER);
    const owner1 = config.disks['rbd/disk_1'].owner;
    const owner2 = config.disks['rbd/disk_2'].owner;
    assert.ok(owner1 && owner2 && owner1 !== owner2, `owners balanced over the gateways: ${owner1}, ${owner2}`);
    await waitApplied(dir, ['iscsi1', 'iscsi2'], config.epoch);

    for (const p of [p1, p2]) {
      const ls = await run('iscsi-ls', ['-s', '-i', HOST, `iscsi://${CHAP_USER}%${CHAP_PASSWORD}@${p}/`], { timeoutMs: 30_000 });
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(`Target:${IQN} Portal:127\\.0\\.0\\.1:${port},1`), `discovery through ${p} lists iscsi1's portal:\n${ls.stdout}`);
      assert.match(ls.stdout, new RegExp(`Target:${IQN} Portal:127\\.0\\.0\\.2:${port},2`), `discovery through ${p} lists iscsi2's portal:\n${ls.stdout}`);
      assert.match(ls.stdout, /Lun:0\s+Type:DIRECT_ACCESS \(Size:6[34]M\)/, `LUN 0 through ${p}:\n${ls.stdout}`);
    }

    // qemu-io through the owner of LUN 0 writes and reads back.
    // The host's initiator name: ACL mode lets only defined hosts in.
    const ownerPortal = owner1 === 'iscsi1' ? p1 : p2;
    const lun0 = `json:${JSON.stringify({ file: { driver: 'iscsi', transport: 'tcp', portal: ownerPortal, target: IQN, lun: 0, 'initiator-name': HOST, user: CHAP_USER, password: CHAP_PASSWORD } })}`;
    await qemuIoOk(lun0, ['write -P 0xa5 0 128k', 'read -P 0xa5 0 128k', 'write -P 0x3c 1M 64k', 'read -P 0x3c 1M 64k']);

    // Disruptive changes are refused while the host is logged in, naming its session; the
    // refused requests change nothing.
    const ownerApi = owner1 === 'iscsi1' ? api1 : api2;
    assert.equal((await call(ownerApi, 'PUT', '/api/disksnap/rbd/disk_1/before', { mode: 'create' })).status, 200);
    const i = await TestInitiator.connect(port, ownerPortal.split(':')[0]);
    try {
      await i.login({ targetName: IQN, initiatorName: HOST, chap: { username: CHAP_USER, secret: CHAP_PASSWORD } });
      const before = (await call(ownerApi, 'GET', '/api/config')).text;
      const session = new RegExp(`${HOST.replace(/\./g, '\\.')} on ${owner1} \\(target ${IQN.replace(/\./g, '\\.')}\\); log these sessions out first`);
      let refused = await call(ownerApi, 'DELETE', `/api/client/${IQN}/${HOST}`);
      assert.equal(refused.status, 400, refused.text);
      assert.match(String(refused.body.message), new RegExp(`^client ${HOST.replace(/\./g, '\\.')} is logged in: `));
      assert.match(String(refused.body.message), session);
      refused = await call(ownerApi, 'PUT', '/api/disk/rbd/disk_1', { mode: 'reconfigure', controls: '{"emulate_tpu": 1}' });
      assert.equal(refused.status, 400, refused.text);
      assert.match(String(refused.body.message), /^disk rbd\/disk_1 is in use: /);
      refused = await call(ownerApi, 'PUT', '/api/disksnap/rbd/disk_1/before', { mode: 'rollback' });
      assert.equal(refused.status, 400, refused.text);
      assert.match(String(refused.body.message), session);
      assert.equal((await call(ownerApi, 'GET', '/api/config')).text, before, 'refused requests changed the config');

      // A resize is not disruptive: it reaches the logged-in initiator as CAPACITY DATA HAS CHANGED.
      const tur = Buffer.alloc(6);
      const first = await i.scsi(tur, {});
      if (first.status !== 0) await i.scsi(tur, {}); // the login's own unit attention, if any
      assert.equal((await call(api1, 'PUT', '/api/disk/rbd/disk_1', { mode: 'resize', size: '128M' })).status, 200);
      let ua: { status: number; sense?: Buffer } = { status: 0 };
      for (let n = 0; n < 100 && ua.status === 0; n++) {
        ua = await i.scsi(tur, {});
        if (ua.status === 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(ua.status, 2, 'CHECK CONDITION after the resize');
      assert.ok(ua.sense);
      assert.deepEqual([ua.sense[2] & 0x0f, ua.sense[12], ua.sense[13]], [6, 0x2a, 0x09], 'UNIT ATTENTION, CAPACITY DATA HAS CHANGED');
      const cap = await i.scsi(Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { read: 8 });
      assert.equal(cap.status, 0);
      assert.equal((cap.data.readUInt32BE(0) + 1) * cap.data.readUInt32BE(4), 128 * 2 ** 20);
    } finally {
      await i.logout().catch(() => undefined);
      i.close();
    }

    // Beyond ceph-iscsi: the snapshot taken above, exported read-only as a LUN of its own.
    for (const [m, u, f] of [
      ['PUT', '/api/disksnap/rbd/disk_1/before', { mode: 'export' }],
      ['PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_1@before', lun_id: '5' }],
      ['PUT', `/api/clientlun/${IQN}/${HOST}`, { disk: 'rbd/disk_1@before' }],
    ] as Array<[string, string, Record<string, string>]>) {
      const r = await call(api1, m, u, f);
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    const snapEpoch = ((await call(api1, 'GET', '/api/config')).body as { epoch: number }).epoch;
    await waitApplied(dir, ['iscsi1', 'iscsi2'], snapEpoch);
    const snapLun = (p: string) => `json:${JSON.stringify({ file: { driver: 'iscsi', transport: 'tcp', portal: p, target: IQN, lun: 5, 'initiator-name': HOST, user: CHAP_USER, password: CHAP_PASSWORD } })}`;
    await qemuIoOk(snapLun(ownerPortal), ['read -P 0xa5 0 128k'], { readOnly: true });
    const w = await qemuIo(snapLun(ownerPortal), ['write -P 0x11 0 4k']);
    assert.match(w.stdout + w.stderr, /LUN is write protected/, `a write to the exported snapshot must fail:\n${w.stdout}${w.stderr}`);

    // iscsi2 is down: orchestration keeps working through iscsi1's API; iscsi2 converges on start.
    await g2.stop();
    let r = await call(api1, 'PUT', '/api/disk/rbd/disk_3', { mode: 'create', size: '16M' });
    assert.equal(r.status, 200, r.text);
    r = await call(api1, 'PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/disk_3', lun_id: '7' });
    assert.equal(r.status, 200, r.text);
    r = await call(api1, 'PUT', `/api/clientlun/${IQN}/${HOST}`, { disk: 'rbd/disk_3' });
    assert.equal(r.status, 200, r.text);
    const epoch = ((await call(api1, 'GET', '/api/config')).body as { epoch: number }).epoch;
    await waitApplied(dir, ['iscsi1'], epoch);
    const g2b = await GatewayProcess.start(dir, 'iscsi2', p2, `127.0.0.2:${apiPort2}`);
    gws.push(g2b);
    await waitApplied(dir, ['iscsi2'], epoch);
    const ls = await run('iscsi-ls', ['-s', '-i', HOST, `iscsi://${CHAP_USER}%${CHAP_PASSWORD}@${p2}/`], { timeoutMs: 30_000 });
    assert.match(ls.stdout, /Lun:7\s+Type:DIRECT_ACCESS \(Size:1[56]M\)/, ls.stdout);
  });
});
