/**
 * Hostile and failing peers, one defect each (issue 13): the CmdSN window stops opening while
 * the send queue is over its bound, a peer that stops reading is dropped, connection limits per
 * initiator address and per portal, TASK SET FULL for immediate commands and for a session past
 * its share of the task set, and rate-limited logging of a Reject flood.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEMO_IQN, Daemon } from '../helpers/daemon';
import { Pdu, TestInitiator } from '../helpers/initiator';
import { cdb10 } from '../helpers/cdb';

const MIB = 1024 * 1024;
const IO = 8 * MIB;
const read10 = (lba: number, blocks: number) => cdb10(0x28, lba, blocks);
const write10 = (lba: number, blocks: number) => cdb10(0x2a, lba, blocks);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function session(port: number, isid: string, localAddress?: string): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port, '127.0.0.1', localAddress);
  try {
    await i.login({ targetName: DEMO_IQN, isid: Buffer.from(isid, 'hex') });
    await i.clearUnitAttentions();
  } catch (e) {
    i.close();
    throw e;
  }
  return i;
}

/** Status of a final PDU (SCSI Response, or Data-In with S), else undefined. */
function finalStatus(p: Pdu): number | undefined {
  if (p.opcode === 0x21) return p.bhs[3];
  if (p.opcode === 0x25 && p.bhs[1] & 0x01) return p.bhs[3];
  return undefined;
}

/** Read PDUs until every ITT in `itts` has its final status (or `ms` pass). */
async function collect(i: TestInitiator, itts: number[], ms = 30_000): Promise<{ pdus: Pdu[]; status: Map<number, number> }> {
  const status = new Map<number, number>();
  const pdus: Pdu[] = [];
  const deadline = Date.now() + ms;
  while (status.size < itts.length && Date.now() < deadline) {
    const p = await i.receive(Math.max(1, deadline - Date.now()));
    if (!p) break;
    pdus.push(p);
    if (p.opcode === 0x20 && p.bhs.readUInt32BE(20) !== 0xffffffff) i.nopOutReply(p.bhs.readUInt32BE(20));
    const s = finalStatus(p);
    if (s !== undefined) status.set(p.bhs.readUInt32BE(16), s);
  }
  return { pdus, status };
}

describe('transmit back-pressure (default limits)', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start();
  });
  after(async () => {
    await daemon.stop();
  });

  it('MaxCmdSN stops advancing while the send queue is over its bound, and reopens after', async () => {
    const i = await session(daemon.port, '800000001001');
    const m0 = i.maxCmdSN!;
    i.stopReading();
    const blocks = IO / 512;
    const itts = i.batch(() => Array.from({ length: 16 }, (_, n) => i.issue(read10(n * blocks, blocks), { read: IO })));
    await sleep(1500);
    i.resumeReading();
    const { pdus, status } = await collect(i, itts);
    assert.equal(status.size, 16, 'every READ completed once the initiator read again');
    for (const s of status.values()) assert.equal(s, 0);
    const first = pdus.filter((p) => p.opcode === 0x25 && p.bhs.readUInt32BE(16) === itts[0]);
    assert.ok(first.length > 0);
    for (const p of first) {
      assert.equal(p.bhs.readUInt32BE(32), m0, 'MaxCmdSN held while later READs wait for room in the send queue');
    }
    await sleep(200);
    i.drain();
    assert.ok(((i.maxCmdSN! - m0) | 0) >= 16, `window reopened: MaxCmdSN ${i.maxCmdSN} vs ${m0}`);
    assert.deepEqual(await i.ping(), Buffer.from('ping'));
    await i.logout();
    i.close();
  });

  it('drops a peer that stops reading after nopin_response_timeout without transmit progress', async () => {
    const i = await session(daemon.port, '800000001002');
    i.stopReading();
    const blocks = IO / 512;
    i.batch(() => {
      for (let n = 0; n < 4; n++) i.issue(read10(n * blocks, blocks), { read: IO });
    });
    const started = Date.now();
    // Bare NOP-Outs keep the initiator "alive" on the receive side: only the stalled transmit
    // side can get it dropped. Writing to a dropped connection fails (EPIPE), which ends the loop.
    while (!i.closed && Date.now() - started < 20_000) {
      await sleep(250);
      i.noOp();
    }
    const seconds = (Date.now() - started) / 1000;
    assert.ok(i.closed, 'the stalled peer was dropped');
    assert.ok(seconds >= 4, `dropped after ${seconds} s, not before the timeout`);
    assert.match(daemon.stderr, /took no data for \d+ s/);
    // The gateway is fine.
    const j = await session(daemon.port, '800000001003');
    assert.deepEqual(await j.ping(), Buffer.from('ping'));
    j.close();
  });

  it('answers TASK SET FULL to immediate commands past the per-session limit', async () => {
    const i = await session(daemon.port, '800000004001');
    i.stopReading();
    const blocks = IO / 512;
    // One READ fills the send queue; 20 immediate READs then wait for room: 16 may, 4 may not.
    const itts = i.batch(() => [
      i.issue(read10(0, blocks), { read: IO }),
      ...Array.from({ length: 20 }, () => i.issue(read10(0, 8), { read: 4096, immediateBit: true, lun: 0 }) ),
    ]);
    await sleep(500);
    i.resumeReading();
    const { status } = await collect(i, itts);
    assert.equal(status.size, 21);
    const full = itts.filter((t) => status.get(t) === 0x28);
    assert.equal(full.length, 4, `TASK SET FULL for ${full.length} immediate commands`);
    assert.deepEqual(full, itts.slice(17), 'the last four');
    i.close();
  });

  it('rate-limits the log lines a Reject flood triggers', async () => {
    const i = await session(daemon.port, '800000001004');
    const before = daemon.stderr.split('\n').filter((l) => l.includes('Reject:')).length;
    i.batch(() => {
      for (let n = 0; n < 2000; n++) i.sendRaw(TestInitiator.bhs(0x1c, 0x80, 0, (h) => h.writeUInt32BE(n + 100, 16)));
    });
    let rejects = 0;
    while (rejects < 2000) {
      const p = await i.receive();
      assert.ok(p, `only ${rejects} Rejects came back`);
      if (p.opcode === 0x3f) rejects++;
    }
    assert.deepEqual(await i.ping(), Buffer.from('ping'));
    await sleep(200);
    const lines = daemon.stderr.split('\n').filter((l) => l.includes('Reject:')).length - before;
    assert.ok(lines <= 25, `${lines} Reject log lines for 2000 Rejects`);
    i.close();
  });
});

