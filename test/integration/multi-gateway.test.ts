/**
 * Two gateway daemons (iscsi1 on 127.0.0.1, iscsi2 on 127.0.0.2) on one shared data dir: both
 * start, a change committed to the shared configuration is applied live by both (new target and
 * LUN visible through both portals, discovery lists both), the owner reads and writes, the other
 * answers NOT READY / TARGET PORT IN STANDBY STATE; with one gateway stopped changes still
 * commit and it applies them when it starts again.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';
import { emptyAuth, GatewayConfig } from '../../src/config/schema';
import { assignOwner } from '../../src/ha/ownership';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';
import { qemuIoOk, rbdOk } from '../helpers/store';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:multi';

function addTarget(d: GatewayConfig, port: number): void {
  d.targets[IQN] = {
    // Explicit ALUA: the non-owner path is standby (implicit transitions: alua-multi-gateway.test.ts).
    acl_enabled: false, auth: emptyAuth(), controls: { alua_failover_type: 'explicit' }, ip_list: ['127.0.0.1', '127.0.0.2'],
    portals: {
      iscsi1: { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: ['127.0.0.2'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
      iscsi2: { portal_ip_addresses: ['127.0.0.2'], inactive_portal_ips: ['127.0.0.1'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
    },
    disks: {}, clients: {}, groups: {},
  };
  void port;
}

function addDisk(d: GatewayConfig, image: string, lun: number, wwn: string): void {
  d.disks[`rbd/${image}`] = { pool: 'rbd', image, wwn, backstore: 'rbd', backstore_object_name: `rbd.${image}`, controls: {}, allocating_host: 'iscsi1' };
  d.targets[IQN].disks[`rbd/${image}`] = { lun_id: lun };
  assignOwner(d, `rbd/${image}`, IQN);
}

describe('two gateways on one data dir', () => {
  const gws: GatewayProcess[] = [];
  after(async () => {
    for (const g of gws) await g.stop();
  });

  it('apply committed changes live, serve the LUN through both, owner active, other standby; a stopped gateway catches up', async () => {
    const dir = tempDir();
    const port = await freePort();
    const p1 = `127.0.0.1:${port}`;
    const p2 = `127.0.0.2:${port}`;
    const g1 = await GatewayProcess.start(dir, 'iscsi1', p1);
    gws.push(g1);
    const g2 = await GatewayProcess.start(dir, 'iscsi2', p2);
    gws.push(g2);

    await rbdOk(dir, 'create', '--size', '64M', 'rbd/multi1');
    await rbdOk(dir, 'create', '--size', '32M', 'rbd/multi2');
    const store = new FileConfigStore(configPath(dir));
    const r1 = await store.update((d) => {
      addTarget(d, port);
      addDisk(d, 'multi1', 0, '6a1f0a52-0000-4000-8000-000000000001');
    });
    // iscsi1 owns the demo disk, so the least-loaded gateway is iscsi2 (§5.3).
    assert.equal(r1.config.disks['rbd/multi1'].owner, 'iscsi2');
    await waitApplied(dir, ['iscsi1', 'iscsi2'], r1.epoch);

    for (const p of [p1, p2]) {
      const ls = await run('iscsi-ls', ['-s', `iscsi://${p}/`], { timeoutMs: 30_000 });
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(`Target:${IQN} Portal:127\\.0\\.0\\.1:${port},1`), `discovery through ${p} lists iscsi1's portal:\n${ls.stdout}`);
      assert.match(ls.stdout, new RegExp(`Target:${IQN} Portal:127\\.0\\.0\\.2:${port},2`), `discovery through ${p} lists iscsi2's portal:\n${ls.stdout}`);
      assert.match(ls.stdout, /Lun:0\s+Type:DIRECT_ACCESS \(Size:6[34]M\)/, ls.stdout);
    }

    // The owner reads and writes.
    await qemuIoOk(`iscsi://${p2}/${IQN}/0`, ['write -P 0x5a 0 64k', 'read -P 0x5a 0 64k']);

    // The other gateway: NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
    const i = await TestInitiator.connect(port, '127.0.0.1');
    try {
      await i.login({ targetName: IQN });
      let out = await i.scsi(Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]), { read: 4096 });
      if (out.sense && (out.sense[2] & 0x0f) === 6) out = await i.scsi(Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]), { read: 4096 });
      assert.equal(out.status, 2, 'CHECK CONDITION');
      assert.ok(out.sense);
      assert.deepEqual([out.sense[2] & 0x0f, out.sense[12], out.sense[13]], [2, 0x04, 0x0b]);
      // INQUIRY still works on the standby path.
      const inq = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96 });
      assert.equal(inq.status, 0);
    } finally {
      await i.logout().catch(() => undefined);
      i.close();
    }

    // iscsi1 stops; a change still commits, iscsi2 applies it, iscsi1 catches up on start.
    await g1.stop();
    const r2 = await store.update((d) => addDisk(d, 'multi2', 1, '6a1f0a52-0000-4000-8000-000000000002'));
    await waitApplied(dir, ['iscsi2'], r2.epoch);
    const ls2 = await run('iscsi-ls', ['-s', `iscsi://${p2}/`], { timeoutMs: 30_000 });
    assert.match(ls2.stdout, /Lun:1\s+Type:DIRECT_ACCESS \(Size:3[12]M\)/, ls2.stdout);
    const g1b = await GatewayProcess.start(dir, 'iscsi1', p1);
    gws.push(g1b);
    await waitApplied(dir, ['iscsi1'], r2.epoch);
    const ls1 = await run('iscsi-ls', ['-s', `iscsi://${p1}/`], { timeoutMs: 30_000 });
    assert.match(ls1.stdout, /Lun:1\s+Type:DIRECT_ACCESS \(Size:3[12]M\)/, ls1.stdout);
    // Data written through the owner is still there (read through the owner again).
    await qemuIoOk(`iscsi://${p2}/${IQN}/0`, ['read -P 0x5a 0 64k']);
    await store.close();
  });
});
