/**
 * The image file both targets serve: sparse, then fully written once (preconditioned) so
 * reads hit real data and no write allocates blocks for the first time during a measurement.
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';

const CHUNK = 4 << 20;

export async function createPreconditionedImage(file: string, size: number): Promise<void> {
  if (size % 4096 !== 0) throw new Error(`image size ${size} is not a multiple of 4096`);
  const fh = await fs.promises.open(file, 'w', 0o600);
  try {
    await fh.truncate(size); // sparse first, like an image the gateway would create
    const chunk = Buffer.allocUnsafe(CHUNK);
    randomFillSync(chunk);
    for (let off = 0; off < size; off += CHUNK) {
      // Stamp each chunk so no two are identical (no backstore may dedupe or skip them).
      chunk.writeBigUInt64LE(BigInt(off), 0);
      const n = Math.min(CHUNK, size - off);
      let done = 0;
      while (done < n) {
        const { bytesWritten } = await fh.write(chunk, done, n - done, off + done);
        done += bytesWritten;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write back dirty pages of the image so one measurement's writeback does not land in the next. */
export async function syncImage(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Allocated bytes (st_blocks * 512): shows the file really is fully written. */
export function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}
