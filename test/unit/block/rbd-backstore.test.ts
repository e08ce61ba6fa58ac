/**
 * RbdBackstore's own logic over a scripted image handle (the librbd side is exercised on a
 * real cluster in test/integration/ceph-data.test.ts): the bounded queue, errno mapping,
 * extents from allocation, size updates from the watch, compare-and-write boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockDeviceError } from '../../../src/block/block-device';
import { RbdBackstore, RbdImageHandle } from '../../../src/block/rbd-backstore';

const MiB = 1 << 20;

function errno(n: number, message: string): Error {
  return Object.assign(new Error(message), { errno: -n });
}

/** An in-memory image whose operations can be held back (`gate`) to build a queue. */
class ScriptedImage implements RbdImageHandle {
  data: Buffer;
  inside = 0;
  maxInside = 0;
  gate: Promise<void> | undefined;
  failNext: Error | undefined;
  watchers: Array<() => void> = [];
  flushes = 0;
  closed = false;
  allocation: Array<{ offset: number; length: number }> = [];

  constructor(size: number) {
    this.data = Buffer.alloc(size);
  }

  private async op<T>(fn: () => T): Promise<T> {
    this.inside++;
    this.maxInside = Math.max(this.maxInside, this.inside);
    try {
      if (this.gate) await this.gate;
      const f = this.failNext;
      this.failNext = undefined;
      if (f) throw f;
      return fn();
    } finally {
      this.inside--;
    }
  }

