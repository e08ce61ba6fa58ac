/** Test child: rewrites an image header as fast as it can (for the atomicity test). */
import { readHeader, writeHeader } from '../../../../src/store/header';

async function main(): Promise<void> {
  const file = process.argv[2];
  const h = await readHeader(file);
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) {
    // Vary the length so a torn write would show up as broken JSON.
    await writeHeader(file, { ...h, generation: h.generation + i, metadata: { pad: 'x'.repeat(i % 5000) } });
  }
}
main().catch((e) => {
  process.stdout.write(`error ${(e as Error).message}\n`);
  process.exit(1);
});
