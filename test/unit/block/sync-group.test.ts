import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlushFailedError, SyncGroup } from '../../../src/block/sync-group';

/** An fdatasync stand-in whose calls the test completes by hand (the timing is the subject). */
class ManualSync {
  readonly calls: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  readonly fn = (): Promise<void> => new Promise((resolve, reject) => this.calls.push({ resolve, reject }));
}

const tick = () => new Promise((r) => setImmediate(r));

test('group commit: callers during a running fdatasync share exactly one next fdatasync', async () => {
  const m = new ManualSync();
  const g = new SyncGroup('disk', m.fn);
  const order: string[] = [];
  const a = g.sync().then(() => order.push('a'));
  assert.equal(m.calls.length, 1, 'the first caller starts an fdatasync at once');
  const later = Array.from({ length: 31 }, (_, i) => g.sync().then(() => order.push(`w${i}`)));
  await tick();
  assert.equal(m.calls.length, 1, 'no second fdatasync while one runs');
  m.calls[0].resolve();
  await a;
  assert.deepEqual(order, ['a'], 'callers that came during the first fdatasync are not answered by it');
  assert.equal(m.calls.length, 2, 'one next fdatasync for all 31 waiting callers');
  m.calls[1].resolve();
  await Promise.all(later);
  assert.equal(order.length, 32);
  assert.equal(g.started, 2);
  // Idle again: a new caller starts its own.
  const b = g.sync();
  assert.equal(m.calls.length, 3);
  m.calls[2].resolve();
  await b;
});

test('a failed fdatasync fails its callers and those queued behind it; a later caller starts afresh', async () => {
  const m = new ManualSync();
  const g = new SyncGroup('disk', m.fn);
  const first = g.sync();
  const waiting = g.sync(); // joins the next one
  m.calls[0].reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  await assert.rejects(first, (e: unknown) => e instanceof FlushFailedError && !e.remembered && e.kind === 'write-back' && /EIO/.test(e.message));
  // Its writes may have been in the dropped pages: a next fdatasync would succeed without them.
  await assert.rejects(waiting, (e: unknown) => e instanceof FlushFailedError && e.remembered && /EIO/.test(e.message));
  assert.equal(m.calls.length, 1, 'no fdatasync is started for the callers that waited');
  // As the kernel's errseq: reported once; telling every nexus is the GuardedDevice's part.
  const later = g.sync();
  assert.equal(m.calls.length, 2);
  m.calls[1].resolve();
  await later;
});

test('a throwing fdatasync function is a failed flush, not a crash', async () => {
  const g = new SyncGroup('disk', () => {
    throw new Error('EBADF');
  });
  await assert.rejects(g.sync(), (e: unknown) => e instanceof FlushFailedError && /EBADF/.test(e.message));
});
