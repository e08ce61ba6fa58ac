/**
 * Crash-test child: a verified write load on a clone through the store API.
 *   node crash-writer.js <store-root> <spec> <seed> <first-seq> <snapshot-prefix>
 * Batches of 16 concurrent operations on distinct 4 KiB blocks (writes of 1..3 blocks, some
 * crossing object boundaries, and discards), then a flush. Before issuing a batch it prints
 * (synchronously, so a kill cannot lose it) "P <op>,<seq>,<block>,<nblocks> ..."; after the
 * flush returns "A" (acknowledged and flushed). Between batches it sometimes creates a
 * snapshot ("SP name" ... "S name") and removes the oldest beyond four ("RP name" ... "R name").
 */
import * as fs from 'node:fs';
import { ImageStore } from '../../../../src/store/store';
import { blockContent, BLOCK } from './crash-data';
import { rng } from '../../../helpers/random';

const say = (line: string): void => {
  fs.writeSync(1, line + '\n');
};

async function main(): Promise<void> {
  const [root, spec, seedS, firstSeqS, prefix] = process.argv.slice(2);
  const r = rng(Number(seedS));
  let seq = Number(firstSeqS);
  const store = await ImageStore.open(root, { client: 'crash-writer' });
  const dev = await store.openImage(spec);
  const blocks = dev.size() / BLOCK;
  const snaps: string[] = (await store.listSnapshots(spec)).map((s) => s.name).filter((n) => n.startsWith('c'));
  let snapNo = 0;
  say('ready');
  for (let batch = 0; ; batch++) {
    const used = new Set<number>();
    const ops: Array<{ kind: 'w' | 'd'; seq: number; block: number; n: number }> = [];
    while (ops.length < 16) {
      const kind = r() < 0.1 ? 'd' : 'w';
      const n = kind === 'd' ? 1 : 1 + Math.floor(r() * 3);
      // Half of the operations start just before an object boundary (objects are 1 MiB).
      const block = r() < 0.5 ? Math.max(0, Math.floor(r() * (blocks / 256)) * 256 - Math.floor(r() * 2)) : Math.floor(r() * (blocks - n));
      if (block + n > blocks) continue;
      let clash = false;
      for (let b = block; b < block + n; b++) if (used.has(b)) clash = true;
      if (clash) continue;
      for (let b = block; b < block + n; b++) used.add(b);
      ops.push({ kind, seq: seq++, block, n });
    }
    say('P ' + ops.map((o) => `${o.kind},${o.seq},${o.block},${o.n}`).join(' '));
    await Promise.all(
      ops.map((o) => {
        if (o.kind === 'd') return dev.discard(o.block * BLOCK, o.n * BLOCK);
        const buf = Buffer.allocUnsafe(o.n * BLOCK);
        for (let i = 0; i < o.n; i++) blockContent(o.seq, o.block + i).copy(buf, i * BLOCK);
        return dev.write(o.block * BLOCK, buf);
      }),
    );
    await dev.flush();
    say('A');
    if (batch % 8 === 7) {
      const name = `${prefix}-${snapNo++}`;
      say(`SP ${name}`);
      await store.createSnapshot(`${spec}@${name}`);
      snaps.push(name);
      say(`S ${name}`);
    }
    if (batch % 8 === 7 && snaps.length > 4) {
      const name = snaps.shift()!;
      say(`RP ${name}`);
      await store.removeSnapshot(`${spec}@${name}`);
      say(`R ${name}`);
    }
  }
}

main().catch((e) => {
  say(`error ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
