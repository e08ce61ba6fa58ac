/**
 * iSCSI protocol behaviour of the real daemon, driven byte by byte by the test initiator:
 * NOP-In pings, logout reason codes, unsolicited data and R2T limits, task management
 * ordering, SendTargets, session reinstatement, many sessions, clean shutdown.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath, storeRoot } from '../../src/config/paths';
import { ImageStore } from '../../src/store';
import { createDemoImage, demoConfig } from '../../src/daemon/demo';
import { DEMO_IQN, Daemon, tempDir } from '../helpers/daemon';
import { TestInitiator, parsePairs, textData } from '../helpers/initiator';

const READ10 = (lba: number, blocks: number) => Buffer.from([0x28, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0]);
const WRITE10 = (lba: number, blocks: number) => Buffer.from([0x2a, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0]);

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** A data dir whose demo target has the given controls. */
async function dataDirWith(controls: Record<string, number | boolean | string>): Promise<string> {
  const dir = tempDir();
  const cfg = demoConfig();
  cfg.targets[DEMO_IQN].controls = controls;
  const store = await ImageStore.open(storeRoot(dir));
  await createDemoImage(store);
  await store.close();
  await new FileConfigStore(configPath(dir)).update((d) => void Object.assign(d, { disks: cfg.disks, targets: cfg.targets }));
  return dir;
}

async function session(port: number, isid: string, keys: Array<[string, string]> = []): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  await i.login({ targetName: DEMO_IQN, isid: Buffer.from(isid, 'hex'), keys });
  await i.clearUnitAttentions();
  return i;
}

function tmf(i: TestInitiator, fn: number, refItt: number, refCmdSN: number, lun = 0): void {
  i.sendRaw(
    TestInitiator.bhs(0x42, 0x80 | fn, 0, (h) => {
      h[9] = lun;
      h.writeUInt32BE(i.nextItt(), 16);
      h.writeUInt32BE(refItt, 20);
      h.writeUInt32BE(i.cmdSN, 24);
      h.writeUInt32BE(i.expStatSN, 28);
      h.writeUInt32BE(refCmdSN, 32);
    }),
  );
}

