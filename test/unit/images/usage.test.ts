/** ImageProvider.usage on the embedded store: bytes allocated in the head, like rbd du's USED. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedImageProvider } from '../../../src/images/embedded';
import { ImageError } from '../../../src/images/provider';

const KiB = 1024;
const MiB = 2 ** 20;

test('usage: 0 for a new thin image, grows with written data, stays below the size', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-usage-'));
  const p = await EmbeddedImageProvider.open(path.join(dir, 'store'));
  try {
    await p.create('rbd', 'thin', 16 * MiB);
    assert.equal(await p.usage('rbd', 'thin'), 0, 'nothing written yet');
    const dev = await p.open('rbd', 'thin');
    await dev.write(0, Buffer.alloc(MiB, 0x5a));
    await dev.write(8 * MiB, Buffer.alloc(64 * KiB, 0xa5));
    await dev.flush();
    const used = await p.usage('rbd', 'thin');
    // Exactly what was written, give or take file-system block rounding and preallocation.
    assert.ok(used >= MiB + 64 * KiB, `used ${used} covers the written 1 MiB + 64 KiB`);
    assert.ok(used <= 4 * MiB, `used ${used} is far below the 16 MiB size (the image is thin)`);
    await dev.close();
    // Snapshots keep their own data: the head's figure is unchanged by taking one.
    await p.createSnapshot('rbd', 'thin', 's1');
    assert.equal(await p.usage('rbd', 'thin'), used);
    // A clone starts with no data of its own (it reads through to its parent).
    await p.protectSnapshot('rbd', 'thin', 's1');
    await p.clone('rbd', 'thin', 's1', 'rbd', 'child');
    assert.equal(await p.usage('rbd', 'child'), 0);
    await assert.rejects(p.usage('rbd', 'nope'), (e: unknown) => e instanceof ImageError && e.kind === 'not-found');
  } finally {
    await p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