describe('connection limits and TASK SET FULL (small limits)', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start({
      env: {
        ISCSI_GATEWAY_CONNECTIONS_PER_ADDRESS: '3',
        ISCSI_GATEWAY_CONNECTIONS_PER_PORTAL: '4',
        ISCSI_GATEWAY_TARGET_TASKS: '8',
        ISCSI_GATEWAY_MIN_SESSION_TASKS: '2',
      },
    });
  });
  after(async () => {
    await daemon.stop();
  });

  it('refuses connections past the per-address and per-portal limits with Out of resources', async () => {
    const a = await Promise.all(['800000002001', '800000002002', '800000002003'].map((isid) => session(daemon.port, isid)));
    await assert.rejects(session(daemon.port, '800000002004'), /status 0x0302/, 'a 4th connection from 127.0.0.1 is refused');
    // Another address may still connect, up to the portal's limit of 4.
    const b = await session(daemon.port, '800000002005', '127.0.0.2');
    await assert.rejects(session(daemon.port, '800000002006', '127.0.0.3'), /status 0x0302/, 'a 5th connection on the portal is refused');
    // Limits count open connections: one closes, one more gets in.
    a[0].close();
    await sleep(300);
    const c = await session(daemon.port, '800000002007');
    assert.deepEqual(await c.ping(), Buffer.from('ping'));
    for (const i of [...a, b, c]) i.close();
    await sleep(300);
  });

  it('answers TASK SET FULL past a session\'s share of the task set, and keeps room for other sessions', async () => {
    const a = await session(daemon.port, '800000003001');
    // WRITEs whose data never comes stay in the SCSI layer. Target tasks 8: a quarter (2) stays
    // free for others, so the session runs 6 and the 7th-10th get TASK SET FULL.
    const itts = i10(a, 10, 0);
    const { status } = await collectStatuses(a, itts.slice(6), 5000);
    assert.deepEqual([...status.values()], [0x28, 0x28, 0x28, 0x28], 'the 7th to 10th get TASK SET FULL');
    // A second session still gets its guaranteed minimum (2), then TASK SET FULL.
    const b = await session(daemon.port, '800000003002');
    const bItts = i10(b, 3, 4096);
    const bDone = await collectStatuses(b, bItts, 5000);
    assert.deepEqual([...bDone.status.values()], [0x28], 'the second session runs its two, the third gets TASK SET FULL');
    assert.equal(bDone.status.get(bItts[2]), 0x28);
    a.close();
    b.close();
    await sleep(300);
  });
});

/** Issue `n` 4 KiB WRITEs (data never sent) starting at `lba`; returns their ITTs. */
function i10(i: TestInitiator, n: number, lba: number): number[] {
  return i.batch(() => Array.from({ length: n }, (_, k) => i.issue(write10(lba + k * 8, 8), { write: 4096 })));
}

/** Final statuses of `itts` (R2Ts and other PDUs are skipped). */
async function collectStatuses(i: TestInitiator, itts: number[], ms: number): Promise<{ status: Map<number, number> }> {
  const { status } = await collect(i, itts, ms);
  const wanted = new Map<number, number>();
  for (const t of itts) if (status.has(t)) wanted.set(t, status.get(t)!);
  return { status: wanted };
}
