/**
 * One librbd client writing 4 KiB blocks at random offsets of an image for a while, QD lanes
 * at once (bench/rbd.ts runs one or two of these at once to show what librbd's exclusive lock
 * does to two writers of one image). Prints one JSON line: I/Os per second, latency
 * percentiles (ms) and this process's CPU per I/O (µs).
 *
 *   node dist/bench/rbd-writer.js POOL IMAGE SECONDS QD     (CEPH_CONF names the cluster)
 */
import { CephCluster } from '../src/ceph/cluster';
import { RbdImage } from '../src/ceph/rbd-image';

export interface WriterResult {
  readonly iops: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuUsPerIo: number;
}

async function main(): Promise<void> {
  const [pool, image, secondsText, depthText] = process.argv.slice(2);
  const seconds = Number(secondsText);
  const depth = Number(depthText);
  if (!pool || !image || !(seconds > 0) || !(depth > 0)) throw new Error('usage: rbd-writer POOL IMAGE SECONDS QD');
  // The cache off, as the gateway opens active/active images: every write reaches the OSD.
  const cluster = await CephCluster.connect({ conf: { rbd_cache: 'false' } });
  const img = await RbdImage.open(cluster, pool, image);
  const blocks = Math.floor((await img.info()).size / 4096);
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const lane = async (): Promise<void> => {
    const block = Buffer.alloc(4096, 0x5a);
    while (Date.now() < end) {
      const t = process.hrtime.bigint();
      await img.write(Math.floor(Math.random() * blocks) * 4096, block);
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: depth }, lane));
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const n = Math.max(1, latencies.length);
  const out: WriterResult = {
    iops: latencies.length / seconds,
    p50Ms: latencies[Math.floor(n * 0.5)] ?? 0,
    p99Ms: latencies[Math.floor(n * 0.99)] ?? 0,
    cpuUsPerIo: (cpu.user + cpu.system) / n,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  await img.close();
  await cluster.shutdown();
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
