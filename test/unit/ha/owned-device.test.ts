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

/** A device whose reads wait for `releaseReads()`. */
class SlowReads extends MemoryBackstore {
  private gate: Promise<void> | undefined;
  private open!: () => void;
  holdReads(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  releaseReads(): void {
    this.gate = undefined;
    this.open();
  }
  override async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (this.gate) await this.gate;
    return super.read(offset, length, into);
  }
}

test('COMPARE AND WRITE on a non-owner compares on the owner\'s device, not on the read-only view', async () => {
  // The view still shows 0x11; the image (what the owner wrote last) holds 0x22.
  const view = new MemoryBackstore({ size: MiB, name: 'view' });
  await view.write(0, Buffer.alloc(512, 0x11));
  const rw = new MemoryBackstore({ size: MiB, name: 'rw' });
  await rw.write(0, Buffer.alloc(512, 0x22));
  let activations = 0;
  const dev: OwnedDevice = new OwnedDevice('d', view, async () => {
    activations++;
    dev.attach(rw);
  }, true);
  assert.equal(await dev.compareAndWrite(0, Buffer.alloc(512, 0x22), Buffer.alloc(512, 0x33)), -1, 'matched the image');
  assert.equal(activations, 1, 'took ownership before comparing');
  assert.ok((await rw.read(0, 512)).equals(Buffer.alloc(512, 0x33)));
  const at = await dev.compareAndWrite(0, Buffer.concat([Buffer.alloc(100, 0x33), Buffer.alloc(412, 0x44)]), Buffer.alloc(512, 0x55));
  assert.equal(at, 100, 'offset of the first differing byte');
  assert.ok((await rw.read(0, 512)).equals(Buffer.alloc(512, 0x33)), 'nothing written on a miscompare');
});

test('ORWRITE on a non-owner reads the owner\'s device in the same turn, not the read-only view', async () => {
  // The view still shows 0x01; the image holds 0x10 (written by the previous owner).
  const view = new MemoryBackstore({ size: MiB, name: 'view' });
  await view.write(0, Buffer.alloc(512, 0x01));
  const rw = new MemoryBackstore({ size: MiB, name: 'rw' });
  await rw.write(0, Buffer.alloc(512, 0x10));
  let activations = 0;
  const dev: OwnedDevice = new OwnedDevice('d', view, async () => {
    activations++;
    dev.attach(rw);
  }, true);
  await dev.orWrite(0, Buffer.alloc(512, 0x04));
  assert.equal(activations, 1, 'took ownership before reading');
  assert.ok((await rw.read(0, 512)).equals(Buffer.alloc(512, 0x14)), 'ORed with the image, not with the view');
});

test('a hand-over waits for a COMPARE AND WRITE between its compare and its write', async () => {
  const rw = new SlowReads({ size: MiB, name: 'rw' });
  const dev = new OwnedDevice('d', new StandbyDevice('d', MiB), async () => {
    throw new Error('no lock');
  });
  dev.attach(rw);
  rw.holdReads();
  const caw = dev.compareAndWrite(0, Buffer.alloc(512), Buffer.alloc(512, 9));
  await new Promise((r) => setImmediate(r));
  assert.equal(dev.inFlight, 1, 'the compare is in flight');
  const detaching = dev.detach(5000);
  await new Promise((r) => setTimeout(r, 20));
  rw.releaseReads();
  assert.equal(await caw, -1);
  assert.equal(await detaching, rw);
  assert.ok((await rw.read(0, 512)).equals(Buffer.alloc(512, 9)), 'the write landed before the device was handed back');
});

test('settle: at once when idle, after the operations in flight and a quiet moment when busy, never past its bound', async () => {
  const rw = new SlowDevice({ size: MiB, name: 'rw' });
  const dev = new OwnedDevice('d', new StandbyDevice('d', MiB), async () => undefined);
  dev.attach(rw);
  const t = Date.now();
  await dev.settle(0, Date.now() + 60_000);
  assert.ok(Date.now() - t < 1000, 'idle: no wait');
  rw.hold();
  const w = dev.write(0, Buffer.alloc(512, 1));
  await new Promise((r) => setImmediate(r));
  let settled = false;
  const s = dev.settle(10, Date.now() + 60_000).then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(settled, false, 'not while an operation is in flight');
  rw.release();
  await w;
  await s;
  rw.hold();
  const w2 = dev.write(0, Buffer.alloc(512, 2));
  await dev.settle(10, Date.now() + 30);
  assert.equal(dev.inFlight, 1, 'the bound ends the wait even though the owner is busy');
  rw.release();
  await w2;
});
