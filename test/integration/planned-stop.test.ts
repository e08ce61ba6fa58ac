/**
 * A planned stop (SIGTERM) moves a multipath initiator to the other gateway BEFORE its sessions
 * are asked to log out (src/daemon/planned-stop.ts): the stopping owner's target port group
 * turns unavailable with ASYMMETRIC ACCESS STATE CHANGED on its nexuses, media commands there
 * get NOT READY / TARGET PORT IN UNAVAILABLE STATE (04/0C), the other gateway's path works, and
 * only then does the Async Message (AsyncEvent 1, logout request) arrive. Two gateway processes
 * on one data dir, the project's test initiator on both paths.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, tempDir } from '../helpers/daemon';
import { HA_IQN, HaGateway, haSession, setupHaTarget, write10 } from '../helpers/ha';
import { ScsiOutcome, TestInitiator } from '../helpers/initiator';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';

const TUR = Buffer.alloc(6);

function rtpgCdb(): Buffer {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa3;
  cdb[1] = 0x0a;
  cdb.writeUInt32BE(1024, 6);
  return cdb;
}

const senseOf = (r: ScsiOutcome): { key: number; asc: number; ascq: number } | undefined =>
  r.sense ? { key: r.sense[2] & 0x0f, asc: r.sense[12], ascq: r.sense[13] } : undefined;

const isUa = (r: ScsiOutcome): boolean => r.status === 2 && senseOf(r)?.key === 6;

/** The command, again while it ends in a unit attention (bounded). */
async function past(i: TestInitiator, cdb: Buffer, opts: { read?: number; write?: Buffer } = {}): Promise<ScsiOutcome> {
  let r = await i.scsi(cdb, opts);
  for (let n = 0; n < 6 && isUa(r); n++) r = await i.scsi(cdb, opts);
  return r;
}

/** State (low nibble of byte 0) per target port group id. */
function groupStates(data: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  const end = Math.min(4 + data.readUInt32BE(0), data.length);
  for (let at = 4; at + 8 <= end; at += 8 + 4 * data[at + 7]) out.set(data.readUInt16BE(at + 2), data[at] & 0x0f);
  return out;
}

describe('planned stop moves the initiators first', { timeout: 120_000 }, () => {
  const gws: HaGateway[] = [];
  const sessions: TestInitiator[] = [];
  after(async () => {
    for (const s of sessions) s.close();
    for (const g of gws) await g.stop('SIGKILL').catch(() => undefined);
  });

  it('SIGTERM of the owner: unavailable + 2A/06 on its path, 04/0C for writes there, the other path writes, then the logout request', async () => {
    const dir = tempDir('igw-planned-');
    const port = await freePort();
    const g1 = await HaGateway.start(dir, 'iscsi1', '127.0.0.1', port);
    gws.push(g1);
    const g2 = await HaGateway.start(dir, 'iscsi2', '127.0.0.2', port);
    gws.push(g2);
    await setupHaTarget(dir, [g1, g2], ['ps1'], 'iscsi1');
    const store = new FileConfigStore(configPath(dir));
    const portals = (await store.read()).config.targets[HA_IQN].portals;
    await store.close();
    const tpg1 = portals.iscsi1.tpg_id ?? 1;
    const tpg2 = portals.iscsi2.tpg_id ?? 2;
    const a = await haSession('127.0.0.1', port);
    sessions.push(a);
    const b = await haSession('127.0.0.2', port);
    sessions.push(b);
    const data = Buffer.alloc(4096, 0x5a);
    const w = await past(a, write10(8, 8), { write: data });
    assert.equal(w.status, 0, `write through the owner: ${JSON.stringify(senseOf(w))}`);
    assert.equal(groupStates((await past(a, rtpgCdb(), { read: 1024 })).data).get(tpg1), 0, 'iscsi1 active/optimized before the stop');

    const t0 = Date.now();
    const stopped = g1.stop('SIGTERM');
    // The owner's path: the next command reports ASYMMETRIC ACCESS STATE CHANGED.
    let ua: ScsiOutcome | undefined;
    while (!ua && Date.now() - t0 < 5000) {
      const r = await a.scsi(TUR);
      if (isUa(r)) ua = r;
      else await new Promise((res) => setTimeout(res, 10));
    }
    assert.ok(ua, 'a unit attention on the stopping owner\'s path within 5 s');
    assert.deepEqual(senseOf(ua), { key: 6, asc: 0x2a, ascq: 0x06 }, 'ASYMMETRIC ACCESS STATE CHANGED');
    const uaMs = Date.now() - t0;
    const states = groupStates((await past(a, rtpgCdb(), { read: 1024 })).data);
    assert.equal(states.get(tpg1), 3, `the stopping gateway's group reads unavailable: ${JSON.stringify([...states])}`);
    const refused = await past(a, write10(16, 8), { write: data });
    assert.equal(refused.status, 2);
    assert.deepEqual(senseOf(refused), { key: 2, asc: 0x04, ascq: 0x0c }, 'NOT READY, TARGET PORT IN UNAVAILABLE STATE');
    // The other path writes (taking the lock over if the drain has not moved it yet).
    const moved = await past(b, write10(16, 8), { write: data });
    assert.equal(moved.status, 0, `write through the other gateway: ${JSON.stringify(senseOf(moved))}`);
    assert.equal(groupStates((await past(b, rtpgCdb(), { read: 1024 })).data).get(tpg2), 0, 'iscsi2 active/optimized');
    // Only now the logout request (Async Message, AsyncEvent 1) on the stopping owner's session.
    let logout: { event: number; param3: number } | undefined;
    for (let n = 0; n < 50 && !logout; n++) {
      const p = await a.receive(10_000);
      if (!p) break;
      if (p.opcode === 0x32) logout = { event: p.bhs[36], param3: p.bhs.readUInt16BE(42) };
    }
    const logoutMs = Date.now() - t0;
    assert.equal(logout?.event, 1, 'the logout request arrived');
    assert.ok((logout?.param3 ?? 0) > 0, 'Parameter3: the seconds the initiator has to log out');
    await stopped;
    assert.equal((await g1.exited).code, 0, g1.err.slice(-2000));
    console.log(`# planned stop: 2A/06 on the owner's path ${uaMs} ms after SIGTERM, logout request after ${logoutMs} ms`);
  });
});
