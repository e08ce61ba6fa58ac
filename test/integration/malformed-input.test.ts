/**
 * Malformed input from the network: each case gets a Reject, a login error, a CHECK
 * CONDITION, or costs exactly its own connection — while another session keeps doing I/O and
 * the daemon keeps running.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { DEMO_IQN, Daemon } from '../helpers/daemon';
import { TestInitiator, chapDigest, parsePairs } from '../helpers/initiator';
import { configPath } from '../../src/config/paths';
import { migrateDocument } from '../../src/config/migrate';
import { writeFileAtomic } from '../../src/sys/durable';
import { MiB, dataDirWith } from '../helpers/scsi';

const READ10 = (lba: number, blocks: number) => Buffer.from([0x28, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, 0, blocks, 0]);
const WRITE10 = (lba: number, blocks: number) => Buffer.from([0x2a, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, 0, blocks, 0]);

async function session(port: number, keys: Array<[string, string]> = [], isid = '800000000002'): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  await i.login({ targetName: DEMO_IQN, keys, isid: Buffer.from(isid, 'hex') });
  await i.clearUnitAttentions();
  return i;
}

function expectReject(p: Awaited<ReturnType<TestInitiator['receive']>>, reason: number): void {
  assert.ok(p, 'expected a Reject, got nothing');
  assert.equal(p.opcode, 0x3f, `expected Reject, got opcode 0x${p.opcode.toString(16)}`);
  assert.equal(p.bhs[2], reason, `Reject reason`);
  assert.equal(p.data.length, 48, 'a Reject carries the rejected header');
}

describe('malformed input', () => {
  let daemon: Daemon;
  let bystander: TestInitiator;
  let bystanderIo: Promise<void>;
  let stop = false;

  before(async () => {
    daemon = await Daemon.start();
    // A well-behaved session that writes and verifies data the whole time.
    bystander = await session(daemon.port, [], '80000000bbbb');
    bystanderIo = (async () => {
      let round = 0;
      while (!stop) {
        const data = Buffer.alloc(8192, round & 0xff);
        const w = await bystander.scsi(WRITE10(2048, 16), { write: data, immediate: 8192 });
        assert.equal(w.status, 0);
        const r = await bystander.scsi(READ10(2048, 16), { read: 8192 });
        assert.equal(r.status, 0);
        assert.ok(r.data.equals(data), 'bystander data intact');
        round++;
      }
    })();
  });

  after(async () => {
    stop = true;
    await bystanderIo;
    await bystander.logout();
    bystander.close();
    assert.ok(daemon.alive, 'daemon survived');
    await daemon.stop();
  });

  it('answers an unknown opcode with Reject and keeps the connection', async () => {
    const i = await session(daemon.port);
    i.sendRaw(TestInitiator.bhs(0x1c, 0x80, 0, (h) => h.writeUInt32BE(77, 16)));
    expectReject(await i.receive(), 0x05);
    assert.deepEqual(await i.ping(), Buffer.from('ping'));
    i.close();
  });

  it('rejects immediate data longer than the expected transfer length', async () => {
    const i = await session(daemon.port);
    const cdb = Buffer.alloc(16);
    WRITE10(0, 1).copy(cdb);
    i.sendRaw(
      TestInitiator.bhs(0x01, 0xa1, 1024, (h) => {
        h.writeUInt32BE(5, 16);
        h.writeUInt32BE(512, 20);
        h.writeUInt32BE(i.cmdSN, 24);
        cdb.copy(h, 32);
      }),
      Buffer.alloc(1024, 1),
    );
    i.cmdSN++;
    expectReject(await i.receive(), 0x04);
    assert.ok(await i.ping(), 'connection still usable');
    i.close();
  });

  it('answers a bad CDB with CHECK CONDITION / ILLEGAL REQUEST', async () => {
    const i = await session(daemon.port);
    const r = await i.scsi(Buffer.from([0xff, 0, 0, 0, 0, 0]), { read: 0 });
    assert.equal(r.status, 0x02);
    assert.ok(r.sense);
    assert.equal(r.sense[2] & 0x0f, 0x05, 'ILLEGAL REQUEST');
    assert.equal(r.sense[12], 0x20, 'INVALID COMMAND OPERATION CODE');
    const beyond = await i.scsi(READ10(0x7fffffff, 1), { read: 512 });
    assert.equal(beyond.status, 0x02);
    assert.equal(beyond.sense![12], 0x21, 'LBA OUT OF RANGE');
    i.close();
  });

  it('rejects a data segment above MaxRecvDataSegmentLength', async () => {
    const i = await session(daemon.port);
    const big = Buffer.alloc(262144 + 4, 0x61);
    i.sendRaw(
      TestInitiator.bhs(0x40, 0x80, big.length, (h) => {
        h.writeUInt32BE(9, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(i.cmdSN, 24);
      }),
      big,
    );
    expectReject(await i.receive(), 0x04);
    i.close();
  });

  it('drops the connection on a header digest error', async () => {
    const i = await session(daemon.port, [['HeaderDigest', 'CRC32C']]);
    assert.equal(i.headerDigest, true);
    assert.ok(await i.ping(), 'digests work');
    i.sendRaw(
      TestInitiator.bhs(0x40, 0x80, 0, (h) => {
        h.writeUInt32BE(10, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(i.cmdSN, 24);
      }),
      Buffer.alloc(0),
      { corruptHeaderDigest: true },
    );
    assert.equal(await i.waitClosed(), true);
  });

  it('rejects a data digest error on a NOP-Out and keeps going', async () => {
    const i = await session(daemon.port, [['DataDigest', 'CRC32C']]);
    assert.equal(i.dataDigest, true);
    i.sendRaw(
      TestInitiator.bhs(0x40, 0x80, 4, (h) => {
        h.writeUInt32BE(11, 16);
        h.writeUInt32BE(0xffffffff, 20);
        h.writeUInt32BE(i.cmdSN, 24);
      }),
      Buffer.from('ping'),
      { corruptDataDigest: true },
    );
    expectReject(await i.receive(), 0x02);
    assert.deepEqual(await i.ping(Buffer.from('again')), Buffer.from('again'));
    i.close();
  });

  it('ignores a CmdSN outside the window, then carries on', async () => {
    const i = await session(daemon.port);
    const saved = i.cmdSN;
    i.cmdSN = (saved + 1000) >>> 0;
    const itt = i.nextItt();
    const cdb = Buffer.alloc(16); // TEST UNIT READY
    i.sendRaw(
      TestInitiator.bhs(0x01, 0x81, 0, (h) => {
        h.writeUInt32BE(itt, 16);
        h.writeUInt32BE(i.cmdSN, 24);
        cdb.copy(h, 32);
      }),
    );
    assert.equal(await i.receive(1500), undefined, 'no answer to an out-of-window command');
    i.cmdSN = saved;
    const r = await i.scsi(Buffer.alloc(6), {});
    assert.ok(r.status === 0 || r.status === 0x02);
    i.close();
  });

  it('answers bad login key values with Reject and bad login requests with a login error', async () => {
    const i = await TestInitiator.connect(daemon.port);
    const isid = Buffer.from('800000000003', 'hex');
    const r1 = await i.loginStep(0x81, [['InitiatorName', 'iqn.2024-01.test:x'], ['TargetName', DEMO_IQN], ['AuthMethod', 'None']], isid);
    assert.equal(r1!.bhs[36], 0);
    const r2 = await i.loginStep(0x87, [['MaxBurstLength', 'lots'], ['ErrorRecoveryLevel', '9'], ['X-vendor.key', '1']], isid);
    const keys = Object.fromEntries(parsePairs(r2!.data));
    assert.equal(keys.MaxBurstLength, 'Reject');
    assert.equal(keys.ErrorRecoveryLevel, 'Reject');
    assert.equal(keys['X-vendor.key'], 'NotUnderstood');
    i.close();

    const cases: Array<[Array<[string, string]>, number, number]> = [
      [[['TargetName', DEMO_IQN]], 2, 0x07], // no InitiatorName
      [[['InitiatorName', 'iqn.2024-01.test:x'], ['TargetName', 'iqn.2024-01.test:nothing']], 2, 0x03],
      [[['InitiatorName', 'not-an-iscsi-name'], ['TargetName', DEMO_IQN]], 2, 0x00],
      [[['InitiatorName', 'iqn.2024-01.test:x'], ['SessionType', 'Weird']], 2, 0x09],
    ];
    for (const [pairs, cls, detail] of cases) {
      const c = await TestInitiator.connect(daemon.port);
      const r = await c.loginStep(0x81, pairs, isid);
      assert.ok(r, 'a login response');
      assert.deepEqual([r.bhs[36], r.bhs[37]], [cls, detail], JSON.stringify(pairs));
      assert.equal(await c.waitClosed(), true, 'the connection is closed after a failed login');
    }
  });

  it('drops garbage that is not iSCSI', async () => {
    const s = net.connect(daemon.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + 'x'.repeat(100));
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 5000);
      s.on('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      s.resume();
    });
    assert.equal(closed, true);
  });

  it('drops a login that stalls (login_timeout)', { timeout: 40_000 }, async () => {
    const s = net.connect(daemon.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.alloc(20)); // half a header, then silence
    const started = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 30_000);
      s.on('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      s.resume();
    });
    assert.equal(closed, true);
    assert.ok(Date.now() - started >= 10_000, 'not before the login timeout');
  });
});

describe('malformed CHAP', () => {
  const TARGET = 'iqn.2003-01.com.example.iscsi-gw:chap';
  const HOST = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
  const CHAP = { username: 'common12', secret: 'pass12345678' };
  let daemon: Daemon;
  let bystander: TestInitiator;
  let bystanderIo: Promise<void>;
  let stop = false;
  let isidSeq = 0x100;

  before(async () => {
    const { dir, config: v1 } = await dataDirWith([{ id: 'chap.img', backstore: 'file', size: 16 * MiB }], [{ iqn: TARGET, luns: { 'chap.img': 0 } }]);
    const config = migrateDocument(v1, 'test');
    config.targets[TARGET].auth = {
      username: CHAP.username, password: CHAP.secret, password_encryption_enabled: false,
      mutual_username: 'target01', mutual_password: 'tpassword1234', mutual_password_encryption_enabled: false,
    };
    await writeFileAtomic(configPath(dir), JSON.stringify(config));
    daemon = await Daemon.start({ dataDir: dir });
    bystander = await TestInitiator.connect(daemon.port);
    await bystander.login({ initiatorName: HOST, targetName: TARGET, chap: CHAP, isid: Buffer.from('80000000cccc', 'hex') });
    await bystander.clearUnitAttentions();
    bystanderIo = (async () => {
      let round = 0;
      while (!stop) {
        const data = Buffer.alloc(4096, round & 0xff);
        assert.equal((await bystander.scsi(WRITE10(64, 8), { write: data, immediate: 4096 })).status, 0);
        const r = await bystander.scsi(READ10(64, 8), { read: 4096 });
        assert.ok(r.status === 0 && r.data.equals(data), 'bystander data intact');
        round++;
      }
    })();
  });

  after(async () => {
    stop = true;
    await bystanderIo;
    assert.deepEqual(await bystander.ping(), Buffer.from('ping'), 'the CHAP session kept working');
    bystander.close();
    assert.ok(daemon.alive, 'daemon survived');
    assert.ok(!daemon.stdout.includes(CHAP.secret) && !daemon.stderr.includes(CHAP.secret), 'no secret in the log');
    await daemon.stop();
  });

  /** Security stage up to the target's challenge; returns the initiator, its ISID and the challenge keys. */
  async function challenged(): Promise<{ i: TestInitiator; isid: Buffer; got: Record<string, string> }> {
    const i = await TestInitiator.connect(daemon.port);
    const isid = Buffer.alloc(6);
    isid.writeUIntBE(0x800000000000 + isidSeq++, 0, 6);
    const r1 = await i.loginStep(0x81, [['InitiatorName', HOST], ['TargetName', TARGET], ['AuthMethod', 'CHAP,None']], isid);
    assert.equal(r1!.bhs.readUInt16BE(36), 0);
    assert.equal(Object.fromEntries(parsePairs(r1!.data)).AuthMethod, 'CHAP');
    const r2 = await i.loginStep(0x81, [['CHAP_A', '5']], isid);
    const got = Object.fromEntries(parsePairs(r2!.data));
    assert.match(got.CHAP_C, /^0x[0-9a-f]{32,}$/, 'a challenge of at least 16 bytes');
    return { i, isid, got };
  }

  function response(got: Record<string, string>, secret = CHAP.secret): string {
    return `0x${chapDigest(got.CHAP_A, Number(got.CHAP_I), secret, Buffer.from(got.CHAP_C.slice(2), 'hex')).toString('hex')}`;
  }

  async function expectLoginReject(i: TestInitiator, isid: Buffer, pairs: Array<[string, string]>, status: number, what: string): Promise<void> {
    const r = await i.loginStep(0x81, pairs, isid);
    assert.ok(r, `${what}: a login response`);
    assert.equal(r.opcode, 0x23, `${what}: Login Response`);
    assert.equal(r.bhs.readUInt16BE(36).toString(16), status.toString(16), what);
    assert.equal(await i.waitClosed(), true, `${what}: connection closed`);
  }

  it('missing CHAP_N', async () => {
    const { i, isid, got } = await challenged();
    await expectLoginReject(i, isid, [['CHAP_R', response(got)]], 0x0207, 'missing CHAP_N');
  });

  it('non-hex and oversized CHAP_R', async () => {
    const a = await challenged();
    await expectLoginReject(a.i, a.isid, [['CHAP_N', CHAP.username], ['CHAP_R', '0xnot-hex-at-all']], 0x0200, 'non-hex CHAP_R');
    const b = await challenged();
    await expectLoginReject(b.i, b.isid, [['CHAP_N', CHAP.username], ['CHAP_R', `0x${'ab'.repeat(2000)}`]], 0x0200, 'oversized CHAP_R');
    // Beyond the login's 8 KiB data segment limit: the connection ends (after a Reject, which
    // the initiator may not get to read when the close resets the connection mid-send).
    const d = await challenged();
    const r = await d.i.loginStep(0x81, [['CHAP_N', CHAP.username], ['CHAP_R', `0x${'ab'.repeat(4096)}`]], d.isid);
    if (r) expectReject(r, 0x04);
    assert.equal(await d.i.waitClosed(), true);
    const c = await challenged();
    await expectLoginReject(c.i, c.isid, [['CHAP_N', CHAP.username], ['CHAP_R', 'plain']], 0x0200, 'CHAP_R without 0x/0b');
  });

  it('CHAP keys out of order', async () => {
    // CHAP_N/CHAP_R before the challenge was even asked for.
    const i = await TestInitiator.connect(daemon.port);
    const isid = Buffer.from('800000000f01', 'hex');
    const r1 = await i.loginStep(0x81, [['InitiatorName', HOST], ['TargetName', TARGET], ['AuthMethod', 'CHAP']], isid);
    assert.equal(r1!.bhs.readUInt16BE(36), 0);
    await expectLoginReject(i, isid, [['CHAP_N', CHAP.username], ['CHAP_R', '0x00']], 0x0200, 'CHAP_R before CHAP_A');
    // CHAP_A again after the challenge.
    const b = await challenged();
    await expectLoginReject(b.i, b.isid, [['CHAP_A', '5']], 0x0200, 'CHAP_A repeated');
    // A repeated key in one request.
    const c = await challenged();
    await expectLoginReject(c.i, c.isid, [['CHAP_N', CHAP.username], ['CHAP_R', response(c.got)], ['CHAP_R', response(c.got)]], 0x0200, 'CHAP_R twice');
  });

  it('a repeated (reflected) challenge', async () => {
    // The initiator hands the target's own challenge back for mutual CHAP.
    const { i, isid, got } = await challenged();
    await expectLoginReject(i, isid, [['CHAP_N', CHAP.username], ['CHAP_R', response(got)], ['CHAP_I', got.CHAP_I], ['CHAP_C', got.CHAP_C]], 0x0201, 'reflected challenge');
  });

  it('a new connection logs in normally afterwards', async () => {
    const i = await TestInitiator.connect(daemon.port);
    await i.login({ initiatorName: HOST, targetName: TARGET, chap: { ...CHAP, mutual: { username: 'target01', secret: 'tpassword1234' } } });
    assert.deepEqual(await i.ping(), Buffer.from('ping'));
    i.close();
  });
});
