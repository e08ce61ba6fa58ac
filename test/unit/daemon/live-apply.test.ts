/**
 * Live apply in one gateway (in process, real portal, test initiator): a committed change
 * reaches running sessions without dropping them — new LUN (REPORTED LUNS DATA HAS CHANGED),
 * a disk control (MODE PARAMETERS CHANGED and the new value), a resize (CAPACITY DATA HAS
 * CHANGED) — and disruptive changes are refused naming the session in the way.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { emptyAuth } from '../../../src/config/schema';
import { Gateway } from '../../../src/daemon/gateway';
import { DisruptiveChangeError } from '../../../src/daemon/running-state';
import { assignOwner } from '../../../src/ha/ownership';
import { silentLogger } from '../../../src/util/log';
import { TestInitiator } from '../../helpers/initiator';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:live';
const INITIATOR = 'iqn.2024-01.test:live-initiator';

function senseOf(r: { status: number; sense: Buffer | undefined }): string {
  if (r.status !== 2 || !r.sense) return `status ${r.status}`;
  return `${(r.sense[2] & 0x0f).toString(16)}/${r.sense[12].toString(16).padStart(2, '0')}${r.sense[13].toString(16).padStart(2, '0')}`;
}

describe('reconciler: live apply', () => {
  let dir: string;
  let gw: Gateway;
  let port: number;
  let i: TestInitiator;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-live-'));
    // A non-loopback-only start would skip the demo; loopback creates it (ignored here).
    gw = await Gateway.start({ dataDir: dir, name: 'gw1', portals: [{ host: '127.0.0.1', port: 0 }], log: silentLogger() });
    port = gw.boundPortals()[0].port;
    const r = await gw.configStore.update((d) => {
      d.disks['file/a'] = { pool: 'file', image: 'a', backstore: 'file', path: 'images/a.img', size: 8 << 20, wwn: 'live-a', backstore_object_name: 'file.a', controls: {} };
      d.targets[IQN] = {
        acl_enabled: true, auth: emptyAuth(), controls: {}, ip_list: ['127.0.0.1'],
        portals: { gw1: { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: [], gateway_ip_list: ['127.0.0.1'], tpgs: 1 } },
        disks: { 'file/a': { lun_id: 0 } },
        clients: { [INITIATOR]: { auth: emptyAuth(), luns: { 'file/a': { lun_id: 0 } }, group_name: '' } },
        groups: {},
      };
      assignOwner(d, 'file/a', IQN);
    });
    await gw.waitApplied(r.epoch);
    i = await TestInitiator.connect(port);
    await i.login({ targetName: IQN, initiatorName: INITIATOR });
    await i.clearUnitAttentions(0);
  });

  after(async () => {
    await i.logout().catch(() => undefined);
    i.close();
    await gw.stop();
  });

  it('reports the session in the running state and refuses disruptive changes naming it', async () => {
    const s = gw.localSessions();
    assert.equal(s.length, 1);
    assert.deepEqual([s[0].gateway, s[0].target, s[0].initiator, s[0].disks], ['gw1', IQN, INITIATOR, ['file/a']]);
    for (const change of [
      { kind: 'disk-delete', disk: 'file/a' } as const,
      { kind: 'client-delete', target: IQN, client: INITIATOR } as const,
      { kind: 'disk-reconfigure', disk: 'file/a' } as const,
      { kind: 'target-delete', target: IQN } as const,
    ]) {
      await assert.rejects(gw.refuseIfDisruptive(change), (e: unknown) => e instanceof DisruptiveChangeError && e.message.includes(`${INITIATOR} on gw1`));
    }
    await gw.refuseIfDisruptive({ kind: 'client-delete', target: IQN, client: 'iqn.2024-01.test:someone-else' });
  });

  it('a new LUN appears on the logged-in session (REPORTED LUNS DATA HAS CHANGED)', async () => {
    const r = await gw.configStore.update((d) => {
      d.disks['file/b'] = { pool: 'file', image: 'b', backstore: 'file', path: 'images/b.img', size: 4 << 20, wwn: 'live-b', backstore_object_name: 'file.b', controls: {} };
      d.targets[IQN].disks['file/b'] = { lun_id: 1 };
      d.targets[IQN].clients[INITIATOR].luns['file/b'] = { lun_id: 1 };
      assignOwner(d, 'file/b', IQN);
    });
    await gw.waitApplied(r.epoch);
    assert.equal(senseOf(await i.scsi(Buffer.alloc(6), { lun: 0 })), '6/3f0e');
    const rl = await i.scsi(Buffer.from([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]), { read: 64 });
    assert.equal(rl.data.readUInt32BE(0), 16, 'two LUNs reported');
    await i.clearUnitAttentions(1);
  });

  it('a disk control change reaches the session as MODE PARAMETERS CHANGED, with the new value', async () => {
    const wce = async () => {
      const ms = await i.scsi(Buffer.from([0x1a, 0, 0x08, 0, 64, 0]), { read: 64, lun: 0 });
      assert.equal(ms.status, 0);
      return (ms.data[4 + ms.data[3] + 2] & 0x04) !== 0;
    };
    const before = await wce();
    const r = await gw.configStore.update((d) => void (d.disks['file/a'].controls.emulate_write_cache = before ? 0 : 1));
    await gw.waitApplied(r.epoch);
    assert.equal(senseOf(await i.scsi(Buffer.alloc(6), { lun: 0 })), '6/2a01');
    assert.equal(await wce(), !before);
  });

  it('a deleted client is logged out; other sessions stay', async () => {
    const other = await TestInitiator.connect(port);
    await assert.rejects(other.login({ targetName: IQN, initiatorName: 'iqn.2024-01.test:not-in-acl' }));
    other.close();
    const r = await gw.configStore.update((d) => {
      d.targets[IQN].clients['iqn.2024-01.test:second'] = { auth: emptyAuth(), luns: {}, group_name: '' };
    });
    await gw.waitApplied(r.epoch);
    // An unrelated change leaves the session working.
    assert.equal((await i.scsi(Buffer.alloc(6), { lun: 0 })).status, 0);
    const r2 = await gw.configStore.update((d) => void delete d.targets[IQN].clients[INITIATOR]);
    await gw.waitApplied(r2.epoch);
    for (let k = 0; k < 100 && gw.localSessions().length > 0; k++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(gw.localSessions().length, 0);
  });
});
