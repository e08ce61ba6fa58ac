import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileBackstore, extentsFromData } from '../../../src/block/file-backstore';
import { BlockDeviceError } from '../../../src/block/block-device';

const MiB = 1 << 20;

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbs-'));
  dirs.push(dir);
  return path.join(dir, 'disk.img');
}

function allocated(p: string): number {
  return fs.statSync(p).blocks * 512;
}

test('capabilities are probed: a sparse file on this file system supports discard and map status', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 8 * MiB });
  assert.equal(dev.capabilities.discard, true);
  assert.equal(dev.capabilities.discardZeroes, true);
  assert.equal(dev.capabilities.mapStatus, true);
  await dev.close();
  const ro = await FileBackstore.open({ path: p, readOnly: true });
  assert.equal(ro.capabilities.discard, false, 'a read-only device offers no discard');
  await ro.close();
});

test('discard punches a hole: space is freed and the range reads as zeros', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 8 * MiB });
  await dev.write(0, Buffer.alloc(2 * MiB, 0xab));
  await dev.flush();
  assert.ok(allocated(p) >= 2 * MiB);
  await dev.discard(MiB, MiB);
  assert.ok(allocated(p) < 2 * MiB && allocated(p) >= MiB);
  const back = await dev.read(0, 2 * MiB);
  assert.ok(back.subarray(0, MiB).every((b) => b === 0xab));
  assert.ok(back.subarray(MiB).every((b) => b === 0));
  await dev.close();
});

test('mapStatus reports mapped and deallocated extents without gaps', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 8 * MiB });
  await dev.write(MiB, Buffer.alloc(8192, 1));
  await dev.write(4 * MiB, Buffer.alloc(4096, 2));
  const ext = await dev.mapStatus(0, 8 * MiB);
  assert.deepEqual(ext, [
    { offset: 0, length: MiB, state: 'deallocated' },
    { offset: MiB, length: 8192, state: 'mapped' },
    { offset: MiB + 8192, length: 3 * MiB - 8192, state: 'deallocated' },
    { offset: 4 * MiB, length: 4096, state: 'mapped' },
    { offset: 4 * MiB + 4096, length: 4 * MiB - 4096, state: 'deallocated' },
  ]);
  // A sub-range starting inside data is clipped to the range.
  assert.deepEqual(await dev.mapStatus(MiB + 4096, 8192), [
    { offset: MiB + 4096, length: 4096, state: 'mapped' },
    { offset: MiB + 8192, length: 4096, state: 'deallocated' },
  ]);
  await dev.close();
});

test('writeSame of zeros: deallocate punches, otherwise the range stays allocated', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 8 * MiB });
  await dev.write(0, Buffer.alloc(4 * MiB, 7));
  await dev.flush();
  const before = allocated(p);
  await dev.writeSame(0, MiB, Buffer.alloc(512), { deallocate: true });
  assert.ok(allocated(p) <= before - MiB, 'deallocated range is freed');
  await dev.writeSame(MiB, MiB, Buffer.alloc(512));
  assert.ok(allocated(p) >= 3 * MiB, 'ZERO_RANGE keeps the range provisioned');
  const back = await dev.read(0, 4 * MiB);
  assert.ok(back.subarray(0, 2 * MiB).every((b) => b === 0));
  assert.ok(back.subarray(2 * MiB).every((b) => b === 7));
  const st = await dev.mapStatus(MiB, MiB);
  assert.deepEqual(st, [{ offset: MiB, length: MiB, state: 'mapped' }], 'zeroed-but-provisioned range is mapped');
  // A zero range on a hole provisions it too.
  await dev.writeSame(6 * MiB, MiB, Buffer.alloc(4096), { fua: true });
  assert.deepEqual(await dev.mapStatus(6 * MiB, MiB), [{ offset: 6 * MiB, length: MiB, state: 'mapped' }]);
  await dev.close();
});

test('writeSame with a non-zero pattern repeats it', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 4 * MiB });
  const pat = Buffer.alloc(512);
  pat.write('block!');
  await dev.writeSame(512, 3 * MiB, pat);
  const back = await dev.read(0, 4 * MiB);
  assert.ok(back.subarray(0, 512).every((b) => b === 0));
  for (let off = 512; off < 512 + 3 * MiB; off += 512) {
    assert.equal(back.compare(pat, 0, 512, off, off + 512), 0, `block at ${off}`);
  }
  assert.ok(back.subarray(512 + 3 * MiB).every((b) => b === 0));
  await assert.rejects(dev.writeSame(0, 1000, pat), BlockDeviceError);
  await dev.close();
});

test('range and mode checks reject with typed errors', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: MiB });
  await assert.rejects(dev.discard(MiB - 512, 1024), (e: BlockDeviceError) => e.kind === 'out-of-range');
  await assert.rejects(dev.mapStatus(MiB, 512), (e: BlockDeviceError) => e.kind === 'out-of-range');
  await dev.close();
  await assert.rejects(dev.read(0, 512), (e: BlockDeviceError) => e.kind === 'closed');
  const ro = await FileBackstore.open({ path: p, readOnly: true });
  await assert.rejects(ro.discard(0, 512), (e: BlockDeviceError) => e.kind === 'read-only');
  await assert.rejects(ro.writeSame(0, 512, Buffer.alloc(512)), (e: BlockDeviceError) => e.kind === 'read-only');
  await ro.close();
});