describe('iSCSI protocol', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start({
      dataDir: await dataDirWith({
        nopin_timeout: 3,
        nopin_response_timeout: 3,
        initial_r2t: false,
        first_burst_length: 65536,
        max_burst_length: 65536,
        max_outstanding_r2t: 4,
      }),
    });
  });
  after(async () => {
    if (daemon.alive) await daemon.stop();
  });

  it('pings an idle connection and drops it when the ping goes unanswered', { timeout: 30_000 }, async () => {
    const silent = await session(daemon.port, '800000000010');
    const polite = await session(daemon.port, '800000000011');
    // The polite initiator answers pings; the silent one ignores them.
    const politeLoop = (async () => {
      while (!polite.closed) {
        const p = await polite.receive(1000);
        if (p?.opcode === 0x20 && p.bhs.readUInt32BE(20) !== 0xffffffff) {
          assert.equal(p.bhs.readUInt32BE(16), 0xffffffff, 'a target ping carries ITT 0xffffffff');
          polite.nopOutReply(p.bhs.readUInt32BE(20));
        }
      }
    })();
    const ping = await silent.receive(6000);
    assert.ok(ping, 'a NOP-In ping after nopin_timeout');
    assert.equal(ping.opcode, 0x20);
    assert.notEqual(ping.bhs.readUInt32BE(20), 0xffffffff);
    assert.equal(await silent.waitClosed(8000), true, 'dropped after nopin_response_timeout');
    assert.equal(polite.closed, false, 'the answering connection stays');
    polite.close();
    await politeLoop;
  });

  it('answers logout reason codes', async () => {
    const i = await session(daemon.port, '800000000012');
    const logout = async (reason: number, cid: number) => {
      i.sendRaw(
        TestInitiator.bhs(0x46, 0x80 | reason, 0, (h) => {
          h.writeUInt32BE(i.nextItt(), 16);
          h.writeUInt16BE(cid, 20);
          h.writeUInt32BE(i.cmdSN, 24);
        }),
      );
      i.cmdSN++;
      return i.receive();
    };
    const wrongCid = await logout(1, 9);
    assert.equal(wrongCid!.opcode, 0x26);
    assert.equal(wrongCid!.bhs[2], 1, 'CID not found');
    const recovery = await logout(2, 0);
    assert.equal(recovery!.bhs[2], 2, 'connection recovery is not supported');
    const ok = await logout(0, 0);
    assert.equal(ok!.bhs[2], 0);
    assert.equal(await i.waitClosed(), true);
  });

  it('takes immediate + unsolicited data up to FirstBurstLength, the rest through R2Ts', async () => {
    const i = await session(daemon.port, '800000000013', [['InitialR2T', 'No'], ['ImmediateData', 'Yes']]);
    const data = pattern(256 * 1024, 7);
    const w = await i.scsi(WRITE10(4096, 512), { write: data, immediate: 8192, unsolicited: 65536 - 8192 });
    assert.equal(w.status, 0);
    // Everything beyond the first burst was solicited, in bursts of MaxBurstLength.
    assert.deepEqual(i.r2ts[0], { offset: 65536, length: 65536 });
    assert.equal(i.r2ts.reduce((n, r) => n + r.length, 0), 256 * 1024 - 65536);
    const r = await i.scsi(READ10(4096, 512), { read: data.length });
    assert.equal(r.status, 0);
    assert.ok(r.data.equals(data));
    i.close();
  });

  it('keeps at most MaxOutstandingR2T R2Ts outstanding', async () => {
    const i = await session(daemon.port, '800000000014', [['MaxOutstandingR2T', '16']]);
    await i.scsi(WRITE10(8192, 2048), { write: pattern(1 << 20, 3), stallOnR2T: true });
    await new Promise((r) => setTimeout(r, 300));
    let more = 0;
    for (;;) {
      const p = await i.receive(200);
      if (!p) break;
      if (p.opcode === 0x31) more++;
    }
    assert.equal(1 + more, 4, 'four R2Ts (MaxOutstandingR2T=4), no more until data arrives');
    i.close();
  });

  it('aborts a task waiting for data, without a response for it, and the session goes on', async () => {
    const i = await session(daemon.port, '800000000015');
    const stalledCmdSN = i.cmdSN;
    await i.scsi(WRITE10(100, 128), { write: pattern(64 * 1024, 1), stallOnR2T: true }); // one R2T (MaxBurstLength)
    const stalled = i.lastItt;
    tmf(i, 9, stalled, stalledCmdSN); // QUERY TASK
    let p = await i.receive();
    assert.equal(p!.opcode, 0x22);
    assert.equal(p!.bhs[2], 7, 'QUERY TASK: function succeeded (the task exists)');
    tmf(i, 1, stalled, stalledCmdSN); // ABORT TASK
    p = await i.receive();
    assert.equal(p!.opcode, 0x22, 'the TMF response, not a SCSI response for the aborted task');
    assert.equal(p!.bhs[2], 0, 'function complete');
    tmf(i, 9, stalled, stalledCmdSN);
    p = await i.receive();
    assert.equal(p!.bhs[2], 0, 'QUERY TASK after the abort: function complete (no such task, SAM-5)');
    const tur = await i.scsi(Buffer.alloc(6), {});
    assert.ok(tur.status === 0 || tur.status === 2);
    assert.equal(await i.receive(300), undefined, 'nothing ever arrives for the aborted task');
    i.close();
  });

  it('answers ABORT TASK for an unknown task with "task does not exist"', async () => {
    const i = await session(daemon.port, '800000000016');
    tmf(i, 1, 0x12345, (i.cmdSN - 5) >>> 0);
    const p = await i.receive();
    assert.equal(p!.bhs[2], 1);
    i.close();
  });

  it('LOGICAL UNIT RESET waits for outstanding tasks and reports function complete', async () => {
    const i = await session(daemon.port, '800000000017');
    await i.scsi(WRITE10(300, 64), { write: pattern(32768, 2), stallOnR2T: true }); // one R2T
    tmf(i, 5, 0xffffffff, i.cmdSN);
    const p = await i.receive();
    assert.equal(p!.opcode, 0x22);
    assert.equal(p!.bhs[2], 0);
    i.close();
  });

  it('answers SendTargets in a discovery session', async () => {
    const i = await TestInitiator.connect(daemon.port);
    await i.login({ sessionType: 'Discovery' });
    const send = async (value: string) => {
      const data = textData([['SendTargets', value]]);
      i.sendRaw(
        TestInitiator.bhs(0x44, 0x80, data.length, (h) => {
          h.writeUInt32BE(i.nextItt(), 16);
          h.writeUInt32BE(0xffffffff, 20);
          h.writeUInt32BE(i.cmdSN, 24);
        }),
        data,
      );
      i.cmdSN++;
      const r = await i.receive();
      assert.equal(r!.opcode, 0x24);
      return parsePairs(r!.data);
    };
    assert.deepEqual(await send('All'), [
      ['TargetName', DEMO_IQN],
      ['TargetAddress', `127.0.0.1:${daemon.port},1`],
    ]);
    assert.deepEqual(await send(DEMO_IQN), [
      ['TargetName', DEMO_IQN],
      ['TargetAddress', `127.0.0.1:${daemon.port},1`],
    ]);
    assert.deepEqual(await send('iqn.2000-01.com.example:none'), []);
    // A SCSI command has no place in a discovery session.
    i.sendRaw(TestInitiator.bhs(0x01, 0x80, 0, (h) => h.writeUInt32BE(i.nextItt(), 16)));
    assert.equal((await i.receive())!.opcode, 0x3f);
    await i.logout();
    i.close();
  });

  it('reinstates a session logging in again with the same ISID', async () => {
    const first = await session(daemon.port, '800000000018');
    const second = await session(daemon.port, '800000000018');
    assert.equal(await first.waitClosed(), true, 'the old session is closed');
    assert.ok(await second.ping());
    second.close();
  });

  it('serves many sessions at once without mixing their data', async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, (_, k) => session(daemon.port, `8000000001${k.toString(16).padStart(2, '0')}`)));
    await Promise.all(
      sessions.map(async (s, k) => {
        for (let round = 0; round < 10; round++) {
          const data = pattern(16384, k * 16 + round);
          const lba = 20000 + k * 64;
          assert.equal((await s.scsi(WRITE10(lba, 32), { write: data, immediate: 8192 })).status, 0);
          const r = await s.scsi(READ10(lba, 32), { read: 16384 });
          assert.ok(r.data.equals(data), `session ${k} round ${round}`);
        }
      }),
    );
    for (const s of sessions) s.close();
  });

  it('asks initiators to log out on SIGTERM, then exits cleanly', async () => {
    const i = await session(daemon.port, '800000000019');
    daemon.proc.kill('SIGTERM');
    const msg = await i.receive();
    assert.equal(msg!.opcode, 0x32, 'Async Message');
    assert.equal(msg!.bhs[36], 1, 'event: logout requested');
    const resp = await i.logout();
    assert.equal(resp!.opcode, 0x26);
    assert.equal(await daemon.stop(), 0);
  });
});
