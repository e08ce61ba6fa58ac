import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { BlockDeviceError } from '../../../src/block/block-device';

const K = 4096;

describe('MemoryBackstore', () => {
  it('reads zeros where nothing was written and allocates only written chunks', async () => {
    const m = new MemoryBackstore({ size: 64 * K, chunkSize: K });
    assert.deepEqual(await m.read(0, 2 * K), Buffer.alloc(2 * K));
    await m.write(K + 100, Buffer.alloc(2 * K, 7));
    assert.equal(m.allocatedBytes(), 3 * K);
    const back = await m.read(K, 4 * K);
    assert.deepEqual(back.subarray(100, 100 + 2 * K), Buffer.alloc(2 * K, 7));
    assert.deepEqual(back.subarray(0, 100), Buffer.alloc(100));
  });

  it('reads into the given buffer', async () => {
    const m = new MemoryBackstore({ size: 16 * K });
    const into = Buffer.alloc(K, 0xff);
    const out = await m.read(0, K, into);
    assert.equal(out, into);
    assert.deepEqual(out, Buffer.alloc(K));
  });

  it('discard frees whole chunks, zeroes partial ones, and mapStatus tells them apart', async () => {
    const m = new MemoryBackstore({ size: 8 * K, chunkSize: K });
    await m.write(0, Buffer.alloc(8 * K, 1));
    await m.discard(K / 2, 2 * K);
    assert.deepEqual(await m.mapStatus(0, 8 * K), [
      { offset: 0, length: K, state: 'mapped' },
      { offset: K, length: K, state: 'deallocated' },
      { offset: 2 * K, length: 6 * K, state: 'mapped' },
    ]);
    const back = await m.read(0, 3 * K);
    assert.deepEqual(back.subarray(K / 2, K / 2 + 2 * K), Buffer.alloc(2 * K));
    assert.equal(back[K / 2 - 1], 1);
    assert.equal(back[K / 2 + 2 * K], 1);
    assert.deepEqual(await m.mapStatus(K + 10, 100), [{ offset: K + 10, length: 100, state: 'deallocated' }]);
  });

  it('writeSame repeats the pattern across chunks; a zero pattern with deallocate punches holes', async () => {
    const m = new MemoryBackstore({ size: 8 * K, chunkSize: K });
    const p = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    await m.writeSame(K - 16, 32 + K, p);
    const back = await m.read(K - 16, 32 + K);
    for (let i = 0; i < back.length; i++) assert.equal(back[i], p[i % 8]);
    await m.writeSame(0, 8 * K, Buffer.alloc(512), { deallocate: true });
    assert.equal(m.allocatedBytes(), 0);
    await m.writeSame(0, 2 * K, Buffer.alloc(512));
    assert.equal(m.allocatedBytes(), 2 * K, 'without deallocate the range is provisioned');
  });

  it('refuses out-of-range, read-only and closed access with typed errors', async () => {
    const m = new MemoryBackstore({ size: 4 * K });
    await assert.rejects(m.read(3 * K, 2 * K), (e: BlockDeviceError) => e.kind === 'out-of-range');
    const ro = new MemoryBackstore({ size: 4 * K, readOnly: true });
    await assert.rejects(ro.write(0, Buffer.alloc(512)), (e: BlockDeviceError) => e.kind === 'read-only');
    await assert.rejects(ro.discard(0, 512), (e: BlockDeviceError) => e.kind === 'read-only');
    await m.close();
    await assert.rejects(m.read(0, 512), (e: BlockDeviceError) => e.kind === 'closed');
  });

  it('resize notifies listeners and drops data beyond a new end', async () => {
    const m = new MemoryBackstore({ size: 4 * K, chunkSize: K });
    await m.write(0, Buffer.alloc(4 * K, 9));
    const sizes: number[] = [];
    const off = m.onResize((s) => sizes.push(s));
    m.resize(K + 512);
    m.resize(4 * K);
    off();
    m.resize(8 * K);
    assert.deepEqual(sizes, [K + 512, 4 * K]);
    const back = await m.read(0, 4 * K);
    assert.equal(back[K + 511], 9);
    assert.deepEqual(back.subarray(K + 512), Buffer.alloc(3 * K - 512));
    assert.equal(m.size(), 8 * K);
  });
});
