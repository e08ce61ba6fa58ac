import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AcquireOutcome, FenceRecord, ImageLockBackend, LockEvents, LockHolder, LockStatus } from '../../../src/ha/image-lock';
import { RoutedLocks } from '../../../src/ha/routed-locks';
import { parseBlocklist, rbdLockKey, rbdWriterCapabilities } from '../../../src/ha/rbd-lock';

/** A backend that records which keys reach it (the router's only job is to route). */
class Recording implements ImageLockBackend {
  readonly calls: string[] = [];
  events: LockEvents | undefined;
  started = 0;
  closed = 0;
  constructor(readonly kind: 'embedded' | 'ceph', readonly leaseMs: number, private readonly name: string) {}
  async tryAcquire(key: string): Promise<AcquireOutcome> {
    this.calls.push(`acquire ${key}`);
    return { kind: 'held', holder: { gateway: this.name, client: this.name, since: 1 }, stale: false };
  }
  async release(key: string): Promise<void> {
    this.calls.push(`release ${key}`);
  }
  async status(key: string): Promise<LockStatus> {
    this.calls.push(`status ${key}`);
    return { stale: false, holder: { gateway: this.name, client: this.name, since: 1 } };
  }
  async requestHandover(key: string, holder: LockHolder): Promise<void> {
    this.calls.push(`handover ${key} ${holder.gateway}`);
  }
  async breakWithFencing(key: string, holder: LockHolder): Promise<FenceRecord> {
    this.calls.push(`fence ${key}`);
    return { holder, action: this.name, ms: 0 };
  }
  held(key: string): boolean {
    this.calls.push(`held ${key}`);
    return this.kind === 'ceph';
  }
  setEvents(events: LockEvents): void {
    this.events = events;
  }
  async start(): Promise<void> {
    this.started++;
  }
  async close(): Promise<void> {
    this.closed++;
  }
}

describe('RoutedLocks', () => {
  it('sends rbd: keys to the Ceph backend and every other key to the fallback', async () => {
    const lease = new Recording('embedded', 2000, 'lease');
    const rbd = new Recording('ceph', 5000, 'rbd');
    const r = new RoutedLocks([{ prefix: 'rbd:', backend: rbd }], lease);
    assert.equal(r.kind, 'ceph');
    assert.equal(r.leaseMs, 5000, 'the longest lease bounds transitions');
    const key = rbdLockKey('rbd', 'disk_1');
    assert.equal(key, 'rbd:rbd/disk_1');
    assert.equal(((await r.tryAcquire(key)) as { holder: LockHolder }).holder.gateway, 'rbd');
    assert.equal(((await r.tryAcquire('image:rbd/disk_1')) as { holder: LockHolder }).holder.gateway, 'lease');
    assert.equal((await r.status('file:/x')).holder?.gateway, 'lease');
    assert.equal((await r.breakWithFencing(key, { gateway: 'g', client: 'c', since: 0 })).action, 'rbd');
    await r.requestHandover('image:a/b', { gateway: 'g2', client: 'c', since: 0 });
    await r.release(key);
    assert.equal(r.held(key), true);
    assert.equal(r.held('image:a/b'), false);
    assert.deepEqual(rbd.calls, ['acquire rbd:rbd/disk_1', 'fence rbd:rbd/disk_1', 'release rbd:rbd/disk_1', 'held rbd:rbd/disk_1']);
    assert.deepEqual(lease.calls, ['acquire image:rbd/disk_1', 'status file:/x', 'handover image:a/b g2', 'held image:a/b']);
    const events: LockEvents = { onHandoverRequest: () => undefined, onLost: () => undefined };
    r.setEvents(events);
    await r.start();
    await r.close();
    for (const b of [lease, rbd]) assert.deepEqual([b.events, b.started, b.closed], [events, 1, 1]);
  });

  it('is the fallback alone (embedded kind) without routes', () => {
    const r = new RoutedLocks([], new Recording('embedded', 3000, 'lease'));
    assert.equal(r.kind, 'embedded');
    assert.equal(r.leaseMs, 3000);
  });
});

describe('rbd-lock helpers', () => {
  it('parses `ceph osd blocklist ls --format=json` (Pacific appends the range list)', () => {
    const text = '[{"addr":"127.0.0.1:0/4116490763","until":"2026-12-03T17:48:59.303972+0000"},{"addr":"127.0.0.1:0/1","until":"x"}][]';
    assert.deepEqual(parseBlocklist(text), ['127.0.0.1:0/4116490763', '127.0.0.1:0/1']);
    assert.deepEqual(parseBlocklist('[]'), []);
    assert.deepEqual(parseBlocklist(''), []);
    assert.deepEqual(parseBlocklist('listed 0 entries'), []);
  });

  it("announces the writer's capabilities on the read-only view", () => {
    const ro = { discard: false, discardZeroes: true, mapStatus: true, atomicWriteBytes: 0, atomicWriteAlignment: 4096, physicalBlockBytes: 4096 };
    assert.deepEqual(rbdWriterCapabilities(ro), { ...ro, discard: true, atomicWriteBytes: 4096 });
  });
});
