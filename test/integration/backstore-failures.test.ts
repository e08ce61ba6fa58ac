/**
 * The data path under a failing host file system, seen by a real iSCSI initiator (the raw
 * test initiator) talking to the real daemon. The failures are real kernel ones, not mocks:
 *  - fsfreeze on a loop-mounted ext4: writes block in the kernel (a backstore that stops
 *    answering); cmd_time_out, ABORT TASK, LOGICAL UNIT RESET, logout and session
 *    reinstatement must each complete within the configured time;
 *  - a size-limited tmpfs filling up: ENOSPC -> DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT;
 *  - a FUSE pass-through file system that fails reads, writes or fsync with EIO on command
 *    (test/helpers/faultfs.py, a test-only fault layer in the spirit of dm-flakey: the errors
 *    come back through the kernel's pread/pwrite/fdatasync like a failing disk's).
 * Needs root (mount) and python3-fusepy; skipped otherwise.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Daemon } from '../helpers/daemon';
import { Pdu, TestInitiator } from '../helpers/initiator';
import { MiB, dataDirWith, read10, session, write10 } from '../helpers/scsi';
import { FaultFs, Mounted, faultFsUnavailable, freeze, mountExt4, mountFaultFs, mountTmpfs, rootUnavailable, thaw } from '../helpers/failing-fs';

const IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:failures';
const TIMEOUT_S = 5;

/** Commands and TMFs in flight on one connection, answered out of order. */
class Mux {
  private readonly got = new Map<number, Pdu>();
  constructor(readonly i: TestInitiator) {}

  /** Send a SCSI command (Data-Out as immediate data) without waiting; returns its ITT. */
  command(cdb: Buffer, o: { write?: Buffer; read?: number } = {}): number {
    const itt = this.i.nextItt();
    const data = o.write ?? Buffer.alloc(0);
    const flags = 0x80 | (o.read !== undefined ? 0x40 : 0) | (o.write ? 0x20 : 0) | 0x01;
    const bhs = TestInitiator.bhs(0x01, flags, data.length, (h) => {
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(o.write ? data.length : (o.read ?? 0), 20);
      h.writeUInt32BE(this.i.cmdSN, 24);
      h.writeUInt32BE(this.i.expStatSN, 28);
      cdb.copy(h, 32);
    });
    this.i.cmdSN = (this.i.cmdSN + 1) >>> 0;
    this.i.sendRaw(bhs, data);
    return itt;
  }

  /** Task management request (immediate); returns its ITT. */
  tmf(fn: number, referencedItt = 0xffffffff): number {
    const itt = this.i.nextItt();
    this.i.sendRaw(TestInitiator.bhs(0x02 | 0x40, 0x80 | fn, 0, (h) => {
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(referencedItt, 20);
      h.writeUInt32BE(this.i.cmdSN, 24);
      h.writeUInt32BE(this.i.expStatSN, 28);
    }));
    return itt;
  }

  logout(): number {
    const itt = this.i.nextItt();
    this.i.sendRaw(TestInitiator.bhs(0x06 | 0x40, 0x80, 0, (h) => {
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(this.i.cmdSN, 24);
      h.writeUInt32BE(this.i.expStatSN, 28);
    }));
    return itt;
  }

