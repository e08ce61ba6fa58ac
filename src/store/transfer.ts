/**
 * Bulk data movement: export (raw, sparse when the target is a file), import (raw, skipping
 * zero blocks, from a file or a stream) and copy (the data extents of the files the source
 * resolves to, zero blocks skipped, so thin data stays thin).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { dataExtents } from '../sys/native';
import { StoreImageDevice } from './device';
import { StoreError } from './errors';
import { closeFd, ftruncate, isZero, openFd } from './fsutil';
import { fdatasync } from '../sys/durable';
import { preadFull, pwriteFull } from '../sys/io';
import { formatSpec, ImageSpec } from './names';
import { CreateImageOptions, ImageStore, Progress } from './store';

const CHUNK = 4 << 20;
const BLOCK = 4096;

/** Runs [start, end) of buf[0..len) that are not all-zero 4 KiB blocks (rbd's sparse size). */
function dataRuns(buf: Buffer, len: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let run = -1;
  for (let p = 0; p < len; p += BLOCK) {
    const n = Math.min(BLOCK, len - p);
    const zero = isZero(buf, p, n);
    if (!zero && run < 0) run = p;
    if (zero && run >= 0) {
      runs.push([run, p]);
      run = -1;
    }
  }
  if (run >= 0) runs.push([run, len]);
  return runs;
}

/** Write the non-zero 4 KiB blocks of buf[0..len) at image offset `off`. */
async function writeSparse(dev: StoreImageDevice, off: number, buf: Buffer, len: number): Promise<void> {
  for (const [a, b] of dataRuns(buf, len)) await dev.write(off + a, buf.subarray(a, b));
}

/** Export an image or snapshot as raw bytes to a file path ('-' = stdout) or a stream. */
export async function exportImage(store: ImageStore, spec: ImageSpec, dest: string | Writable, progress?: Progress): Promise<number> {
  const dev = await store.openImage(spec, { readOnly: true });
  try {
    const size = dev.size();
    const buf = Buffer.allocUnsafe(CHUNK);
    if (typeof dest === 'string' && dest !== '-') {
      let fd: number;
      try {
        fd = await openFd(dest, 'w');
      } catch (e) {
        throw new StoreError(`cannot create ${dest}: ${(e as Error).message}`, 'io');
      }
      try {
        const st = fs.fstatSync(fd);
        const sparse = st.isFile();
        for (let off = 0; off < size; off += CHUNK) {
          const n = Math.min(CHUNK, size - off);
          for (const e of await dev.mapStatus(off, n)) {
            if (e.state !== 'mapped' && sparse) continue;
            await dev.read(e.offset, e.length, buf);
            if (sparse && isZero(buf, 0, e.length)) continue;
            await pwriteFull(fd, buf, 0, e.length, e.offset);
          }
          progress?.(off + n, size);
        }
        if (sparse) await ftruncate(fd, size);
        await fdatasync(fd);
      } finally {
        await closeFd(fd);
      }
      return size;
    }
    const out: Writable = typeof dest === 'string' ? process.stdout : dest;
    for (let off = 0; off < size; off += CHUNK) {
      const n = Math.min(CHUNK, size - off);
      const chunk = Buffer.allocUnsafe(n);
      await dev.read(off, n, chunk);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', r));
      progress?.(off + n, size);
    }
    return size;
  } finally {
    await dev.close();
  }
}

