import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { AtomicJournal, JournalTarget } from '../../../src/block/atomic-journal';
import { FileBackstore } from '../../../src/block/file-backstore';
import { ImageStore } from '../../../src/store';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'igw-atomic-'));
}

/** A record exactly as AtomicJournal writes it, to simulate a crash after the journal sync. */
function record(offset: number, data: Buffer, corrupt = false): Buffer {
  const h = Buffer.alloc(64);
  Buffer.from('IGWATOM1').copy(h, 0);
  h.writeUInt32LE(1, 8);
  h.writeBigUInt64LE(BigInt(offset), 16);
  h.writeUInt32LE(data.length, 24);
  h.writeUInt32LE(crc32c(data), 28);
  h.writeUInt32LE(crc32c(h.subarray(0, 60)), 60);
  const body = Buffer.from(data);
  if (corrupt) body[body.length - 1] ^= 0xff;
  return Buffer.concat([h, body]);
}

function memoryTarget(size: number): JournalTarget & { bytes: Buffer; flushes: number } {
  const t = {
    bytes: Buffer.alloc(size),
    flushes: 0,
    apply: async (offset: number, data: Buffer) => {
      data.copy(t.bytes, offset);
    },
    flush: async () => {
      t.flushes++;
    },
  };
  return t;
}

describe('atomic write journal', () => {
  it('writes in place, flushes, and leaves an empty journal', async () => {
    const dir = tmp();
    const target = memoryTarget(1 << 20);
    const j = await AtomicJournal.open(path.join(dir, 'j'), target);
    await j.write(4096, Buffer.alloc(65536, 7), target);
    assert.equal(target.bytes[4096], 7);
    assert.equal(target.bytes[4096 + 65535], 7);
    assert.ok(target.flushes >= 1);
    assert.equal(fs.statSync(path.join(dir, 'j')).size, 0);
    await j.close();
  });

  it('replays a complete record a crash left behind', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'j'), record(8192, Buffer.alloc(20000, 0x5a)));
    const target = memoryTarget(1 << 20);
    const j = await AtomicJournal.open(path.join(dir, 'j'), target);
    assert.equal(target.bytes[8192], 0x5a);
    assert.equal(target.bytes[8192 + 19999], 0x5a);
    assert.equal(fs.statSync(path.join(dir, 'j')).size, 0, 'invalidated after replay');
    await j.close();
  });

  it('drops a torn record (never acknowledged)', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'j'), record(0, Buffer.alloc(5000, 1), true));
    const target = memoryTarget(1 << 16);
    await (await AtomicJournal.open(path.join(dir, 'j'), target)).close();
    assert.equal(target.bytes.every((b) => b === 0), true);
    const half = record(0, Buffer.alloc(5000, 1)).subarray(0, 3000); // cut short
    fs.writeFileSync(path.join(dir, 'j'), half);
    await (await AtomicJournal.open(path.join(dir, 'j'), target)).close();
    assert.equal(target.bytes.every((b) => b === 0), true);
  });

  it('file backstore: atomic writes beyond a page use the journal; a crash record replays at open', async () => {
    const dir = tmp();
    const file = path.join(dir, 'disk.img');
    const dev = await FileBackstore.open({ path: file, createSize: 1 << 20 });
    assert.equal(dev.capabilities.atomicWriteBytes, 1 << 20);
    await dev.write(512, Buffer.alloc(128 * 1024, 3), { atomic: true });
    assert.equal((await dev.read(512, 512))[0], 3);
    await dev.close();
    fs.writeFileSync(`${file}.atomic-journal`, record(65536, Buffer.alloc(32768, 9)));
    const again = await FileBackstore.open({ path: file });
    const back = await again.read(65536, 32768);
    assert.equal(back.every((b) => b === 9), true);
    await again.close();
  });

  it('store image: atomic writes are journaled by the exclusive writer and replayed after a crash', async () => {
    const root = tmp();
    const store = await ImageStore.open(root);
    await store.createImage('rbd/a', { size: 4 << 20, createPool: true });
    const dev = await store.openImage('rbd/a');
    assert.equal(dev.capabilities.atomicWriteBytes, 1 << 20);
    await dev.write(1024, Buffer.alloc(200 * 1024, 4), { atomic: true });
    assert.equal((await dev.read(1024 + 100 * 1024, 512))[0], 4);
    await dev.close();
    const info = await store.imageInfo('rbd/a');
    const dir = path.join(root, 'pools', 'rbd', 'images', info.id);
    fs.writeFileSync(path.join(dir, 'atomic.journal'), record(2 << 20, Buffer.alloc(300 * 1024, 6)));
    const reopened = await store.openImage('rbd/a');
    assert.equal((await reopened.read(2 << 20, 300 * 1024)).every((b) => b === 6), true);
    await reopened.close();
    await store.close();
  });
});
