/**
 * Two processes, one image: the exclusive lock, shared writers, watchers, and metadata
 * changes made in one process reaching the other (snapshot while it writes, resize events).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from '../../../src/store/errors';
import { Child } from './procs';
import { MiB, tmpStore } from './helpers';

const busy = (re: RegExp) => (e: unknown) => e instanceof StoreError && e.kind === 'busy' && re.test(e.message);

test('the exclusive lock keeps a second writer out until the holder dies (kill -9)', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 16 * MiB });
  const child = new Child('holder', [root, 'rbd/img', 'exclusive']);
  try {
    await child.waitFor(/^ready$/);
    await assert.rejects(store.openImage('rbd/img'), busy(new RegExp(`exclusively locked by pid ${child.proc.pid}.*holder-exclusive`)));
    await assert.rejects(store.openImage('rbd/img', { exclusive: false }), busy(/exclusively locked/));
    const ro = await store.openImage('rbd/img', { readOnly: true });
    await ro.close();
    const locks = await store.listLocks('rbd/img');
    assert.equal(locks.owner?.pid, child.proc.pid);
    await assert.rejects(store.removeImage('rbd/img'), busy(/still has watchers/));
    await assert.rejects(store.rollbackSnapshot('rbd/img@nope'), /does not exist/);
    await store.createSnapshot('rbd/img@s');
    await assert.rejects(store.rollbackSnapshot('rbd/img@s'), busy(/cannot roll back .* while it is in use/));
  } finally {
    await child.kill();
  }
  const dev = await store.openImage('rbd/img');
  assert.equal((await store.listLocks('rbd/img')).owner?.pid, process.pid);
  await dev.close();
  assert.equal((await store.listLocks('rbd/img')).owner, undefined);
  await store.removeSnapshot('rbd/img@s');
  await store.removeImage('rbd/img');
});

test('shared writers coexist; an exclusive writer cannot join them', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 16 * MiB });
  const child = new Child('holder', [root, 'rbd/img', 'shared']);
  try {
    await child.waitFor(/^ready$/);
    const dev = await store.openImage('rbd/img', { exclusive: false });
    await dev.write(0, Buffer.alloc(4096, 1));
    await assert.rejects(store.openImage('rbd/img'), (e: unknown) => e instanceof StoreError && e.kind === 'busy');
    assert.equal((await store.listLocks('rbd/img')).shared.length, 2);
    assert.ok((await store.imageInfo('rbd/img')).flags.includes('object map invalid'), 'shared writers invalidate the object map');
    await dev.close();
    child.send('close');
    await child.waitFor(/^closed$/);
  } finally {
    await child.kill();
  }
  const dev = await store.openImage('rbd/img');
  assert.deepEqual((await dev.read(0, 1))[0], 1);
  await dev.close();
  assert.deepEqual((await store.imageInfo('rbd/img')).flags, [], 'the next exclusive owner rebuilt it');
});

test('a resize made by another process fires onResize in the process that has the image open', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 16 * MiB });
  const child = new Child('holder', [root, 'rbd/img', 'exclusive']);
  try {
    await child.waitFor(/^ready$/);
    await store.resizeImage('rbd/img', 32 * MiB);
    assert.equal(await child.waitFor(/^resize /), `resize ${32 * MiB}`);
    await assert.rejects(store.resizeImage('rbd/img', 8 * MiB), (e: unknown) => e instanceof StoreError && e.kind === 'shrink-not-allowed');
    await store.resizeImage('rbd/img', 8 * MiB, { allowShrink: true });
    assert.equal(await child.waitFor(/^resize /), `resize ${8 * MiB}`);
  } finally {
    await child.kill();
  }
  // In-process too.
  const dev = await store.openImage('rbd/img');
  const seen: number[] = [];
  dev.onResize((n) => seen.push(n));
  await store.resizeImage('rbd/img', 12 * MiB);
  assert.deepEqual(seen, [12 * MiB]);
  assert.equal(dev.size(), 12 * MiB);
  await dev.close();
});

test('a snapshot taken while another process writes is a consistent cut and stays unchanged', async () => {
  const { store, root } = await tmpStore();
  const BLOCKS = 2048; // 8 MiB of 4 KiB blocks over 2 objects of 4 MiB
  await store.createImage('rbd/img', { size: 8 * MiB });
  const child = new Child('holder', [root, 'rbd/img', 'exclusive']);
  const cut = (buf: Buffer, what: string): [number, number] => {
    // Blocks are written in order, generation after generation: a quiesced snapshot sees
    // blocks [0,k) of generation g and [k,BLOCKS) of generation g-1.
    const g0 = buf.readUInt32LE(0);
    let k = 0;
    while (k < BLOCKS && buf.readUInt32LE(k * 4096) === g0) k++;
    for (let b = 0; b < BLOCKS; b++) {
      const g = buf.readUInt32LE(b * 4096);
      const want = b < k ? g0 : g0 - 1;
      assert.equal(g, want, `${what}: block ${b} has generation ${g}, expected ${want} (cut at ${k})`);
      if (g > 0) assert.equal(buf.readUInt32LE(b * 4096 + 4), b, `${what}: block ${b} carries the wrong block number`);
    }
    return [g0, k];
  };
  try {
    await child.waitFor(/^ready$/);
    child.send(`loop ${BLOCKS}`);
    await child.waitFor(/^gen 2$/);
    const cuts: Array<[string, Buffer]> = [];
    for (let i = 0; i < 4; i++) {
      await store.createSnapshot(`rbd/img@s${i}`);
      const sd = await store.openImage(`rbd/img@s${i}`);
      cuts.push([`s${i}`, await sd.read(0, 8 * MiB)]);
      await sd.close();
      cut(cuts[i][1], `s${i} right after creation`);
      await child.waitFor(/^gen \d+$/);
    }
    await child.waitFor(/^gen \d+$/);
    child.send('stop');
    await child.waitFor(/^stopped$/);
    for (const [name, first] of cuts) {
      const sd = await store.openImage(`rbd/img@${name}`);
      const again = await sd.read(0, 8 * MiB);
      await sd.close();
      assert.ok(again.equals(first), `${name} changed after the writer went on`);
    }
    // Removing a snapshot in use by another process is refused.
    const sdChild = new Child('holder', [root, 'rbd/img@s1', 'read']);
    try {
      await sdChild.waitFor(/^ready$/);
      await assert.rejects(store.removeSnapshot('rbd/img@s1'), busy(/open by another process/));
    } finally {
      await sdChild.kill();
    }
    await store.removeSnapshot('rbd/img@s1');
    for (const name of ['s0', 's2', 's3']) {
      const sd = await store.openImage(`rbd/img@${name}`);
      assert.ok((await sd.read(0, 8 * MiB)).equals(cuts.find(([n]) => n === name)![1]), `${name} after removing s1`);
      await sd.close();
    }
    child.send('close');
    await child.waitFor(/^closed$/);
  } finally {
    await child.kill();
  }
});

test('after a writer is killed the object map is flagged invalid, and the next owner rebuilds it', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 16 * MiB });
  assert.deepEqual((await store.imageInfo('rbd/img')).flags, []);
  const child = new Child('holder', [root, 'rbd/img', 'exclusive']);
  try {
    await child.waitFor(/^ready$/);
    child.send('loop 2048');
    await child.waitFor(/^gen 1$/);
  } finally {
    await child.kill();
  }
  assert.deepEqual((await store.imageInfo('rbd/img')).flags, ['object map invalid']);
  const dev = await store.openImage('rbd/img');
  const mapped = (await dev.mapStatus(0, 16 * MiB)).filter((e) => e.state === 'mapped');
  assert.equal(mapped[0]?.offset, 0);
  assert.ok(mapped[0].length >= 8 * MiB, 'the rebuilt map knows the data the killed writer wrote');
  await dev.close();
  assert.deepEqual((await store.imageInfo('rbd/img')).flags, []);
});
