/**
 * Store images through the gateway, driven by qemu-io (QEMU's iSCSI driver) and the raw test
 * initiator: snapshot while exported, the snapshot exported read-only, a clone of it exported
 * read-write, flatten while exported, online resize with CAPACITY DATA HAS CHANGED.
 * The steps build on each other (one data dir, one story).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Daemon, tempDir } from '../helpers/daemon';
import { TestInitiator } from '../helpers/initiator';
import { IQN_PREFIX, LunSpec, cdb, lunUrl, parseCapacity16, qemuIo, qemuIoOk, rbd, rbdOk, senseOf, writeGatewayConfig } from '../helpers/store';

const MiB = 1024 * 1024;
const DATA_PROTECT = 0x07;
const UNIT_ATTENTION = 0x06;
const CHECK_CONDITION = 0x02;

describe('store images through the gateway (qemu-io)', () => {
  const dataDir = tempDir('igw-store-snap-');
  const targets: Record<string, LunSpec[]> = { vol: [{ disk: 'rbd/vol' }] };
  let daemon: Daemon | undefined;
  const url = (t: string, lun = 0): string => lunUrl(daemon!.port, t, lun);

  async function restart(): Promise<void> {
    if (daemon) assert.equal(await daemon.stop(), 0, `daemon exit:\n${daemon.stderr}`);
    await writeGatewayConfig(dataDir, targets);
    daemon = await Daemon.start({ dataDir });
  }

  before(async () => {
    await rbdOk(dataDir, 'create', '--size', '64M', 'rbd/vol');
    await restart();
  });
  after(async () => {
    if (daemon?.alive) await daemon.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('writes, takes a snapshot while the image is exported, writes more', async () => {
    await qemuIoOk(url('vol'), ['write -P 0x11 0 1M', 'write -P 0x22 4M 64k']);
    const snap = await rbd(dataDir, 'snap', 'create', 'rbd/vol@s1');
    assert.equal(snap.code, 0, snap.stderr);
    await qemuIoOk(url('vol'), ['write -P 0x33 0 512k', 'write -P 0x44 8M 1M', 'write -P 0x55 4M 4k']);
    await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x11 512k 512k', 'read -P 0x55 4M 4k', 'read -P 0x22 4100k 60k', 'read -P 0x44 8M 1M', 'read -P 0 9M 1M']);
    assert.match(await rbdOk(dataDir, 'snap', 'ls', 'rbd/vol'), /\bs1\b/);
  });

  it('exports the snapshot read-only on a second target: old data, writes refused (DATA PROTECT, WP)', async () => {
    targets.snap = [{ disk: 'rbd/vol@s1' }];
    await restart();
    await qemuIoOk(url('snap'), ['read -P 0x11 0 1M', 'read -P 0x22 4M 64k', 'read -P 0 8M 1M'], { readOnly: true });
    // QEMU sees the write protection and refuses a read-write open.
    const rw = await qemuIo(url('snap'), ['write -P 0x99 0 4k']);
    assert.notEqual(rw.code, 0, `qemu-io opened a write-protected LUN read-write:\n${rw.stdout}${rw.stderr}`);
    assert.match(rw.stdout + rw.stderr, /write.?protected|read-only/i);

    const i = await TestInitiator.connect(daemon!.port);
    try {
      await i.login({ targetName: IQN_PREFIX + 'snap' });
      await i.clearUnitAttentions();
      const ms = await i.scsi(cdb.modeSense6(), { read: 255 });
      assert.equal(ms.status, 0);
      assert.equal(ms.data[2] & 0x80, 0x80, 'MODE SENSE: WP bit set on the snapshot LUN');
      const w = await i.scsi(cdb.write10(0, 8), { write: Buffer.alloc(4096, 0x99), immediate: 4096 });
      assert.equal(w.status, CHECK_CONDITION);
      assert.deepEqual(senseOf(w.sense), { key: DATA_PROTECT, asc: 0x27, ascq: 0x00 }, 'WRITE PROTECTED');
      const r = await i.scsi(cdb.read16(0, 8), { read: 4096 });
      assert.equal(r.status, 0);
      assert.ok(r.data.equals(Buffer.alloc(4096, 0x11)));
      await i.logout();
    } finally {
      i.close();
    }
    // The head is writable and still holds the new data; writing it while the snapshot is
    // exported by the same daemon leaves the snapshot LUN as it was.
    await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x44 8M 1M', 'write -P 0x5c 40M 1M', 'write -P 0x5d 4104k 56k']);
    await qemuIoOk(url('snap'), ['read -P 0x22 4M 64k', 'read -P 0 40M 1M'], { readOnly: true });
    await qemuIoOk(url('vol'), ['read -P 0x55 4M 4k', 'read -P 0x22 4100k 4k', 'read -P 0x5d 4104k 56k', 'read -P 0x5c 40M 1M']);
  });

  it('refuses to remove or roll back to an exported snapshot, and to roll back an exported image', async () => {
    const rm = await rbd(dataDir, 'snap', 'rm', 'rbd/vol@s1');
    assert.equal(rm.code, 16, `snap rm of an exported snapshot: ${rm.stderr}`);
    const rb = await rbd(dataDir, 'snap', 'rollback', 'rbd/vol@s1');
    assert.equal(rb.code, 16, `rollback of an exported image: ${rb.stderr}`);
    assert.match(rb.stderr, /in use.*locked by pid \d+/);
    await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x44 8M 1M']);
  });

  it('exports a clone of the protected snapshot: parent data, then its own writes; parent unchanged', async () => {
    await rbdOk(dataDir, 'snap', 'protect', 'rbd/vol@s1');
    await rbdOk(dataDir, 'clone', 'rbd/vol@s1', 'rbd/child');
    targets.child = [{ disk: 'rbd/child' }];
    await restart();
    await qemuIoOk(url('child'), ['read -P 0x11 0 1M', 'read -P 0x22 4M 64k', 'read -P 0 8M 1M']);
    await qemuIoOk(url('child'), ['write -P 0x66 256k 64k', 'write -P 0x77 32M 1M', 'write -P 0x88 4M 4k']);
    await qemuIoOk(url('child'), [
      'read -P 0x11 0 256k', 'read -P 0x66 256k 64k', 'read -P 0x11 320k 704k',
      'read -P 0x88 4M 4k', 'read -P 0x22 4100k 60k', 'read -P 0x77 32M 1M', 'read -P 0 8M 1M',
    ]);
    // Parent head and parent snapshot are untouched.
    await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x11 512k 512k', 'read -P 0x55 4M 4k', 'read -P 0 32M 1M']);
    await qemuIoOk(url('snap'), ['read -P 0x11 0 1M', 'read -P 0x22 4M 64k', 'read -P 0 32M 1M'], { readOnly: true });
  });

  it('flattens the clone while it is exported and written: content kept, parent link gone', async () => {
    // Writes run while the flatten copies up from another process.
    const writes = qemuIoOk(url('child'), ['write -P 0x99 16M 4M', 'write -P 0x9a 1M 1M']);
    await rbdOk(dataDir, 'flatten', 'rbd/child');
    await writes;
    await qemuIoOk(url('child'), [
      'read -P 0x11 0 256k', 'read -P 0x66 256k 64k', 'read -P 0x11 320k 704k', 'read -P 0x9a 1M 1M',
      'read -P 0x88 4M 4k', 'read -P 0x22 4100k 60k', 'read -P 0x99 16M 4M', 'read -P 0x77 32M 1M', 'read -P 0 8M 1M',
    ]);
    const info = JSON.parse(await rbdOk(dataDir, 'info', '--format', 'json', 'rbd/child')) as { parent?: unknown };
    assert.equal(info.parent, undefined, 'flattened clone has no parent');
    assert.equal((await rbdOk(dataDir, 'children', 'rbd/vol@s1')).trim(), '');
    await rbdOk(dataDir, 'snap', 'unprotect', 'rbd/vol@s1');
    // Still the same after a restart (nothing lived only in the daemon's memory).
    await restart();
    await qemuIoOk(url('child'), ['read -P 0x11 0 256k', 'read -P 0x66 256k 64k', 'read -P 0x9a 1M 1M', 'read -P 0x99 16M 4M', 'read -P 0x77 32M 1M']);
    await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x44 8M 1M']);
  });

  it('resizes an exported image: READ CAPACITY changes and a logged-in initiator gets CAPACITY DATA HAS CHANGED', async () => {
    const i = await TestInitiator.connect(daemon!.port);
    const other = await TestInitiator.connect(daemon!.port);
    try {
      await i.login({ targetName: IQN_PREFIX + 'vol' });
      await other.login({ targetName: IQN_PREFIX + 'vol', isid: Buffer.from('800000000002', 'hex') });
      await i.clearUnitAttentions();
      await other.clearUnitAttentions();
      const before = await i.scsi(cdb.readCapacity16(), { read: 32 });
      assert.equal(before.status, 0);
      assert.deepEqual(parseCapacity16(before.data), { blocks: (64 * MiB) / 512, blockSize: 512 });

      await rbdOk(dataDir, 'resize', '--size', '96M', 'rbd/vol');
      for (const ini of [i, other]) {
        const tur = await ini.scsi(cdb.testUnitReady());
        assert.equal(tur.status, CHECK_CONDITION, 'the next command after the resize reports the unit attention');
        assert.deepEqual(senseOf(tur.sense), { key: UNIT_ATTENTION, asc: 0x2a, ascq: 0x09 }, 'CAPACITY DATA HAS CHANGED');
        assert.equal((await ini.scsi(cdb.testUnitReady())).status, 0, 'reported once');
      }
      const grown = await i.scsi(cdb.readCapacity16(), { read: 32 });
      assert.deepEqual(parseCapacity16(grown.data), { blocks: (96 * MiB) / 512, blockSize: 512 });
      // The new space is usable at once and reads as zeros until written.
      const end = await i.scsi(cdb.read16((96 * MiB) / 512 - 8, 8), { read: 4096 });
      assert.equal(end.status, 0);
      assert.ok(end.data.equals(Buffer.alloc(4096)));
      const w = await i.scsi(cdb.write16((90 * MiB) / 512, 8, true), { write: Buffer.alloc(4096, 0xab), immediate: 4096 });
      assert.equal(w.status, 0);

      // Shrinking (allowed explicitly) is announced the same way.
      await rbdOk(dataDir, 'resize', '--allow-shrink', '--size', '80M', 'rbd/vol');
      const tur = await i.scsi(cdb.testUnitReady());
      assert.deepEqual(senseOf(tur.sense), { key: UNIT_ATTENTION, asc: 0x2a, ascq: 0x09 });
      const shrunk = await i.scsi(cdb.readCapacity16(), { read: 32 });
      assert.deepEqual(parseCapacity16(shrunk.data), { blocks: (80 * MiB) / 512, blockSize: 512 });
      const beyond = await i.scsi(cdb.read16((80 * MiB) / 512, 8), { read: 4096 });
      assert.equal(beyond.status, CHECK_CONDITION);
      assert.deepEqual(senseOf(beyond.sense), { key: 0x05, asc: 0x21, ascq: 0x00 }, 'LBA OUT OF RANGE past the new end');
      await i.logout();
      await other.logout();
    } finally {
      i.close();
      other.close();
    }
    // QEMU sees the new size; old data is intact; the snapshot keeps its own size and data.
    const len = await qemuIoOk(url('vol'), ['read -P 0x33 0 512k', 'read -P 0x44 8M 1M', 'read -P 0 79M 1M']);
    assert.ok(len.length > 0);
    await qemuIoOk(url('snap'), ['read -P 0x11 0 1M', 'read -P 0 63M 1M'], { readOnly: true });
  });

  it('leaves a store that check finds clean', async () => {
    const out = await rbdOk(dataDir, 'check');
    assert.match(out, /: clean$/m);
  });
});
