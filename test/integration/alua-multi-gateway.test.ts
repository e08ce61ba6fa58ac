/**
 * ALUA across two gateway processes (iscsi1 on 127.0.0.1, iscsi2 on 127.0.0.2, one data dir):
 * discovery through either lists both portals with their own TPGT, a login gets the TPGT of
 * its portal, REPORT TARGET PORT GROUPS is byte-identical through either gateway, I/O at the
 * non-owner (implicit mode) moves ownership there and the other path sees ASYMMETRIC ACCESS
 * STATE CHANGED, explicit mode answers standby and moves with SET TARGET PORT GROUPS, and
 * libiscsi's MultipathIO suite passes with its two paths on the two gateways.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';
import { emptyAuth, GatewayConfig } from '../../src/config/schema';
import { assignOwner } from '../../src/ha/ownership';
import { moveOwner } from '../../src/ha/access-state';
import { freePort, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';
import { runSuite } from '../helpers/conformance';
import { THIN, rbdOk } from '../helpers/store';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:alua';
const DISK = 'rbd/alua1';
const RTPG = Buffer.from([0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 0, 0]);
const TUR = Buffer.alloc(6);
const READ10 = Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]);

function addTarget(d: GatewayConfig): void {
  d.targets[IQN] = {
    acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ['127.0.0.1', '127.0.0.2'],
    portals: {
      iscsi1: { portal_ip_addresses: ['127.0.0.1'], inactive_portal_ips: ['127.0.0.2'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
      iscsi2: { portal_ip_addresses: ['127.0.0.2'], inactive_portal_ips: ['127.0.0.1'], gateway_ip_list: ['127.0.0.1', '127.0.0.2'], tpgs: 2 },
    },
    disks: {}, clients: {}, groups: {},
  };
  d.disks[DISK] = {
    pool: 'rbd', image: 'alua1', wwn: '6a1f0a52-0000-4000-8000-00000000a1a1', backstore: 'rbd', backstore_object_name: 'rbd.alua1',
    controls: { ...THIN }, allocating_host: 'iscsi1',
  };
  d.targets[IQN].disks[DISK] = { lun_id: 0 };
  assignOwner(d, DISK, IQN);
}

/** Sense key / ASC / ASCQ of a CHECK CONDITION (fixed format), or undefined. */
function sense(out: { status: number; sense: Buffer | undefined }): [number, number, number] | undefined {
  return out.status === 2 && out.sense ? [out.sense[2] & 0x0f, out.sense[12], out.sense[13]] : undefined;
}

async function session(host: string, port: number, name: string): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port, host);
  await i.login({ targetName: IQN, initiatorName: name });
  // The new nexus starts with POWER ON (29/00): take it.
  for (let n = 0; n < 4; n++) if ((await i.scsi(TUR)).status === 0) break;
  return i;
}

/** RTPG groups: id -> [state, pref, ports]. */
function decodeRtpg(data: Buffer): { itt: number; groups: Map<number, { state: number; pref: boolean; sup: number; ports: number[] }> } {
  assert.equal(data[4] & 0x70, 0x10, 'extended header');
  const groups = new Map<number, { state: number; pref: boolean; sup: number; ports: number[] }>();
  const end = 4 + data.readUInt32BE(0);
  for (let at = 8; at < end;) {
    const count = data[at + 7];
    const ports = [];
    for (let k = 0; k < count; k++) ports.push(data.readUInt16BE(at + 8 + 4 * k + 2));
    groups.set(data.readUInt16BE(at + 2), { state: data[at] & 0x0f, pref: (data[at] & 0x80) !== 0, sup: data[at + 1], ports });
    at += 8 + 4 * count;
  }
  return { itt: data[5], groups };
}

/** The target port group that is active/optimized (the image lock's holder), as `i`'s path reports it. */
async function activeGroup(i: TestInitiator): Promise<number> {
  const r = await i.scsi(RTPG, { read: 1024 });
  assert.equal(r.status, 0, JSON.stringify(sense(r)));
  const active = [...decodeRtpg(r.data).groups].filter(([, g]) => g.state === 0).map(([id]) => id);
  assert.equal(active.length, 1, `one active/optimized group: ${JSON.stringify(active)}`);
  return active[0];
}