  /** The response PDU for `itt` (SCSI Response, TMF Response, Logout Response). */
  async wait(itt: number, ms: number): Promise<Pdu> {
    const deadline = Date.now() + ms;
    for (;;) {
      const have = this.got.get(itt);
      if (have) return have;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response for ITT ${itt} within ${ms} ms`);
      const p = await this.i.receive(left);
      if (!p) throw new Error(`connection closed or no PDU while waiting for ITT ${itt}`);
      if (p.opcode === 0x20) {
        const ttt = p.bhs.readUInt32BE(20);
        if (ttt !== 0xffffffff) this.i.nopOutReply(ttt);
        continue;
      }
      if (p.opcode === 0x21 || p.opcode === 0x22 || p.opcode === 0x26) this.i.expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
      this.got.set(p.bhs.readUInt32BE(16), p);
    }
  }
}

/** Sense key and ASC/ASCQ of a SCSI Response PDU. */
function senseOf(p: Pdu): { status: number; key: number; asc: number } {
  const status = p.bhs[3];
  if (p.data.length < 2) return { status, key: -1, asc: -1 };
  const s = p.data.subarray(2, 2 + p.data.readUInt16BE(0));
  return { status, key: s[2] & 0x0f, asc: (s[12] << 8) | s[13] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a backstore that stops answering (fsfreeze on a loop-mounted ext4)', { skip: rootUnavailable() }, () => {
  let mnt: Mounted;
  let daemon: Daemon;
  let frozen = false;

  before(async () => {
    mnt = await mountExt4();
    const file = path.join(mnt.dir, 'lun0.img');
    const { dir } = await dataDirWith(
      [{ id: file, backstore: 'file', size: 16 * MiB, controls: { cmd_time_out: TIMEOUT_S } }],
      [{ iqn: IQN, luns: { [file]: 0 } }],
    );
    daemon = await Daemon.start({ dataDir: dir });
  });

  after(async () => {
    if (frozen) await thaw(mnt.dir);
    await daemon?.stop();
    await mnt?.unmount();
  });

  it(`cmd_time_out, ABORT TASK, LOGICAL UNIT RESET, logout and re-login each complete within ${TIMEOUT_S} s`, async () => {
    const a = await session(daemon.port, IQN, { isid: '800000000001' });
    const ok = await a.scsi(write10(0, 8), { write: Buffer.alloc(4096, 0x5a), immediate: 4096 });
    assert.equal(ok.status, 0, 'the backstore works before the freeze');
    const mux = new Mux(a);

    await freeze(mnt.dir);
    frozen = true;

    // 1. A WRITE into the frozen file system: NOT READY / LOGICAL UNIT COMMUNICATION FAILURE
    //    after cmd_time_out, not a hang.
    let t0 = Date.now();
    const w1 = mux.command(write10(8, 8), { write: Buffer.alloc(4096, 1) });
    const r1 = senseOf(await mux.wait(w1, (TIMEOUT_S + 5) * 1000));
    const took1 = Date.now() - t0;
    assert.deepEqual(r1, { status: 0x02, key: 0x2, asc: 0x0800 });
    // Within cmd_time_out (the guard sweeps every 100 ms); 1 s of slack for a busy machine.
    assert.ok(took1 >= TIMEOUT_S * 1000 - 300 && took1 < TIMEOUT_S * 1000 + 1000, `CHECK CONDITION after ${took1} ms`);

    // 2. ABORT TASK of a WRITE stuck in the kernel.
    const w2 = mux.command(write10(16, 8), { write: Buffer.alloc(4096, 2) });
    await sleep(300);
    t0 = Date.now();
    const abort = await mux.wait(mux.tmf(1, w2), TIMEOUT_S * 1000);
    const tookAbort = Date.now() - t0;
    assert.equal(abort.bhs[2], 0, 'ABORT TASK: FUNCTION COMPLETE');
    assert.ok(tookAbort < TIMEOUT_S * 1000, `ABORT TASK took ${tookAbort} ms`);

    // 3. LOGICAL UNIT RESET with a WRITE stuck in the kernel.
    mux.command(write10(24, 8), { write: Buffer.alloc(4096, 3) });
    await sleep(300);
    t0 = Date.now();
    const reset = await mux.wait(mux.tmf(5), TIMEOUT_S * 1000);
    const tookReset = Date.now() - t0;
    assert.equal(reset.bhs[2], 0, 'LOGICAL UNIT RESET: FUNCTION COMPLETE');
    assert.ok(tookReset < TIMEOUT_S * 1000, `LOGICAL UNIT RESET took ${tookReset} ms`);

    // 4. Logout with a WRITE stuck in the kernel.
    mux.command(write10(32, 8), { write: Buffer.alloc(4096, 4) });
    await sleep(300);
    t0 = Date.now();
    const logout = await mux.wait(mux.logout(), TIMEOUT_S * 1000);
    const tookLogout = Date.now() - t0;
    assert.equal(logout.bhs[2], 0, 'logout: connection or session closed successfully');
    assert.ok(tookLogout < TIMEOUT_S * 1000, `logout took ${tookLogout} ms`);
    a.close();

    // 5. Re-login: a session with a WRITE stuck in the kernel is reinstated by a new login with
    //    the same ISID (the old nexus is lost, its task aborted).
    const b = await session(daemon.port, IQN, { isid: '800000000002' });
    new Mux(b).command(write10(40, 8), { write: Buffer.alloc(4096, 5) });
    await sleep(300);
    t0 = Date.now();
    const again = await TestInitiator.connect(daemon.port);
    await again.login({ targetName: IQN, isid: Buffer.from('800000000002', 'hex') });
    const tookRelogin = Date.now() - t0;
    assert.ok(tookRelogin < TIMEOUT_S * 1000, `re-login took ${tookRelogin} ms`);
    b.close();

    // Every answer came while the file system was still frozen.
    console.log(`# frozen backstore: CHECK CONDITION after ${took1} ms; ABORT TASK ${tookAbort} ms, ` +
      `LU RESET ${tookReset} ms, logout ${tookLogout} ms, re-login ${tookRelogin} ms (cmd_time_out ${TIMEOUT_S} s)`);

    await thaw(mnt.dir);
    frozen = false;
    await again.clearUnitAttentions();
    const w = await again.scsi(write10(48, 8), { write: Buffer.alloc(4096, 6), immediate: 4096 });
    assert.equal(w.status, 0, 'after the thaw the LU works again');
    const r = await again.scsi(read10(0, 8), { read: 4096 });
    assert.equal(r.status, 0);
    assert.ok(r.data.equals(Buffer.alloc(4096, 0x5a)), 'data written before the freeze is intact');
    again.close();
    assert.ok(daemon.alive);
  });
});

