/**
 * Test child: opens an image in another process and reacts to commands on stdin.
 *   node holder.js <store-root> <spec> <exclusive|shared|read>
 * Prints "ready" once open, "resize <bytes>" when the image is resized, "gen <g>" after
 * writing generation g of the write loop, "closed" after "close" on stdin.
 * Commands: "loop <blocks>" writes generations of <blocks> 4 KiB blocks, one block at a time,
 * each block tagged with its generation, until "stop"; "close".
 */
import * as readline from 'node:readline';
import { ImageStore } from '../../../../src/store/store';

async function main(): Promise<void> {
  const [root, spec, mode] = process.argv.slice(2);
  const store = await ImageStore.open(root, { client: `holder-${mode}` });
  const dev = await store.openImage(spec, mode === 'read' || spec.includes('@') ? { readOnly: true } : { exclusive: mode !== 'shared' });
  dev.onResize((n) => process.stdout.write(`resize ${n}\n`));
  process.stdout.write('ready\n');
  let looping = false;
  let loop: Promise<void> = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'loop') {
      looping = true;
      const blocks = Number(arg);
      loop = (async () => {
        for (let g = 1; looping; g++) {
          for (let b = 0; b < blocks && looping; b++) {
            const buf = Buffer.alloc(4096);
            buf.writeUInt32LE(g, 0);
            buf.writeUInt32LE(b, 4);
            await dev.write(b * 4096, buf);
          }
          process.stdout.write(`gen ${g}\n`);
        }
      })();
    } else if (cmd === 'stop') {
      looping = false;
      await loop;
      process.stdout.write('stopped\n');
    } else if (cmd === 'close') {
      looping = false;
      await loop;
      await dev.close();
      await store.close();
      process.stdout.write('closed\n');
      break;
    }
  }
}

main().catch((e) => {
  process.stdout.write(`error ${(e as Error).message}\n`);
  process.exit(1);
});
