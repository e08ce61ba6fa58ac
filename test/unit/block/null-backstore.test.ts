import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NullBackstore } from '../../../src/block/null-backstore';
import { BlockDeviceError } from '../../../src/block/block-device';
import { checkConfig, emptyConfig } from '../../../src/config/schema';

const MiB = 1 << 20;

test('null backstore: writes are discarded, reads return zeros (also into a dirty buffer)', async () => {
  const dev = new NullBackstore({ size: 8 * MiB });
  assert.equal(dev.size(), 8 * MiB);
  await dev.write(4096, Buffer.alloc(8192, 0xa5), { fua: true });
  const fresh = await dev.read(4096, 8192);
  assert.equal(fresh.length, 8192);
  assert.ok(fresh.every((b) => b === 0));
  const dirty = Buffer.alloc(16384, 0xff);
  const into = await dev.read(0, 4096, dirty);
  assert.equal(into, dirty, 'the caller buffer is returned');
  assert.ok(dirty.subarray(0, 4096).every((b) => b === 0), 'the requested range is zeroed');
  assert.ok(dirty.subarray(4096).every((b) => b === 0xff), 'nothing past the requested length is touched');
  await dev.flush();
  await dev.discard(0, MiB);
  await dev.writeSame(0, 4096, Buffer.alloc(512, 1));
  assert.deepEqual(await dev.mapStatus(0, 8192), [{ offset: 0, length: 8192, state: 'mapped' }]);
  assert.equal(dev.capabilities.discardZeroes, true);
});

test('null backstore: ranges are checked like any device; closed and read-only devices refuse', async () => {
  const dev = new NullBackstore({ size: MiB });
  await assert.rejects(dev.read(MiB - 512, 1024), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'out-of-range');
  await assert.rejects(dev.write(-512, Buffer.alloc(512)), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'out-of-range');
  await assert.rejects(dev.writeSame(0, 1000, Buffer.alloc(512)), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'io');
  const ro = new NullBackstore({ size: MiB, readOnly: true });
  await assert.rejects(ro.write(0, Buffer.alloc(512)), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'read-only');
  await ro.read(0, 512);
  await dev.close();
  await assert.rejects(dev.read(0, 512), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'closed');
  await assert.rejects(dev.flush(), (e: unknown) => e instanceof BlockDeviceError && e.kind === 'closed');
  assert.throws(() => new NullBackstore({ size: 0 }), RangeError);
});

test('configuration: a null disk needs a size', () => {
  const wwn = '3b0e6c39-3c5e-4d3e-9d0e-000000000001';
  const withDisk = (size: number | undefined) => {
    const c = emptyConfig();
    c.disks['null/bench'] = { pool: 'null', image: 'bench', backstore: 'null', backstore_object_name: 'null.bench', size, wwn, controls: {} };
    return checkConfig(c);
  };
  assert.deepEqual(withDisk(MiB), []);
  assert.deepEqual(withDisk(undefined), ['disk null/bench: a null disk needs "size"']);
});
