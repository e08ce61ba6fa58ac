import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockDeviceError, expandPattern, toBlockDeviceError } from '../../../src/block/block-device';
import { GuardedDevice, isAbandoned } from '../../../src/block/guarded-device';
import { MemoryBackstore } from '../../../src/block/memory-backstore';

function errno(code: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: simulated`);
  e.code = code;
  return e;
}

/** A MemoryBackstore whose operations can be held (a backstore that stops answering). */
function holdable(): { inner: MemoryBackstore; hold(): void; release(): void; started: string[] } {
  const inner = new MemoryBackstore({ size: 1 << 20 });
  const started: string[] = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const wrap = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    started.push(name);
    if (gate) await gate;
    return fn(...a);
  };
  inner.read = wrap('read', inner.read.bind(inner));
  inner.write = wrap('write', inner.write.bind(inner));
  inner.flush = wrap('flush', inner.flush.bind(inner));
  return {
    inner, started,
    hold: () => { gate = new Promise((r) => (open = r)); },
    release: () => { open?.(); gate = undefined; },
  };
}

async function rejection(p: Promise<unknown>): Promise<BlockDeviceError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BlockDeviceError, `a BlockDeviceError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('GuardedDevice: bounded time and cancellation', () => {
  it('an operation the backstore never answers fails with timeout after cmd_time_out, and stays an orphan until it settles', async () => {
    const h = holdable();
    const g = new GuardedDevice(h.inner, { timeoutMs: 100 });
    h.hold();
    const t0 = Date.now();
    const e = await rejection(g.read(0, 512));
    const took = Date.now() - t0;
    assert.equal(e.kind, 'timeout');
    assert.ok(isAbandoned(e), 'the caller is told the backstore may still use the buffer');
    assert.ok(took >= 80 && took < 2000, `timed out after ${took} ms`);
    assert.equal(g.orphanCount, 1);
    h.release();
    assert.equal(await g.drain(1000), true);
    assert.equal(g.orphanCount, 0);
  });

  it('an aborted signal ends the wait at once', async () => {
    const h = holdable();
    const g = new GuardedDevice(h.inner, { timeoutMs: 60_000 });
    h.hold();
    const ac = new AbortController();
    const p = g.write(0, Buffer.alloc(512, 1), { signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    const e = await rejection(p);
    assert.equal(e.kind, 'aborted');
    assert.ok(isAbandoned(e));
    // Already aborted: not even submitted.
    const e2 = await rejection(g.read(0, 512, undefined, { signal: ac.signal }));
    assert.equal(e2.kind, 'aborted');
    assert.deepEqual(h.started, ['write']);
    h.release();
    await g.drain(1000);
  });

  it('a write overlapping an orphaned write waits for it; reads and other ranges do not', async () => {
    const h = holdable();
    const g = new GuardedDevice(h.inner, { timeoutMs: 60_000 });
    h.hold();
    const ac = new AbortController();
    const first = g.write(0, Buffer.alloc(4096, 1), { signal: ac.signal });
    ac.abort();
    await rejection(first);
    h.release(); // the backstore answers again, but the orphan is still queued behind the old gate
    const order: string[] = [];
    const overlap = g.write(1024, Buffer.alloc(512, 2)).then(() => order.push('overlap'));
    const elsewhere = g.write(8192, Buffer.alloc(512, 3)).then(() => order.push('elsewhere'));
    await Promise.all([overlap, elsewhere]);
    const back = await g.read(0, 2048);
    assert.equal(back[0], 1, 'the orphaned write landed');
    assert.equal(back[1024], 2, 'and the later one on top of it');
  });

  it('too many orphans: new operations fail at once instead of piling up', async () => {
    const h = holdable();
    const g = new GuardedDevice(h.inner, { timeoutMs: 60_000 });
    h.hold();
    const ac = new AbortController();
    const ops = Array.from({ length: 256 }, (_, i) => g.read(i * 512, 512, undefined, { signal: ac.signal }).catch(() => undefined));
    ac.abort();
    await Promise.all(ops);
    assert.equal(g.orphanCount, 256);
    const t0 = Date.now();
    const e = await rejection(g.read(0, 512));
    assert.equal(e.kind, 'timeout');
    assert.ok(Date.now() - t0 < 1000);
    h.release();
    assert.equal(await g.drain(5000), true);
    assert.deepEqual([...(await g.read(0, 4))], [0, 0, 0, 0]);
  });
});

describe('GuardedDevice: errors', () => {
  it('maps errno errors to kinds, with the direction of an I/O error', async () => {
    const inner = new MemoryBackstore({ size: 1 << 20 });
    const g = new GuardedDevice(inner);
    inner.write = () => Promise.reject(errno('ENOSPC'));
    assert.equal((await rejection(g.write(0, Buffer.alloc(512)))).kind, 'no-space');
    inner.write = () => Promise.reject(errno('EDQUOT'));
    assert.equal((await rejection(g.write(0, Buffer.alloc(512)))).kind, 'no-space');
    inner.write = () => Promise.reject(errno('EIO'));
    const w = await rejection(g.write(0, Buffer.alloc(512)));
    assert.deepEqual([w.kind, w.direction], ['io', 'write']);
    inner.read = () => Promise.reject(errno('EIO'));
    const r = await rejection(g.read(0, 512));
    assert.deepEqual([r.kind, r.direction], ['io', 'read']);
    inner.flush = () => Promise.reject(errno('EIO'));
    assert.equal((await rejection(g.flush())).kind, 'write-back');
    // Not an errno error and not typed: a bug, passed through untouched.
    inner.read = () => Promise.reject(new TypeError('bug'));
    await assert.rejects(g.read(0, 512), TypeError);
  });

  it('toBlockDeviceError keeps typed errors', () => {
    const e = new BlockDeviceError('x', 'read-only');
    assert.equal(toBlockDeviceError(e, 'd', 'write'), e);
    assert.equal(toBlockDeviceError(errno('EROFS'), 'd', 'write').kind, 'read-only');
  });
});

describe('GuardedDevice: write-back error memory (errseq)', () => {
  it('every observer learns of a failed flush once, even when the next fdatasync succeeds', async () => {
    const inner = new MemoryBackstore({ size: 1 << 20 });
    const g = new GuardedDevice(inner);
    const a = { seen: g.writeBackSequence };
    const b = { seen: g.writeBackSequence };
    let fail = true;
    const flush = inner.flush.bind(inner);
    inner.flush = () => (fail ? ((fail = false), Promise.reject(errno('EIO'))) : flush());
    assert.equal((await rejection(g.flushFor(a))).kind, 'write-back', 'A sees the failure itself');
    assert.equal((await rejection(g.flushFor(b))).kind, 'write-back', 'B was not told yet: its flush fails too');
    await g.flushFor(a);
    await g.flushFor(b);
    const c = { seen: g.writeBackSequence };
    await g.flushFor(c); // a later observer never wrote the lost data
  });

  it('a failed flush nobody waited for (SYNCHRONIZE CACHE with IMMED) is reported by the next one', async () => {
    const inner = new MemoryBackstore({ size: 1 << 20 });
    const g = new GuardedDevice(inner);
    const a = { seen: g.writeBackSequence };
    inner.flush = () => Promise.reject(errno('EIO'));
    await g.flush().catch(() => undefined);
    inner.flush = () => Promise.resolve();
    assert.equal((await rejection(g.flushFor(a))).kind, 'write-back');
    await g.flushFor(a);
  });

  it('a failed FUA write counts as a write-back failure; a failed plain write does not', async () => {
    const inner = new MemoryBackstore({ size: 1 << 20 });
    const g = new GuardedDevice(inner);
    const a = { seen: g.writeBackSequence };
    inner.write = () => Promise.reject(errno('EIO'));
    await g.write(0, Buffer.alloc(512)).catch(() => undefined);
    await g.flushFor(a);
    await g.write(0, Buffer.alloc(512), { fua: true }).catch(() => undefined);
    await assert.rejects(g.flushFor(a));
  });

  it('a flush that fails after it was given up on still counts', async () => {
    const inner = new MemoryBackstore({ size: 1 << 20 });
    const g = new GuardedDevice(inner, { timeoutMs: 50 });
    const a = { seen: g.writeBackSequence };
    let failLate: (e: Error) => void = () => undefined;
    inner.flush = () => new Promise((_res, rej) => (failLate = rej));
    assert.equal((await rejection(g.flushFor(a))).kind, 'timeout');
    assert.equal(g.writeBackSequence, 0, 'a timeout is no write-back failure');
    failLate(errno('EIO'));
    await g.drain(1000);
    assert.equal(g.writeBackSequence, 1);
    inner.flush = () => Promise.resolve();
    assert.equal((await rejection(g.flushFor(a))).kind, 'write-back');
  });
});

describe('expandPattern', () => {
  it('repeats the pattern into whole patterns, at most 1 MiB, at most the length', () => {
    const p = Buffer.from([1, 2, 3]);
    const e = expandPattern(p, 10);
    assert.deepEqual([...e], [1, 2, 3, 1, 2, 3, 1, 2, 3]);
    assert.equal(expandPattern(Buffer.alloc(512, 7), 64 << 20).length, 1 << 20);
    assert.equal(expandPattern(p, 2), p, 'shorter than one pattern: the pattern itself');
    const big = expandPattern(Buffer.from([9, 8, 7, 6, 5]), 1 << 20);
    for (let i = 0; i < big.length; i++) assert.equal(big[i], [9, 8, 7, 6, 5][i % 5]);
  });
});
