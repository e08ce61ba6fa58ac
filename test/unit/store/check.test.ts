/** `check` finds planted damage and names it precisely; the header is replaced atomically. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkStore } from '../../../src/store/check';
import { readHeader } from '../../../src/store/header';
import { StoreError } from '../../../src/store/errors';
import { Child } from './procs';
import { MiB, tmpStore } from './helpers';

test('a header rewritten in a loop and killed with SIGKILL always parses', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: MiB });
  const { paths } = await store.lookup('rbd', 'img');
  for (let round = 0; round < 5; round++) {
    const child = new Child('header-writer', [paths.header]);
    await child.waitFor(/^ready$/);
    await new Promise((r) => setTimeout(r, 50 + round * 37));
    await child.kill();
    const h = await readHeader(paths.header);
    assert.equal(h.name, 'img');
  }
  // Leftover temp files of the killed writers are what `check` reports, and --repair removes.
  const r1 = await checkStore(store, ['rbd']);
  assert.ok(r1.problems.every((p) => /is a temporary file of an interrupted update/.test(p.message)), JSON.stringify(r1.problems));
  await checkStore(store, ['rbd'], { repair: true });
  assert.deepEqual((await checkStore(store, ['rbd'])).problems, []);
});

test('a damaged header is reported with the field that is wrong', async () => {
  const { store } = await tmpStore();
  await store.createImage('rbd/img', { size: MiB });
  const { paths } = await store.lookup('rbd', 'img');
  const h = JSON.parse(fs.readFileSync(paths.header, 'utf8'));
  h.size = -5;
  fs.writeFileSync(paths.header, JSON.stringify(h));
  await assert.rejects(store.openImage('rbd/img'), (e: unknown) => e instanceof StoreError && e.kind === 'corrupt' && /size: Too small/.test(e.message));
  const r = await checkStore(store, ['rbd']);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0].message, /header\.json: size: Too small/);
  fs.writeFileSync(paths.header, '{"magic": "iscsi-gateway-image", ');
  assert.match((await checkStore(store, ['rbd'])).problems[0].message, /not valid JSON/);
});

test('check names each kind of damage precisely', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: 8 * MiB, order: 20 });
  const dev = await store.openImage('rbd/img');
  await dev.write(0, Buffer.alloc(MiB, 1));
  await dev.close();
  await store.createSnapshot('rbd/img@s');
  await store.protectSnapshot('rbd/img@s');
  await store.cloneImage('rbd/img@s', 'rbd/kid');
  assert.deepEqual((await checkStore(store, ['rbd'])).problems, [], 'clean to begin with');
  const img = await store.lookup('rbd', 'img');
  const kid = await store.lookup('rbd', 'kid');
  const pool = path.join(root, 'pools', 'rbd');

  // 1. A snapshot map with an illegal value.
  const fd = fs.openSync(img.paths.snapMap(1), 'r+');
  fs.writeSync(fd, Buffer.from([7]), 0, 1, 3);
  fs.closeSync(fd);
  // 2. A missing copy-up map.
  fs.renameSync(kid.paths.cmap, kid.paths.cmap + '.away');
  // 3. A dangling name.
  fs.symlinkSync('deadbeef0000', path.join(pool, 'names', 'ghost'));
  // 4. A head file that is too long (an interrupted shrink).
  fs.truncateSync(img.paths.head, 9 * MiB);
  // 5. An object map that claims an object with data is empty.
  const om = fs.openSync(img.paths.omap, 'r+');
  fs.writeSync(om, Buffer.from([0]), 0, 1, 16);
  fs.closeSync(om);
  // 6. A child entry whose image is gone.
  const h = JSON.parse(fs.readFileSync(img.paths.header, 'utf8'));
  h.snapshots[0].children.push({ pool: 'rbd', imageId: 'abcdefabcdef' });
  fs.writeFileSync(img.paths.header, JSON.stringify(h));
  // 7. Leftover snapshot files.
  fs.writeFileSync(path.join(img.paths.dir, 'snap-9.data'), '');

  const r = await checkStore(store, ['rbd']);
  const msgs = r.problems.map((p) => `${p.where}: ${p.message}`);
  const expect = [
    /rbd\/ghost: name points to image id deadbeef0000, which does not exist/,
    /rbd\/img@s: snap-1\.pmap has invalid entries for objects 3/,
    /rbd\/kid: clone copy-up map head\.cmap is missing/,
    /rbd\/img: data file head is 9437184 bytes, longer than the image \(8388608\)/,
    /rbd\/img: object map marks objects 0 empty, but they hold data/,
    /rbd\/img@s: lists child rbd\/<id abcdefabcdef>, which does not exist/,
    /rbd\/img: file snap-9\.data belongs to no snapshot/,
    /rbd\/kid: file head\.cmap\.away is not part of the format/,
  ];
  for (const re of expect) assert.ok(msgs.some((m) => re.test(m)), `expected ${re} in:\n${msgs.join('\n')}`);
  assert.equal(msgs.length, expect.length, msgs.join('\n'));

  // Repair what has a safe fix; the rest stays reported.
  fs.renameSync(kid.paths.cmap + '.away', kid.paths.cmap);
  const fd2 = fs.openSync(img.paths.snapMap(1), 'r+');
  fs.writeSync(fd2, Buffer.from([0]), 0, 1, 3);
  fs.closeSync(fd2);
  const rep = await checkStore(store, ['rbd'], { repair: true });
  assert.ok(rep.problems.every((p) => p.repaired), JSON.stringify(rep.problems.filter((p) => !p.repaired)));
  assert.deepEqual((await checkStore(store, ['rbd'])).problems, []);
  assert.deepEqual(await store.listChildren('rbd/img@s'), ['rbd/kid']);
});

test('interrupted operations: orphan image directory, trash, dangling child entry', async () => {
  const { store, root } = await tmpStore();
  await store.createImage('rbd/img', { size: MiB });
  const pool = path.join(root, 'pools', 'rbd');
  fs.unlinkSync(path.join(pool, 'names', 'img'));
  fs.mkdirSync(path.join(pool, 'trash', '112233445566'));
  fs.mkdirSync(path.join(pool, 'images', '.tmp-998877665544'));
  const msgs = (await checkStore(store, ['rbd'])).problems.map((p) => `${p.where}: ${p.message}`);
  assert.ok(msgs.some((m) => /rbd\/img: image id [0-9a-f]+ has no name in names\//.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /trash\/112233445566 is an interrupted image removal/.test(m)));
  assert.ok(msgs.some((m) => /images\/\.tmp-998877665544 is left over from an interrupted image creation/.test(m)));
  await checkStore(store, ['rbd'], { repair: true });
  assert.deepEqual((await checkStore(store, ['rbd'])).problems, []);
  assert.deepEqual(await store.listImages('rbd'), ['img'], 'repair restored the name');
});
