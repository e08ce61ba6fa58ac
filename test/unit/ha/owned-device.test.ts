/**
 * OwnedDevice: a non-owner's first media access waits for the activation and then runs on the
 * read-write device; detach waits for the operations in flight, flushes, holds new operations
 * at the gate and refuses (staying the owner) when in-flight ones do not finish.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockDeviceError } from '../../../src/block/block-device';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { OwnedDevice } from '../../../src/ha/owned-device';
import { StandbyDevice } from '../../../src/ha/standby-device';

const MiB = 1 << 20;

/** A device whose writes wait for `release()` (an operation in flight). */
class SlowDevice extends MemoryBackstore {
  private gate: Promise<void> | undefined;
  private open!: () => void;
  flushes = 0;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.gate = undefined;
    this.open();
  }
  override async write(offset: number, data: Buffer): Promise<void> {
    if (this.gate) await this.gate;
    return super.write(offset, data);
  }
  override async flush(): Promise<void> {
    this.flushes++;
    return super.flush();
  }
}

test('the first media access of a non-owner activates, then runs on the read-write device', async () => {
  const rw = new MemoryBackstore({ size: MiB, name: 'rw' });
  let activations = 0;
  const dev: OwnedDevice = new OwnedDevice('d', new StandbyDevice('d', MiB), async () => {
    activations++;
    await new Promise((r) => setTimeout(r, 20));
    dev.attach(rw);
  });
  assert.equal(dev.active, false);
  assert.equal(dev.size(), MiB);
  await dev.flush(); // nothing of ours to flush: no activation
  assert.equal(activations, 0);
  await Promise.all([dev.write(0, Buffer.alloc(4096, 7)), dev.write(4096, Buffer.alloc(4096, 8))]);
  assert.equal(activations, 2, 'each waiting operation asked (the manager collapses them into one transition)');
  assert.equal(dev.active, true);
  assert.ok((await rw.read(0, 4096)).equals(Buffer.alloc(4096, 7)));
});

test('detach waits for operations in flight, flushes, and new operations wait at the gate', async () => {
  const rw = new SlowDevice({ size: MiB, name: 'rw' });
  // The lock went to another gateway: this one's activation is refused.
  const dev: OwnedDevice = new OwnedDevice('d', new StandbyDevice('d', MiB), async () => {
    throw new Error('no lock');
  });
  dev.attach(rw);
  rw.hold();
  const inFlight = dev.write(0, Buffer.alloc(4096, 1));
  await new Promise((r) => setImmediate(r));
  assert.equal(dev.inFlight, 1);
  let detached = false;
  const detaching = dev.detach(5000).then((d) => {
    detached = true;
    return d;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(detached, false, 'not before the write in flight finished');
  const queued = dev.write(4096, Buffer.alloc(4096, 2)).then(() => 'done', (e: BlockDeviceError) => e.kind);
  rw.release();
  await inFlight;
  assert.equal(await detaching, rw);
  assert.equal(rw.flushes, 1, 'flushed before handing over');
  assert.equal(dev.active, false);
  assert.equal(await queued, 'aborted', 'the queued write asked for the lock (refused here) instead of writing after the hand-over');
  assert.ok((await rw.read(4096, 4096)).equals(Buffer.alloc(4096)), 'nothing landed after the detach');
});

test('detach refuses and stays the owner when operations do not finish in time', async () => {
  const rw = new SlowDevice({ size: MiB, name: 'rw' });
  const dev = new OwnedDevice('d', new StandbyDevice('d', MiB), async () => undefined);
  dev.attach(rw);
  rw.hold();
  const w = dev.write(0, Buffer.alloc(512, 3));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(dev.detach(50), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'timeout');
  assert.equal(dev.active, true);
  rw.release();
  await w;
  await dev.write(512, Buffer.alloc(512, 4));
});
