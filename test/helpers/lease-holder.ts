/**
 * A separate process holding an image lease (unit tests of src/ha/lease-lock.ts): takes the
 * lease of `key` in `dataDir` as gateway `name`, renews it, prints "held" and waits to be killed.
 * usage: node lease-holder.js <dataDir> <name> <key> <leaseMs>
 */
import { LeaseLocks } from '../../src/ha/lease-lock';
import { silentLogger } from '../../src/util/log';

async function main(): Promise<void> {
  const [dataDir, name, key, leaseMs] = process.argv.slice(2);
  const locks = new LeaseLocks({ dataDir, gateway: name, leaseMs: Number(leaseMs), log: silentLogger() });
  await locks.start();
  const r = await locks.tryAcquire(key);
  if (r.kind !== 'acquired') throw new Error(`not acquired: ${JSON.stringify(r)}`);
  process.stdout.write('held\n');
  setInterval(() => undefined, 1 << 30);
}

void main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