test('extentsFromData clips and fills gaps', () => {
  assert.deepEqual(extentsFromData(100, 100, []), [{ offset: 100, length: 100, state: 'deallocated' }]);
  assert.deepEqual(extentsFromData(100, 100, [{ offset: 0, length: 1000 }]), [{ offset: 100, length: 100, state: 'mapped' }]);
  assert.deepEqual(extentsFromData(0, 100, [{ offset: 10, length: 10 }, { offset: 90, length: 50 }]), [
    { offset: 0, length: 10, state: 'deallocated' },
    { offset: 10, length: 10, state: 'mapped' },
    { offset: 20, length: 70, state: 'deallocated' },
    { offset: 90, length: 10, state: 'mapped' },
  ]);
});

// ---- durability: group commit and the remembered flush failure ----------------------------

import { fdatasyncFd, setIoEngine } from '../../../src/sys/io';
import { FlushFailedError } from '../../../src/block/sync-group';

test('write-through: every FUA write is acknowledged only after an fdatasync that started after its data was written', async () => {
  for (const engine of ['uring', 'threadpool'] as const) {
    try {
      setIoEngine(engine);
    } catch {
      continue; // io_uring not available here: the thread-pool run still checks the rule
    }
    const p = tmpFile();
    const N = 64;
    const BLOCK = 4096;
    // Each fdatasync records, when it starts, which writes' data are already in the file.
    const syncs: Array<{ present: Set<number>; done: boolean }> = [];
    let fdOfDevice = -1;
    const dev = await FileBackstore.open({
      path: p,
      createSize: N * BLOCK,
      fdatasync: async (fd) => {
        fdOfDevice = fd;
        const snapshot = Buffer.alloc(N * BLOCK);
        fs.readSync(fd, snapshot, 0, snapshot.length, 0);
        const entry = { present: new Set<number>(), done: false };
        for (let i = 0; i < N; i++) if (snapshot[i * BLOCK] === i + 1 && snapshot[i * BLOCK + BLOCK - 1] === i + 1) entry.present.add(i);
        syncs.push(entry);
        await fdatasyncFd(fd);
        entry.done = true;
      },
    });
    const acked = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        dev.write(i * BLOCK, Buffer.alloc(BLOCK, i + 1), { fua: true }).then(() => {
          // At the moment of the acknowledgement a completed fdatasync covered this write.
          assert.ok(syncs.some((s) => s.done && s.present.has(i)), `${engine}: write ${i} acknowledged without a covering fdatasync`);
          return i;
        }),
      ),
    );
    assert.equal(acked.length, N);
    assert.ok(fdOfDevice >= 0);
    assert.ok(syncs.length < N, `${engine}: ${syncs.length} fdatasyncs for ${N} concurrent writes: they must be shared`);
    assert.ok(syncs.length >= 1);
    await dev.close();
    const back = fs.readFileSync(p);
    for (let i = 0; i < N; i++) assert.equal(back[i * BLOCK], i + 1);
  }
  defaultEngine();
});

function defaultEngine(): 'uring' | 'threadpool' {
  try {
    setIoEngine('uring');
    return 'uring';
  } catch {
    return 'threadpool';
  }
}

test('a failed flush fails that SYNCHRONIZE CACHE as write-back loss; the next flush tries again (errseq: reported once)', async () => {
  const p = tmpFile();
  let calls = 0;
  const dev = await FileBackstore.open({
    path: p,
    createSize: MiB,
    fdatasync: async (fd) => {
      calls++;
      if (calls === 2) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5 });
      await fdatasyncFd(fd);
    },
  });
  await dev.write(0, Buffer.alloc(4096, 1));
  await dev.flush(); // call 1: fine
  await dev.write(4096, Buffer.alloc(4096, 2));
  await assert.rejects(dev.flush(), (e: unknown) => e instanceof FlushFailedError && e.kind === 'write-back' && !e.remembered); // call 2 fails
  // Each I_T nexus learns of the loss from the GuardedDevice above; the file itself goes on.
  await dev.write(8192, Buffer.alloc(4096, 3), { fua: true });
  await dev.flush();
  assert.equal(calls, 4);
  assert.equal((await dev.read(8192, 4096))[0], 3);
  await dev.close();
});

test('close() waits for reads and writes under way before it closes the descriptor', async () => {
  const p = tmpFile();
  const dev = await FileBackstore.open({ path: p, createSize: 16 * MiB });
  const big = Buffer.alloc(4 * MiB, 9);
  const ops = [dev.write(0, big), dev.write(4 * MiB + 512, Buffer.alloc(1000, 8)), dev.read(8 * MiB, 4 * MiB)];
  const closing = dev.close();
  await Promise.all(ops);
  await closing;
  const back = fs.readFileSync(p);
  assert.ok(back.subarray(0, 4 * MiB).every((b) => b === 9));
  assert.equal(back[4 * MiB + 512], 8);
  await assert.rejects(dev.read(0, 512), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'closed');
});