  async size(): Promise<number> {
    return this.data.length;
  }
  read(offset: number, length: number, into: Buffer): Promise<number> {
    return this.op(() => this.data.copy(into, 0, offset, offset + length));
  }
  write(offset: number, data: Buffer): Promise<void> {
    return this.op(() => void data.copy(this.data, offset));
  }
  flush(): Promise<void> {
    return this.op(() => void this.flushes++);
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.op(() => void this.data.fill(0, offset, offset + length));
  }
  writeSame(offset: number, length: number, pattern: Buffer): Promise<void> {
    return this.op(() => {
      for (let at = offset; at < offset + length; at += pattern.length) pattern.copy(this.data, at);
    });
  }
  compareAndWrite(offset: number, compare: Buffer, data: Buffer): Promise<number> {
    return this.op(() => {
      for (let i = 0; i < compare.length; i++) if (compare[i] !== this.data[offset + i]) return i;
      data.copy(this.data, offset);
      return -1;
    });
  }
  allocated(): Promise<Array<{ offset: number; length: number }>> {
    return this.op(() => this.allocation);
  }
  async watch(listener: () => void): Promise<() => Promise<void>> {
    this.watchers.push(listener);
    return async () => {
      this.watchers = this.watchers.filter((l) => l !== listener);
    };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function open(image: ScriptedImage, queueDepth = 4): Promise<RbdBackstore> {
  return RbdBackstore.open(image, { name: 'rbd/t', readOnly: false, objectSize: 4 * MiB, stripeUnit: 4 * MiB, stripeCount: 1, queueDepth });
}

test('at most queueDepth operations are inside librbd; the rest wait in order and all complete', async () => {
  const img = new ScriptedImage(8 * MiB);
  const dev = await open(img, 4);
  let release!: () => void;
  img.gate = new Promise((r) => (release = r));
  const writes = Array.from({ length: 20 }, (_, i) => dev.write(i * 4096, Buffer.alloc(4096, i + 1)));
  await new Promise((r) => setImmediate(r));
  assert.equal(img.inside, 4);
  assert.deepEqual(dev.queue, { inside: 4, waiting: 16, depth: 4 });
  img.gate = undefined;
  release();
  await Promise.all(writes);
  assert.equal(img.maxInside, 4);
  assert.deepEqual(dev.queue, { inside: 0, waiting: 0, depth: 4 });
  for (let i = 0; i < 20; i++) assert.equal(img.data[i * 4096], i + 1);
  await dev.close();
  assert.equal(img.closed, true);
});

test('an operation aborted while queued is never submitted', async () => {
  const img = new ScriptedImage(MiB);
  const dev = await open(img, 1);
  let release!: () => void;
  img.gate = new Promise((r) => (release = r));
  const first = dev.write(0, Buffer.alloc(4096, 1));
  const ac = new AbortController();
  const second = dev.write(4096, Buffer.alloc(4096, 2), { signal: ac.signal });
  ac.abort();
  img.gate = undefined;
  release();
  await first;
  await assert.rejects(second, (e) => e instanceof BlockDeviceError && e.kind === 'aborted');
  assert.equal(img.data[4096], 0);
  await dev.close();
});

test('librbd errnos become typed errors (ETIMEDOUT -> timeout, ENOSPC -> no-space, EIO on flush -> write-back)', async () => {
  const img = new ScriptedImage(MiB);
  const dev = await open(img);
  img.failNext = errno(110, 'Connection timed out');
  await assert.rejects(dev.write(0, Buffer.alloc(512)), (e) => e instanceof BlockDeviceError && e.kind === 'timeout');
  img.failNext = errno(28, 'No space left on device');
  await assert.rejects(dev.write(0, Buffer.alloc(512)), (e) => e instanceof BlockDeviceError && e.kind === 'no-space');
  img.failNext = errno(5, 'Input/output error');
  await assert.rejects(dev.flush(), (e) => e instanceof BlockDeviceError && e.kind === 'write-back');
  img.failNext = errno(5, 'Input/output error');
  await assert.rejects(dev.read(0, 512), (e) => e instanceof BlockDeviceError && e.kind === 'io');
  await assert.rejects(dev.read(MiB - 512, 1024), (e) => e instanceof BlockDeviceError && e.kind === 'out-of-range');
  await dev.close();
});

test('reads land in the caller buffer; FUA writes are followed by a flush', async () => {
  const img = new ScriptedImage(MiB);
  const dev = await open(img);
  await dev.write(8192, Buffer.alloc(4096, 7), { fua: true });
  assert.equal(img.flushes, 1);
  const into = Buffer.alloc(8192, 0xff);
  const got = await dev.read(8192, 4096, into);
  assert.equal(got, into);
  assert.equal(into[0], 7);
  assert.equal(into[4096], 0xff, 'bytes beyond the length are left alone');
  await dev.close();
});

test('write same: zeros through write_zeroes, a pattern through writesame', async () => {
  const img = new ScriptedImage(MiB);
  const dev = await open(img);
  await dev.writeSame(0, 65536, Buffer.from('abcd'));
  assert.equal(img.data.subarray(0, 8).toString(), 'abcdabcd');
  await dev.writeSame(0, 4096, Buffer.alloc(512));
  assert.equal(img.data[0], 0);
  assert.equal(img.data[4096], 'a'.charCodeAt(0));
  await dev.discard(4096, 4096);
  assert.equal(img.data[4096], 0);
  await dev.close();
});

test('compare and write: miscompare offset, success, and refusal beyond one 512-byte sector', async () => {
  const img = new ScriptedImage(8 * MiB);
  const dev = await open(img);
  img.data.fill(1, 0, 512);
  const cmp = Buffer.alloc(512, 1);
  cmp[100] = 9;
  assert.equal(await dev.compareAndWrite(0, cmp, Buffer.alloc(512, 2)), 100);
  assert.equal(img.data[0], 1);
  assert.equal(await dev.compareAndWrite(0, Buffer.alloc(512, 1), Buffer.alloc(512, 2)), -1);
  assert.equal(img.data[0], 2);
  await assert.rejects(dev.compareAndWrite(0, Buffer.alloc(1024), Buffer.alloc(1024)),
    (e) => e instanceof BlockDeviceError && e.kind === 'unsupported');
  img.failNext = errno(22, 'Invalid argument');
  await assert.rejects(dev.compareAndWrite(512, Buffer.alloc(512), Buffer.alloc(512)),
    (e) => e instanceof BlockDeviceError && e.kind === 'unsupported');
  await dev.close();
});

test('map status: allocated extents become mapped, the gaps deallocated, clipped to the range', async () => {
  const img = new ScriptedImage(16 * MiB);
  const dev = await open(img);
  img.allocation = [{ offset: 0, length: 4 * MiB }, { offset: 8 * MiB, length: 4 * MiB }];
  assert.deepEqual(await dev.mapStatus(MiB, 10 * MiB), [
    { offset: MiB, length: 3 * MiB, state: 'mapped' },
    { offset: 4 * MiB, length: 4 * MiB, state: 'deallocated' },
    { offset: 8 * MiB, length: 3 * MiB, state: 'mapped' },
  ]);
  img.allocation = [];
  assert.deepEqual(await dev.mapStatus(0, 4096), [{ offset: 0, length: 4096, state: 'deallocated' }]);
  await dev.close();
});

test('a header update with a new size reaches onResize listeners once', async () => {
  const img = new ScriptedImage(MiB);
  const dev = await open(img);
  const seen: number[] = [];
  dev.onResize((n) => seen.push(n));
  img.data = Buffer.concat([img.data, Buffer.alloc(MiB)]);
  for (const w of img.watchers) w();
  await new Promise((r) => setTimeout(r, 10));
  for (const w of img.watchers) w();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(seen, [2 * MiB]);
  assert.equal(dev.size(), 2 * MiB);
  await dev.close();
  assert.equal(img.watchers.length, 0);
});
