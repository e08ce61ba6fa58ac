/** The embedded ImageProvider over src/store: life cycle, snapshots, clones, locks, watch. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedImageProvider } from '../../../src/images/embedded';
import { ImageError } from '../../../src/images/provider';

const MiB = 2 ** 20;

async function provider(): Promise<EmbeddedImageProvider> {
  return EmbeddedImageProvider.open(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'igw-images-')), 'store'));
}

function kind(k: string) {
  return (e: unknown) => e instanceof ImageError && e.kind === k;
}

test('create (pool on first use), info, list, grow-only resize, remove', async () => {
  const p = await provider();
  try {
    const d = await p.create('rbd', 'disk_1', 4 * MiB);
    assert.equal(d.size, 4 * MiB);
    assert.ok(d.features.includes('exclusive-lock'));
    assert.equal(d.featureMask & 4, 4, 'exclusive-lock bit, required by user:rbd');
    assert.deepEqual(await p.listPools(), ['rbd']);
    assert.deepEqual(await p.list('rbd'), ['disk_1']);
    assert.deepEqual(await p.list('nopool'), []);
    assert.equal(await p.exists('rbd', 'disk_1'), true);
    assert.equal(await p.exists('rbd', 'nope'), false);
    await assert.rejects(p.create('rbd', 'disk_1', MiB), kind('exists'));
    await p.resize('rbd', 'disk_1', 8 * MiB);
    assert.equal((await p.info('rbd', 'disk_1')).size, 8 * MiB);
    await assert.rejects(p.resize('rbd', 'disk_1', 2 * MiB), kind('shrink-not-allowed'));
    await assert.rejects(p.info('rbd', 'nope'), kind('not-found'));
    await p.remove('rbd', 'disk_1');
    assert.deepEqual(await p.list('rbd'), []);
  } finally {
    await p.close();
  }
});

test('snapshots: create, rollback, protect, clone, flatten, read-only export, remove', async () => {
  const p = await provider();
  try {
    await p.create('rbd', 'base', 4 * MiB);
    let dev = await p.open('rbd', 'base');
    await dev.write(0, Buffer.alloc(4096, 0xaa));
    await dev.flush();
    await dev.close();
    await p.createSnapshot('rbd', 'base', 'monday');
    await assert.rejects(p.createSnapshot('rbd', 'base', 'monday'), kind('exists'));
    dev = await p.open('rbd', 'base');
    await dev.write(0, Buffer.alloc(4096, 0xbb));
    await dev.close();
    // The snapshot, exported read-only, still holds the old data and refuses writes.
    const snapDev = await p.open('rbd', 'base', { snapshot: 'monday' });
    assert.equal(snapDev.readOnly, true);
    assert.equal((await snapDev.read(0, 4096))[0], 0xaa);
    await assert.rejects(snapDev.write(0, Buffer.alloc(4096)));
    await snapDev.close();
    await p.rollbackSnapshot('rbd', 'base', 'monday');
    dev = await p.open('rbd', 'base');
    assert.equal((await dev.read(0, 4096))[0], 0xaa, 'rolled back');
    await dev.close();
    await assert.rejects(p.clone('rbd', 'base', 'monday', 'rbd', 'child'), kind('not-protected'));
    await p.protectSnapshot('rbd', 'base', 'monday');
    const child = await p.clone('rbd', 'base', 'monday', 'rbd', 'child');
    assert.deepEqual(child.parent && { image: child.parent.image, snapshot: child.parent.snapshot }, { image: 'base', snapshot: 'monday' });
    await assert.rejects(p.removeSnapshot('rbd', 'base', 'monday'), kind('protected'));
    await assert.rejects(p.unprotectSnapshot('rbd', 'base', 'monday'), kind('has-children'));
    await p.flatten('rbd', 'child');
    assert.equal((await p.info('rbd', 'child')).parent, null);
    await p.unprotectSnapshot('rbd', 'base', 'monday');
    await assert.rejects(p.remove('rbd', 'base'), kind('has-snapshots'));
    assert.deepEqual((await p.listSnapshots('rbd', 'base')).map((s) => s.name), ['monday']);
    await p.removeSnapshot('rbd', 'base', 'monday');
    await assert.rejects(p.removeSnapshot('rbd', 'base', 'monday'), kind('not-found'));
    await p.remove('rbd', 'base');
  } finally {
    await p.close();
  }
});

test('lock state names the writer; watch reports a resize', async () => {
  const p = await provider();
  try {
    await p.create('rbd', 'w', 4 * MiB);
    assert.equal((await p.lockState('rbd', 'w')).owner, undefined);
    const dev = await p.open('rbd', 'w');
    assert.match((await p.lockState('rbd', 'w')).owner ?? '', new RegExp(`pid ${process.pid}`));
    const seen = new Promise<number>((resolve) => {
      const stop = p.watch('rbd', 'w', (info) => {
        stop();
        resolve(info.size);
      }, 50);
    });
    await new Promise((r) => setTimeout(r, 150));
    await p.resize('rbd', 'w', 8 * MiB);
    // The watch timer is unref'd (it must not keep a daemon alive): hold the loop open here.
    const keep = setTimeout(() => undefined, 5000);
    assert.equal(await seen, 8 * MiB);
    clearTimeout(keep);
    assert.equal(dev.size(), 8 * MiB, 'the open device sees the new size');
    await dev.close();
  } finally {
    await p.close();
  }
});
