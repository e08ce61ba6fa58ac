/**
 * Crash test: a child process runs a verified write load (with snapshots, snapshot removal,
 * copy-on-write and copy-up on a clone) and is killed with SIGKILL at a random moment, ten
 * times. After each kill: every acknowledged-and-flushed write is present, blocks touched by
 * the in-flight batch hold either their old or their new content, every acknowledged
 * snapshot reads exactly as it was taken, and `check` finds nothing wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStore } from '../../../src/store/check';
import { BLOCK, blockContent, describe } from './children/crash-data';
import { Child } from './procs';
import { MiB, randInt, rng, tmpStore } from './helpers';

interface Op {
  kind: 'w' | 'd';
  seq: number;
  block: number;
  n: number;
}

function apply(img: Buffer, op: Op): void {
  for (let i = 0; i < op.n; i++) {
    const b = op.block + i;
    if (op.kind === 'd') img.fill(0, b * BLOCK, (b + 1) * BLOCK);
    else blockContent(op.seq, b).copy(img, b * BLOCK);
  }
}

test('kill -9 during a verified write load, 10 times: flushed data survives, check is clean', { timeout: 300_000 }, async (t) => {
  const SIZE = 32 * MiB;
  const { store, root } = await tmpStore();
  // Parent with data in even 1 MiB objects, holes in odd ones; the load runs on its clone.
  await store.createImage('rbd/parent', { size: SIZE, order: 20 });
  const model = Buffer.alloc(SIZE);
  {
    const p = await store.openImage('rbd/parent');
    for (let b = 0; b < SIZE / BLOCK; b++) {
      if (Math.floor((b * BLOCK) / MiB) % 2 === 0) {
        const c = blockContent(0, b);
        c.copy(model, b * BLOCK);
        await p.write(b * BLOCK, c);
      }
    }
    await p.close();
  }
  await store.createSnapshot('rbd/parent@gold');
  await store.protectSnapshot('rbd/parent@gold');
  await store.cloneImage('rbd/parent@gold', 'rbd/vol', { order: 20 });

  const snapModels = new Map<string, Buffer>();
  const r = rng(4242);
  let seq = 1;
  let totalAcked = 0;
  let inFlight = 0;
  let interruptedMeta = 0;
  for (let round = 0; round < 10; round++) {
    const child = new Child('crash-writer', [root, 'rbd/vol', String(1000 + round), String(seq), `c${round}`]);
    await child.waitFor(/^ready$/);
    await new Promise((res) => setTimeout(res, 300 + randInt(r, 1200)));
    await child.kill();
    // Replay what the child reported.
    const lines: string[] = [];
    for (;;) {
      try {
        lines.push(await child.waitFor(/./, 50));
      } catch {
        break;
      }
    }
    let pending: Op[] = [];
    let pendingSnap: string | undefined;
    let pendingRemoval: string | undefined;
    for (const line of lines) {
      const [tag, ...rest] = line.split(' ');
      if (tag === 'P') {
        pending = rest.map((t) => {
          const [kind, s, block, n] = t.split(',');
          return { kind: kind as 'w' | 'd', seq: Number(s), block: Number(block), n: Number(n) };
        });
        for (const o of pending) seq = Math.max(seq, o.seq + 1);
      } else if (tag === 'A') {
        for (const o of pending) apply(model, o);
        totalAcked += pending.length;
        pending = [];
      } else if (tag === 'SP') pendingSnap = rest[0];
      else if (tag === 'S') {
        snapModels.set(rest[0], Buffer.from(model));
        pendingSnap = undefined;
      } else if (tag === 'RP') pendingRemoval = rest[0];
      else if (tag === 'R') {
        snapModels.delete(rest[0]);
        pendingRemoval = undefined;
      } else if (tag === 'error') assert.fail(`child failed: ${line}`);
    }
    if (pending.length > 0) inFlight++;
    if (pendingSnap || pendingRemoval) interruptedMeta++;
    // Verify the head (opening it exclusively also finishes an interrupted snapshot removal).
    const dev = await store.openImage('rbd/vol');
    const actual = await dev.read(0, SIZE);
    const pendingByBlock = new Map<number, Op>();
    for (const o of pending) for (let i = 0; i < o.n; i++) pendingByBlock.set(o.block + i, o);
    for (let b = 0; b < SIZE / BLOCK; b++) {
      const got = actual.subarray(b * BLOCK, (b + 1) * BLOCK);
      const acked = model.subarray(b * BLOCK, (b + 1) * BLOCK);
      if (got.equals(acked)) continue;
      const o = pendingByBlock.get(b);
      const alt = o ? (o.kind === 'd' ? Buffer.alloc(BLOCK) : blockContent(o.seq, b)) : undefined;
      if (alt && got.equals(alt)) continue;
      assert.fail(`round ${round}: block ${b} holds ${describe(got)}, expected ${describe(Buffer.from(acked))}${alt ? ` or ${describe(alt)}` : ''}`);
    }
    actual.copy(model);
    await dev.close();
    // Snapshots: acknowledged ones exact; one being created or removed may or may not exist.
    const existing = new Set((await store.listSnapshots('rbd/vol')).map((s) => s.name));
    for (const name of snapModels.keys()) {
      if (name === pendingRemoval) continue;
      assert.ok(existing.has(name), `round ${round}: acknowledged snapshot ${name} is missing; the store has ${[...existing].join(', ')}`);
    }
    if (pendingSnap && existing.has(pendingSnap)) snapModels.set(pendingSnap, Buffer.from(model));
    if (pendingRemoval && !existing.has(pendingRemoval)) snapModels.delete(pendingRemoval);
    for (const name of existing) assert.ok(snapModels.has(name), `round ${round}: unexpected snapshot ${name}`);
    for (const [name, want] of snapModels) {
      const sd = await store.openImage(`rbd/vol@${name}`);
      const got = await sd.read(0, SIZE);
      await sd.close();
      for (let b = 0; b < SIZE / BLOCK; b++) {
        const g = got.subarray(b * BLOCK, (b + 1) * BLOCK);
        if (!g.equals(want.subarray(b * BLOCK, (b + 1) * BLOCK))) {
          assert.fail(`round ${round}: snapshot ${name} block ${b} holds ${describe(Buffer.from(g))}, expected ${describe(want.subarray(b * BLOCK, (b + 1) * BLOCK))}`);
        }
      }
    }
    const parent = await store.openImage('rbd/parent@gold');
    const pdata = await parent.read(0, SIZE);
    await parent.close();
    for (let b = 0; b < SIZE / BLOCK; b += 97) {
      const want = Math.floor((b * BLOCK) / MiB) % 2 === 0 ? blockContent(0, b) : Buffer.alloc(BLOCK);
      assert.ok(pdata.subarray(b * BLOCK, (b + 1) * BLOCK).equals(want), `round ${round}: the parent snapshot changed at block ${b}`);
    }
    const chk = await checkStore(store, undefined);
    assert.deepEqual(chk.problems, [], `round ${round}: check`);
    seq += 1000;
  }
  assert.ok(totalAcked > 1000, `the load acknowledged only ${totalAcked} operations`);
  assert.ok(inFlight + interruptedMeta >= 5, `only ${inFlight + interruptedMeta} of 10 kills hit an operation in flight`);
  t.diagnostic(`acknowledged ops ${totalAcked}; kills during a batch ${inFlight}, during a snapshot create/remove ${interruptedMeta}`);
});
