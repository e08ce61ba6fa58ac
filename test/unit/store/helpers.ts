/** Shared helpers for store tests: temporary stores, seeded randomness, recognisable data. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ImageStore } from '../../../src/store/store';
export { rng } from '../../helpers/random';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const created: string[] = [];
process.once('exit', () => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed when the test process exits. */
export function tmpDir(prefix = 'store-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

export async function tmpStore(client = 'test'): Promise<{ store: ImageStore; root: string }> {
  const root = path.join(tmpDir(), 'store');
  const store = await ImageStore.open(root, { client });
  await store.createPool('rbd');
  return { store, root };
}

export function randInt(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

/** A buffer of `len` bytes whose content depends on (tag, offset): every byte tells where it belongs. */
export function pattern(tag: number, offset: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i += 4) {
    const v = (Math.imul(tag + 1, 0x9e3779b1) ^ Math.imul((offset + i) >>> 2, 0x85ebca6b)) >>> 0;
    if (i + 4 <= len) b.writeUInt32LE(v, i);
    else for (let k = 0; i + k < len; k++) b[i + k] = (v >>> (8 * k)) & 0xff;
  }
  return b;
}

/** Where two buffers first differ, for readable assertion messages. */
export function firstDiff(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

export function assertSame(actual: Buffer, expected: Buffer, what: string, base = 0): void {
  const d = firstDiff(actual, expected);
  if (d >= 0) {
    throw new Error(`${what}: differs at byte ${base + d} (offset ${d} of ${expected.length}): got ${actual[d]}, expected ${expected[d]}`);
  }
}

export const distDir = path.resolve(__dirname, '..', '..', '..');
export const childScript = (name: string): string => path.join(__dirname, 'children', `${name}.js`);

const ZERO = Buffer.alloc(1 << 20);
/** Index of the first non-zero byte of buf[off, off+len), or -1. */
export function firstNonZero(buf: Buffer, off: number, len: number): number {
  for (let p = off; p < off + len; p += ZERO.length) {
    const n = Math.min(ZERO.length, off + len - p);
    if (buf.compare(ZERO, 0, n, p, p + n) !== 0) {
      for (let i = p; i < p + n; i++) if (buf[i] !== 0) return i;
    }
  }
  return -1;
}