describe('a host file system that fills up (size-limited tmpfs)', { skip: rootUnavailable() }, () => {
  let mnt: Mounted;
  let daemon: Daemon;

  before(async () => {
    mnt = await mountTmpfs(1 * MiB);
    const file = path.join(mnt.dir, 'lun0.img');
    const { dir } = await dataDirWith([{ id: file, backstore: 'file', size: 8 * MiB }], [{ iqn: IQN, luns: { [file]: 0 } }]);
    daemon = await Daemon.start({ dataDir: dir });
  });

  after(async () => {
    await daemon?.stop();
    await mnt?.unmount();
  });

  it('ENOSPC: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h), earlier data intact', async () => {
    const i = await session(daemon.port, IQN);
    let lba = 0;
    let failed: { status: number; key: number; asc: number } | undefined;
    for (; lba < 8 * 2048; lba += 128) {
      const r = await i.scsi(write10(lba, 128), { write: Buffer.alloc(65536, 0x33), immediate: 8192 });
      if (r.status !== 0) {
        assert.ok(r.sense);
        failed = { status: r.status, key: r.sense[2] & 0x0f, asc: (r.sense[12] << 8) | r.sense[13] };
        break;
      }
    }
    assert.ok(failed, 'the 1 MiB tmpfs filled up');
    assert.ok(lba >= 512, `${lba} blocks were written before the file system was full`);
    assert.deepEqual(failed, { status: 0x02, key: 0x7, asc: 0x2707 });
    console.log(`# tmpfs full after ${lba} blocks: sense key ${failed.key.toString(16)} ASC/ASCQ ${failed.asc.toString(16)}`);
    const r = await i.scsi(read10(0, 128), { read: 65536 });
    assert.equal(r.status, 0);
    assert.ok(r.data.equals(Buffer.alloc(65536, 0x33)));
    i.close();
  });
});

describe('a medium that fails (FUSE fault file system: EIO from the kernel)', () => {
  let ffs: FaultFs;
  let daemon: Daemon;
  let skip: string | undefined;

  before(async () => {
    skip = await faultFsUnavailable();
    if (skip) return;
    ffs = await mountFaultFs({ 'lun0.img': 8 * MiB });
    const file = path.join(ffs.dir, 'lun0.img');
    const { dir } = await dataDirWith(
      [{ id: file, backstore: 'file', size: 8 * MiB, controls: { emulate_write_cache: 1 } }],
      [{ iqn: IQN, luns: { [file]: 0 } }],
    );
    daemon = await Daemon.start({ dataDir: dir });
  });

  after(async () => {
    await daemon?.stop();
    await ffs?.unmount();
  });

  it('EIO on read: MEDIUM ERROR / UNRECOVERED READ ERROR; on write: MEDIUM ERROR / WRITE ERROR', async (t) => {
    if (skip) return t.skip(skip);
    const i = await session(daemon.port, IQN);
    ffs.faults(['read_eio 0 4096', 'write_eio 8192 12288']);
    const r = await i.scsi(read10(0, 8), { read: 4096 });
    assert.ok(r.sense);
    assert.deepEqual([r.status, r.sense[2] & 0x0f, r.sense[12], r.sense[13]], [0x02, 0x3, 0x11, 0x00]);
    const w = await i.scsi(write10(16, 8), { write: Buffer.alloc(4096, 7), immediate: 4096 });
    assert.ok(w.sense);
    assert.deepEqual([w.status, w.sense[2] & 0x0f, w.sense[12], w.sense[13]], [0x02, 0x3, 0x0c, 0x00]);
    ffs.faults([]);
    assert.equal((await i.scsi(read10(0, 8), { read: 4096 })).status, 0, 'the medium works again');
    assert.equal((await i.scsi(write10(16, 8), { write: Buffer.alloc(4096, 7), immediate: 4096 })).status, 0);
    i.close();
  });

  it('a failed flush: that SYNCHRONIZE CACHE fails, and so does the next one of every other nexus, though fdatasync works again', async (t) => {
    if (skip) return t.skip(skip);
    const a = await session(daemon.port, IQN, { isid: '800000000011' });
    const b = await session(daemon.port, IQN, { isid: '800000000012' });
    const sync = Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const sense = (r: { status: number; sense?: Buffer }) => [r.status, r.sense ? r.sense[2] & 0x0f : -1, r.sense ? (r.sense[12] << 8) | r.sense[13] : -1];
    assert.equal((await b.scsi(write10(100, 8), { write: Buffer.alloc(4096, 0xb), immediate: 4096 })).status, 0, 'B writes (write cache on)');
    ffs.faults(['fsync_eio']);
    assert.deepEqual(sense(await a.scsi(sync)), [0x02, 0x3, 0x0c00], 'A: the fdatasync fails');
    ffs.faults([]);
    assert.deepEqual(sense(await b.scsi(sync)), [0x02, 0x3, 0x0c00], 'B has not heard of the lost write-back yet');
    assert.deepEqual(sense(await b.scsi(sync)), [0x00, -1, -1], 'B, told once, flushes again');
    assert.deepEqual(sense(await a.scsi(sync)), [0x00, -1, -1]);
    console.log('# failed flush: SYNCHRONIZE CACHE of nexus A -> 03h/0Ch/00h, then nexus B -> 03h/0Ch/00h once, then GOOD');
    a.close();
    b.close();
  });
});