describe('ALUA with two gateway processes', () => {
  const dir = tempDir('igw-alua-');
  const gws: GatewayProcess[] = [];
  let port = 0;
  let store: FileConfigStore;

  before(async () => {
    port = await freePort();
    // No automatic failback: its (announced) 2A/06 would land in the middle of libiscsi's
    // MultipathIO tests, which expect no state change they did not cause; failover tests cover it.
    const cfg = path.join(dir, 'gateway.cfg');
    fs.writeFileSync(cfg, '[config]\napi_secure = false\nha_failback_secs = 0\n');
    const extra = { args: ['--config', cfg] };
    gws.push(await GatewayProcess.start(dir, 'iscsi1', `127.0.0.1:${port}`, `127.0.0.1:${await freePort()}`, extra));
    gws.push(await GatewayProcess.start(dir, 'iscsi2', `127.0.0.2:${port}`, `127.0.0.2:${await freePort()}`, extra));
    await rbdOk(dir, 'create', '--size', '64M', DISK);
    store = new FileConfigStore(configPath(dir));
    const r = await store.update((d) => addTarget(d));
    // iscsi1 owns the demo disk, so the least-loaded gateway, iscsi2, owns this one (§5.3).
    assert.equal(r.config.disks[DISK].owner, 'iscsi2');
    await waitApplied(dir, ['iscsi1', 'iscsi2'], r.epoch);
  });
  after(async () => {
    await store?.close();
    for (const g of gws) await g.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('discovery through either gateway lists both portals, each with its own TPGT; a login gets its portal\'s TPGT', async () => {
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const i = await TestInitiator.connect(port, host);
      try {
        await i.login({ sessionType: 'Discovery' });
        const pairs = await i.text([['SendTargets', IQN]]);
        assert.deepEqual(pairs, [['TargetName', IQN], ['TargetAddress', `127.0.0.1:${port},1`], ['TargetAddress', `127.0.0.2:${port},2`]], `through ${host}`);
      } finally {
        i.close();
      }
    }
    for (const [host, tpgt] of [['127.0.0.1', '1'], ['127.0.0.2', '2']]) {
      const i = await TestInitiator.connect(port, host);
      try {
        const { keys } = await i.login({ targetName: IQN });
        assert.equal(keys.TargetPortalGroupTag, tpgt, `login through ${host}`);
      } finally {
        i.close();
      }
    }
  });

  it('INQUIRY, VPD 0x83 and REPORT TARGET PORT GROUPS describe the whole target identically on both gateways', async () => {
    const a = await session('127.0.0.1', port, 'iqn.2024-01.test:alua-a');
    const b = await session('127.0.0.2', port, 'iqn.2024-01.test:alua-b');
    try {
      const rtpg = [];
      for (const [i, rtpi] of [[a, 1], [b, 2]] as const) {
        const inq = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96 });
        assert.equal(inq.status, 0);
        assert.equal((inq.data[5] >> 4) & 3, 1, 'TPGS 01b: implicit ALUA');
        const vpd = await i.scsi(Buffer.from([0x12, 1, 0x83, 0x04, 0, 0]), { read: 1024 });
        assert.equal(vpd.status, 0);
        const d = vpd.data;
        const designators = new Map<number, Buffer>();
        for (let at = 4; at < 4 + d.readUInt16BE(2); at += 4 + d[at + 3]) designators.set(((d[at + 1] >> 4) & 3) * 16 + (d[at + 1] & 0x0f), d.subarray(at + 4, at + 4 + d[at + 3]));
        assert.equal(designators.get(0x14)!.readUInt16BE(2), rtpi, 'relative target port designator');
        assert.equal(designators.get(0x15)!.readUInt16BE(2), rtpi, 'target port group designator (one TPG per gateway)');
        assert.equal(designators.get(0x18)!.toString('utf8').replace(/\0+$/, ''), `${IQN},t,0x000${rtpi}`, 'target port name');
        assert.equal(designators.get(0x28)!.toString('utf8').replace(/\0+$/, ''), IQN, 'target device name');
        const r = await i.scsi(RTPG, { read: 1024 });
        assert.equal(r.status, 0, JSON.stringify(sense(r)));
        rtpg.push(r.data);
      }
      assert.deepEqual(rtpg[0], rtpg[1], 'RTPG is byte-identical through both gateways');
      const { itt, groups } = decodeRtpg(rtpg[0]);
      assert.equal(itt, 10, 'IMPLICIT TRANSITION TIME');
      assert.deepEqual([...groups.keys()], [1, 2]);
      assert.deepEqual(groups.get(1), { state: 1, pref: false, sup: 0x8b, ports: [1] }, 'iscsi1: active/non-optimized');
      assert.deepEqual(groups.get(2), { state: 0, pref: true, sup: 0x8b, ports: [2] }, 'iscsi2 (owner): active/optimized');
      // Implicit mode has no SET TARGET PORT GROUPS.
      const stpg = await a.scsi(Buffer.from([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]), { write: Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]) });
      assert.deepEqual(sense(stpg), [5, 0x20, 0x00], "INVALID COMMAND OPERATION CODE");
    } finally {
      a.close();
      b.close();
    }
  });

  it('I/O at the non-owner moves ownership there (no unit attention: the states follow the I/O); RTPG shows it through both', async () => {
    const a = await session('127.0.0.1', port, 'iqn.2024-01.test:alua-a');
    const b = await session('127.0.0.2', port, 'iqn.2024-01.test:alua-b');
    try {
      const data = Buffer.alloc(4096, 0x3c);
      // A read at the active/non-optimized port is served there (read-only view), ownership stays.
      assert.equal((await a.scsi(READ10, { read: 4096 })).status, 0);
      assert.equal(await activeGroup(a), 2, 'a read does not move ownership');
      const w = await a.scsi(Buffer.from([0x2a, 0, 0, 0, 0, 16, 0, 0, 8, 0]), { write: data });
      assert.equal(w.status, 0, `WRITE at the non-owner: ${JSON.stringify(sense(w))}`);
      // The lock holder moved; the configured owner stays the preferred one (failback).
      assert.equal(await activeGroup(b), 1, 'ownership moved to iscsi1');
      assert.equal((await store.read()).config.disks[DISK].owner, 'iscsi2', 'the preferred owner is unchanged');
      assert.equal((await a.scsi(TUR)).status, 0);
      assert.equal((await b.scsi(TUR)).status, 0, 'an implicit transition raises no unit attention on the other path');
      for (const i of [a, b]) {
        const r = decodeRtpg((await i.scsi(RTPG, { read: 1024 })).data).groups;
        assert.deepEqual([r.get(1)!.state, r.get(2)!.state], [0, 1], 'iscsi1 active/optimized, iscsi2 active/non-optimized');
      }
      // A write through iscsi2 moves it back; a read there sees the data written through iscsi1.
      const rd = await b.scsi(Buffer.from([0x28, 0, 0, 0, 0, 16, 0, 0, 8, 0]), { read: 4096 });
      assert.equal(rd.status, 0, JSON.stringify(sense(rd)));
      assert.deepEqual(rd.data, data);
      assert.equal((await b.scsi(Buffer.from([0x2a, 0, 0, 0, 0, 32, 0, 0, 8, 0]), { write: data })).status, 0);
      assert.equal(await activeGroup(a), 2);
    } finally {
      a.close();
      b.close();
    }
  });

  it('an administrative owner change is announced (2A/06) on every path', async () => {
    const a = await session('127.0.0.1', port, 'iqn.2024-01.test:alua-a');
    const b = await session('127.0.0.2', port, 'iqn.2024-01.test:alua-b');
    try {
      const r = await store.update((d) => moveOwner(d, DISK, 'iscsi1'));
      await waitApplied(dir, ['iscsi1', 'iscsi2'], r.epoch);
      assert.deepEqual(sense(await a.scsi(TUR)), [6, 0x2a, 0x06]);
      assert.deepEqual(sense(await b.scsi(TUR)), [6, 0x2a, 0x06]);
      // Reported once; the new owner may still be transitioning (04/0A) until it opened the image.
      for (let n = 0; ; n++) {
        const r = await a.scsi(TUR);
        if (r.status === 0) break;
        assert.deepEqual(sense(r), [2, 0x04, 0x0a], 'only TRANSITIONING until settled');
        assert.ok(n < 200, 'settles');
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('explicit mode: non-owner standby (04/0B), TPGS 11b, SET TARGET PORT GROUPS moves ownership and tells the other path', async () => {
    const r0 = await store.update((d) => {
      d.targets[IQN].controls = { alua_failover_type: 'explicit' };
    });
    await waitApplied(dir, ['iscsi1', 'iscsi2'], r0.epoch);
    const probe = await session('127.0.0.1', port, 'iqn.2024-01.test:alua-p');
    const ownerTpg = await activeGroup(probe).finally(() => probe.close());
    const [ownerHost, otherHost, otherTpg] = ownerTpg === 1 ? ['127.0.0.1', '127.0.0.2', 2] : ['127.0.0.2', '127.0.0.1', 1];
    const o = await session(ownerHost, port, 'iqn.2024-01.test:alua-o');
    const s = await session(otherHost, port, 'iqn.2024-01.test:alua-s');
    try {
      const inq = await s.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96 });
      assert.equal((inq.data[5] >> 4) & 3, 3, 'TPGS 11b: explicit and implicit');
      assert.deepEqual(sense(await s.scsi(READ10, { read: 4096 })), [2, 0x04, 0x0b], 'standby');
      const groups = decodeRtpg((await s.scsi(RTPG, { read: 1024 })).data).groups;
      assert.equal(groups.get(otherTpg)!.state, 2, 'standby in RTPG');
      assert.equal(groups.get(otherTpg)!.sup, 0x8d, 'T_SUP U_SUP S_SUP AO_SUP');
      const stpg = (list: Buffer) => s.scsi(Buffer.from([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, list.length, 0, 0]), { write: list });
      // Bad input: unknown group, unsupported state (ANO), truncated descriptor.
      assert.deepEqual(sense(await stpg(Buffer.from([0, 0, 0, 0, 0x00, 0, 0, 9]))), [5, 0x26, 0x00], 'unknown target port group');
      assert.deepEqual(sense(await stpg(Buffer.from([0, 0, 0, 0, 0x01, 0, 0, otherTpg]))), [5, 0x26, 0x00], 'active/non-optimized is not supported');
      assert.deepEqual(sense(await stpg(Buffer.from([0, 0, 0, 0, 0x00, 0]))), [5, 0x1a, 0x00], 'parameter list length error');
      assert.equal(await activeGroup(o), ownerTpg, 'nothing moved');
      // The real thing: make the standby path's group active/optimized.
      const ok = await stpg(Buffer.from([0, 0, 0, 0, 0x00, 0, 0, otherTpg]));
      assert.equal(ok.status, 0, JSON.stringify(sense(ok)));
      assert.equal(await activeGroup(s), otherTpg, 'ownership moved');
      assert.equal((await s.scsi(READ10, { read: 4096 })).status, 0, 'the STPG issuer is not told, and reads now');
      assert.deepEqual(sense(await o.scsi(TUR)), [6, 0x2a, 0x06], 'the other path is told');
      // The old holder learns of the move through the lease within a poll interval or two.
      for (let n = 0; ; n++) {
        const r = await o.scsi(READ10, { read: 4096 });
        if (r.status !== 0 && sense(r)?.[0] !== 6) {
          assert.deepEqual(sense(r), [2, 0x04, 0x0b], 'and is standby now');
          break;
        }
        assert.ok(n < 60, 'the old owner goes standby');
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      o.close();
      s.close();
      const r1 = await store.update((d) => {
        d.targets[IQN].controls = {};
      });
      await waitApplied(dir, ['iscsi1', 'iscsi2'], r1.epoch);
    }
  });

  it('libiscsi MultipathIO with one path on each gateway: all four tests pass', { timeout: 240_000 }, async (t) => {
    const url = (host: string) => `iscsi://${host}:${port}/${IQN}/0`;
    // Simple (writes through one path, reads through the other), Reset (the LU reset's unit
    // attention on both gateways), CompareAndWrite (one initiator alternating paths command by
    // command: a hand-over per switch) and CompareAndWriteAsync (2000 COMPARE AND WRITEs racing
    // through both gateways: turns of the damped hold time). Fresh image: libiscsi 1.19's
    // CompareAndWrite zeroes blocks 0-255 but also uses block 256, which must still be zero.
    const started = Date.now();
    const r = await runSuite(url('127.0.0.1'), 'MultipathIO', ['--dataloss'], url('127.0.0.2'));
    const verdicts = Object.fromEntries(r.results);
    t.diagnostic(`${JSON.stringify(verdicts)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(verdicts, {
      'MultipathIO.Simple': 'PASS', 'MultipathIO.Reset': 'PASS', 'MultipathIO.CompareAndWrite': 'PASS', 'MultipathIO.CompareAndWriteAsync': 'PASS',
    }, r.log.slice(-3000));
  });

});