/** Import raw bytes from a file path ('-' = stdin) or a stream into a new image. */
export async function importImage(
  store: ImageStore,
  src: string | Readable,
  spec: ImageSpec,
  options: Omit<CreateImageOptions, 'size'> = {},
  progress?: Progress,
): Promise<number> {
  if (typeof src === 'string' && src !== '-') {
    let fd: number;
    try {
      fd = await openFd(src, 'r');
    } catch (e) {
      throw new StoreError(`cannot open ${src}: ${(e as Error).message}`, 'not-found');
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new StoreError(`${src} is not a regular file (use '-' to import from a stream)`, 'invalid-argument');
      const size = st.size;
      await store.createLike(spec, size, undefined, options);
      let ok = false;
      const dev = await store.openImage(spec, { exclusive: true });
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        for (const e of await dataExtents(fd, 0, size)) {
          for (let off = e.offset; off < e.offset + e.length; off += CHUNK) {
            const n = Math.min(CHUNK, e.offset + e.length - off);
            await preadFull(fd, buf, 0, n, off);
            await writeSparse(dev, off, buf, n);
            progress?.(off + n, size);
          }
        }
        await dev.flush();
        ok = true;
      } finally {
        await dev.close();
        if (!ok) await store.removeImage(spec).catch(() => undefined);
      }
      progress?.(size, size);
      return size;
    } finally {
      await closeFd(fd);
    }
  }
  const input: Readable = typeof src === 'string' ? process.stdin : src;
  await store.createLike(spec, 0, undefined, options);
  let ok = false;
  let total = 0;
  try {
    let cap = 0;
    const buf = Buffer.allocUnsafe(CHUNK);
    let fill = 0;
    const flushBuf = async (): Promise<void> => {
      if (fill === 0) return;
      if (total + fill > cap) {
        cap = Math.max(total + fill, cap * 2, 1 << 30);
        await store.resizeImage(spec, cap);
      }
      const dev = await openCached();
      await writeSparse(dev, total, buf, fill);
      total += fill;
      fill = 0;
      progress?.(total, 0);
    };
    let dev: StoreImageDevice | undefined;
    const openCached = async (): Promise<StoreImageDevice> => (dev ??= await store.openImage(spec, { exclusive: true }));
    try {
      for await (const chunk of input) {
        const c = chunk as Buffer;
        for (let p = 0; p < c.length; ) {
          const n = Math.min(CHUNK - fill, c.length - p);
          c.copy(buf, fill, p, p + n);
          fill += n;
          p += n;
          if (fill === CHUNK) await flushBuf();
        }
      }
      await flushBuf();
      if (dev) await dev.flush();
    } finally {
      if (dev) await dev.close();
    }
    await store.resizeImage(spec, total, { allowShrink: true });
    ok = true;
  } finally {
    if (!ok) await store.removeImage(spec).catch(() => undefined);
  }
  return total;
}

/** Copy an image or snapshot (content, flattened) into a new image. */
export async function copyImage(store: ImageStore, src: ImageSpec, dst: ImageSpec, options: Omit<CreateImageOptions, 'size'> = {}, progress?: Progress): Promise<number> {
  const header = await store.readHeaderOf(src.pool, src.image);
  const snap = src.snapshot !== undefined ? header.snapshots.find((s) => s.name === src.snapshot && s.state === 'active') : undefined;
  if (src.snapshot !== undefined && !snap) throw new StoreError(`snapshot '${formatSpec(src)}' does not exist`, 'not-found');
  const size = snap ? snap.size : header.size;
  const srcDev = await store.openImage(src, { readOnly: true });
  try {
    await store.createLike(dst, size, header, options);
    let ok = false;
    const dstDev = await store.openImage(dst, { exclusive: true });
    try {
      const { paths: sp } = await store.lookup(src.pool, src.image);
      const { paths: dp } = await store.lookup(dst.pool, dst.image);
      const srcState = store.stateOf(sp)!;
      const dstFd = store.stateOf(dp)!.headDescriptor;
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let off = 0; off < size; off += CHUNK) {
        const n = Math.min(CHUNK, size - off);
        // Only the data extents of the files the source resolves to; zero blocks are skipped
        // as rbd copy does (sparse size 4 KiB).
        await srcState.withSegments(snap ? snap.id : null, off, n, async (segs) => {
          for (const s of segs) {
            if (s.fd < 0) continue;
            for (const e of await dataExtents(s.fd, s.off, s.len)) {
              await preadFull(s.fd, buf, 0, e.length, e.offset);
              for (const [a, b] of dataRuns(buf, e.length)) await pwriteFull(dstFd, buf, a, b - a, e.offset + a);
            }
          }
        });
        progress?.(off + n, size);
      }
      await dstDev.flush();
      await store.stateOf(dp)!.rescanObjectMap();
      ok = true;
    } finally {
      await dstDev.close();
      if (!ok) await store.removeImage(dst).catch(() => undefined);
    }
  } finally {
    await srcDev.close();
  }
  progress?.(size, size);
  return size;
}

export async function fileSize(file: string): Promise<number> {
  return (await fsp.stat(file)).size;
}
