import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IoEngine, fdatasyncFd, ioEngine, preadFull, pwriteFull, setInlineWrites, setIoEngine } from '../../../src/sys/io';

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'io-'));
  dirs.push(dir);
  return dir;
}

/** Deterministic bytes that differ per write (a seeded xorshift). */
function pattern(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const uringWorks = (() => {
  try {
    setIoEngine('uring');
    return true;
  } catch {
    return false;
  }
})();
const engines: IoEngine[] = [...(uringWorks ? (['uring'] as const) : []), 'threadpool', 'fs'];

test('io_uring is the default engine where the addon has liburing and the kernel allows it', () => {
  const lib = fs.existsSync('/usr/include/liburing.h');
  if (lib && fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0') assert.ok(uringWorks, 'liburing is installed, io_uring enabled, but the ring did not start');
  if (uringWorks) assert.equal(ioEngine(), 'uring');
});

for (const engine of engines) {
  for (const inline of [true, false]) {
    test(`${engine}${inline ? ' + inline page-cache writes' : ''}: whole-range writes and reads of every size and alignment round-trip`, async () => {
      setIoEngine(engine);
      setInlineWrites(inline);
      const file = path.join(tmpDir(), 'data');
      const fd = fs.openSync(file, 'w+');
      try {
        const size = 8 << 20;
        fs.ftruncateSync(fd, size);
        const model = Buffer.alloc(size);
        // Aligned and unaligned, small and large (past the inline limit), in one burst.
        const writes = [
          [0, 4096], [4096, 131072], [1 << 20, 512], [(1 << 20) + 512, 1000], [3 << 20, 1 << 20], [(5 << 20) + 4096, 262144], [7 << 20, 65536 + 512],
        ];
        await Promise.all(writes.map(([pos, len], i) => {
          const data = pattern(i + 1, len);
          data.copy(model, pos);
          const host = Buffer.concat([Buffer.alloc(17), data, Buffer.alloc(3)]); // a slice of a larger buffer
          return pwriteFull(fd, host, 17, len, pos);
        }));
        const back = Buffer.alloc(size, 0xee);
        await Promise.all([0, 1, 2, 3].map((q) => preadFull(fd, back, q * (size / 4), size / 4, q * (size / 4))));
        assert.ok(back.equals(model), 'file content equals the model');
        assert.ok(fs.readFileSync(file).equals(model), 'and node:fs sees the same');
        // Past end of file reads as zeros, not as stale buffer content.
        const tail = Buffer.alloc(8192, 0xee);
        await preadFull(fd, tail, 0, 8192, size - 4096);
        assert.ok(tail.subarray(4096).every((b) => b === 0));
        assert.ok(tail.subarray(0, 4096).equals(model.subarray(size - 4096)));
        await fdatasyncFd(fd);
      } finally {
        fs.closeSync(fd);
        setInlineWrites(true);
      }
    });
  }

  test(`${engine}: more requests in flight than the ring holds all complete (the rest take the fallback path)`, async () => {
    setIoEngine(engine);
    setInlineWrites(false); // force everything through the engine
    const file = path.join(tmpDir(), 'burst');
    const fd = fs.openSync(file, 'w+');
    try {
      const n = 2000;
      fs.ftruncateSync(fd, n * 4096);
      await Promise.all(Array.from({ length: n }, (_, i) => pwriteFull(fd, Buffer.alloc(4096, i & 0xff), 0, 4096, i * 4096)));
      const reads = Array.from({ length: n }, () => Buffer.alloc(4096));
      // Cold reads (dropped from nothing: just many at once) and syncs mixed in.
      await Promise.all([...reads.map((b, i) => preadFull(fd, b, 0, 4096, i * 4096)), fdatasyncFd(fd), fdatasyncFd(fd)]);
      reads.forEach((b, i) => assert.ok(b.every((x) => x === (i & 0xff)), `block ${i}`));
    } finally {
      fs.closeSync(fd);
      setInlineWrites(true);
    }
  });

  test(`${engine}: errors reject with the errno code, never crash`, async () => {
    setIoEngine(engine);
    const dir = tmpDir();
    const file = path.join(dir, 'ro');
    fs.writeFileSync(file, Buffer.alloc(8192, 1));
    const ro = fs.openSync(file, 'r');
    try {
      await assert.rejects(pwriteFull(ro, Buffer.alloc(4096), 0, 4096, 0), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
      await assert.rejects(pwriteFull(ro, Buffer.alloc(1000), 0, 1000, 5), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
      const dirFd = fs.openSync(dir, 'r');
      try {
        await assert.rejects(preadFull(dirFd, Buffer.alloc(4096), 0, 4096, 0), (e: NodeJS.ErrnoException) => e.code === 'EISDIR');
      } finally {
        fs.closeSync(dirFd);
      }
    } finally {
      fs.closeSync(ro);
    }
    // A descriptor number that is not open (fdatasync through the engine too).
    const closed = fs.openSync(file, 'r');
    fs.closeSync(closed);
    await assert.rejects(fdatasyncFd(closed), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
  });
}

test('fallback: a process told to use the thread pool (no io_uring) serves the same I/O', () => {
  const script = `
    const io = require(${JSON.stringify(path.join(REPO, 'dist', 'src', 'sys', 'io.js'))});
    const fs = require('fs');
    (async () => {
      const fd = fs.openSync(process.argv[1], 'w+');
      await io.pwriteFull(fd, Buffer.alloc(131072, 7), 0, 131072, 4096);
      await io.fdatasyncFd(fd);
      const b = Buffer.alloc(131072);
      await io.preadFull(fd, b, 0, 131072, 4096);
      process.stdout.write(io.ioEngine() + ' ' + b.every((x) => x === 7));
    })();`;
  for (const engine of ['threadpool', 'fs']) {
    const r = spawnSync(process.execPath, ['-e', script, path.join(tmpDir(), 'f')], { env: { ...process.env, ISCSI_GATEWAY_IO_ENGINE: engine }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${engine} true`);
  }
});

test('the addon builds without liburing and then reports io_uring as unavailable', { timeout: 240_000 }, () => {
  const work = tmpDir();
  const native = path.join(work, 'native');
  fs.mkdirSync(path.join(native, 'src'), { recursive: true });
  for (const f of ['binding.gyp', 'build.mjs']) fs.copyFileSync(path.join(REPO, 'native', f), path.join(native, f));
  fs.cpSync(path.join(REPO, 'native', 'src'), path.join(native, 'src'), { recursive: true });
  // Only the system addon is under test here; the Ceph addon is covered by its own tests.
  const build = spawnSync(process.execPath, [path.join(native, 'build.mjs')], { env: { ...process.env, ISCSI_GATEWAY_NO_URING: '1', ISCSI_GATEWAY_NO_CEPH: '1' }, encoding: 'utf8', timeout: 230_000 });
  assert.equal(build.status, 0, `build failed:\n${build.stdout}\n${build.stderr}`);
  const addon = path.join(native, 'build', 'Release', 'iscsi_gateway_sys.node');
  const check = `
    const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(addon)});
    const a = m.exports;
    let initError = '';
    try { a.uringInit(8, new Int32Array(16), () => {}); } catch (e) { initError = e.code; }
    const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'w+');
    const n = a.pwriteSync(fd, Buffer.alloc(4096, 3), 0, 4096, 0);
    process.stdout.write(JSON.stringify({ available: a.uringAvailable(), initError, n, content: fs.readFileSync(process.argv[1])[4095] }));`;
  const r = spawnSync(process.execPath, ['-e', check, path.join(work, 'f')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { available: false, initError: 'ENOSYS', n: 4096, content: 3 });
});
