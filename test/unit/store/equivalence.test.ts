/**
 * A store image behaves like the sparse-file backstore at the BlockDevice interface: the same
 * sequence of reads, writes, FUA writes, discards, WRITE SAMEs and status queries gives the
 * same data, the same allocation answers and the same errors. (The SCSI layer's conformance
 * on a store image then equals the file backstore's.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { BlockDevice, BlockDeviceError } from '../../../src/block/block-device';
import { FileBackstore } from '../../../src/block/file-backstore';
import { MiB, pattern, randInt, rng, tmpDir, tmpStore } from './helpers';

async function outcome<T>(p: Promise<T>): Promise<T | string> {
  try {
    return await p;
  } catch (e) {
    return e instanceof BlockDeviceError ? `error:${e.kind}` : `error:${(e as Error).message}`;
  }
}

test('same operations, same answers: store image vs sparse file', async () => {
  const size = 24 * MiB + 8192;
  const file = await FileBackstore.open({ path: path.join(tmpDir(), 'f.img'), createSize: size });
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size, order: 20 });
  const img = await store.openImage('rbd/img');
  assert.deepEqual(img.capabilities, file.capabilities);
  assert.equal(img.size(), file.size());
  const r = rng(99);
  const devs: BlockDevice[] = [file, img];
  for (let step = 0; step < 400; step++) {
    const off = randInt(r, size / 4096 + 4) * 4096; // sometimes past the end on purpose
    const len = (1 + randInt(r, 512)) * 4096;
    const k = randInt(r, 7);
    const deallocate = r() < 0.5;
    const results = await Promise.all(
      devs.map((d) => {
        switch (k) {
          case 0:
          case 1:
            return outcome(d.write(off, pattern(step, off, len), { fua: k === 1 }));
          case 2:
            return outcome(d.discard(off, len));
          case 3:
            return outcome(d.writeSame(off, len, Buffer.alloc(4096), { deallocate }));
          case 4:
            return outcome(d.writeSame(off, len, pattern(step, 0, 512)));
          case 5:
            return outcome(d.read(off, len).then((b) => b.toString('base64')));
          default:
            return outcome(d.mapStatus(off, len));
        }
      }),
    );
    assert.deepEqual(results[1], results[0], `step ${step}: op ${k} at ${off}+${len}`);
    if (step % 50 === 0) {
      const [a, b] = await Promise.all(devs.map((d) => d.read(0, size)));
      assert.ok(a.equals(b), `step ${step}: contents differ`);
      assert.deepEqual(await img.mapStatus(0, size), await file.mapStatus(0, size), `step ${step}: allocation differs`);
    }
  }
  // Closed devices fail alike.
  for (const d of devs) await d.close();
  assert.deepEqual(await Promise.all(devs.map((d) => outcome(d.read(0, 512)))), ['error:closed', 'error:closed']);
});
