import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../../src/util/buffer-pool';

describe('BufferPool', () => {
  it('recycles a given buffer for the next request of its size class', () => {
    const pool = new BufferPool();
    const a = pool.take(100_000);
    assert.equal(a.length, 100_000);
    pool.give(a);
    const b = pool.take(120_000); // same 128 KiB class
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.length, 120_000);
  });

  it('ignores a second give of the same buffer (never hands one buffer out twice)', () => {
    const pool = new BufferPool();
    const a = pool.take(64 * 1024);
    pool.give(a);
    pool.give(a);
    const x = pool.take(64 * 1024);
    const y = pool.take(64 * 1024);
    assert.notEqual(x.buffer, y.buffer);
  });

  it('ignores foreign buffers and leaves small and huge sizes to Node', () => {
    const pool = new BufferPool();
    pool.give(Buffer.alloc(64 * 1024));
    assert.equal(pool.idleByteCount, 0);
    const small = pool.take(512);
    pool.give(small);
    assert.equal(pool.idleByteCount, 0);
  });

  it('keeps at most maxIdleBytes idle', () => {
    const pool = new BufferPool(256 * 1024);
    const bufs = [pool.take(128 * 1024), pool.take(128 * 1024), pool.take(128 * 1024)];
    for (const b of bufs) pool.give(b);
    assert.equal(pool.idleByteCount, 256 * 1024);
  });

  it('trims idle buffers of size classes nobody takes from any more', () => {
    const pool = new BufferPool(64 * 1024 * 1024, 0);
    const big = Array.from({ length: 4 }, () => pool.take(8 * 1024 * 1024));
    const small = pool.take(64 * 1024);
    for (const b of big) pool.give(b);
    pool.give(small);
    assert.equal(pool.idleByteCount, 4 * 8 * 1024 * 1024 + 64 * 1024);
    pool.trim(); // both classes were used in this period: kept
    assert.equal(pool.idleByteCount, 4 * 8 * 1024 * 1024 + 64 * 1024);
    pool.give(pool.take(64 * 1024)); // only the small class stays in use
    pool.trim();
    assert.equal(pool.idleByteCount, 64 * 1024, 'the unused 8 MiB class was let go');
    const again = pool.take(8 * 1024 * 1024);
    assert.ok(!big.some((b) => b.buffer === again.buffer), 'a trimmed buffer is never handed out again');
  });
});
