/**
 * The data path of an open image: reads resolved through snapshots and parents, and writes
 * with copy-on-write into the newest snapshot and copy-up from a clone's parent.
 *
 *  - A write that needs no copy-on-write and no copy-up is one pwrite (the fast path; an
 *    in-memory check decides).
 *  - Otherwise, per object under its lock: the first head write to object N after the newest
 *    snapshot L copies N's current bytes into L's file (fdatasync), marks N preserved in L's
 *    map (fdatasync), and only then writes the head; the first write to an object a clone
 *    does not own copies the parent's bytes in, merges the write, fdatasyncs, and only then
 *    sets the owned bit.
 *  - A read resolves each piece to a file range or zeros and re-runs if a concurrent
 *    copy-on-write or copy-up moved the bytes while it read.
 */
import { allocExtents, copyRange, punchHole, zeroRange } from '../sys/native';
import { fdatasync } from '../sys/durable';
import { preadFull, pwriteFull } from '../sys/io';
import { Extent } from '../block/block-device';
import { ByteMap } from './bytemap';
import { CMAP_OWNED, CMAP_PARENT, PMAP_DATA, PMAP_NONE, PMAP_PARENT } from './disk';
import { isErrno, StoreError } from './errors';
import { ImageCore } from './image-core';
import { Check, Generation, ModifyOp, ParentLink, Segment, Src } from './image-generation';
import { OMAP_NONEXISTENT } from './object-map';

export abstract class ImageIO extends ImageCore {
  // ---------------------------------------------------------------- reads

  /** Maps that decide where [first,last] of a view comes from, captured for validation. */
  private async capture(g: Generation, snapId: number | null, first: number, last: number): Promise<Check | undefined> {
    const maps: ByteMap[] = [];
    if (snapId !== null) for (const s of g.snaps) if (s.meta.id >= snapId && first < s.count) maps.push(s.res.value.pmap);
    if (g.parent && g.cmap) maps.push(g.cmap.value);
    if (maps.length === 0) return undefined;
    const auth = this.authoritative;
    if (!auth) await Promise.all(maps.map((m) => m.refresh(first, last)));
    return { auth, maps, first, last, copies: maps.map((m) => m.slice(first, last)) };
  }

  private static async stillValid(c: Check): Promise<boolean> {
    for (let i = 0; i < c.maps.length; i++) {
      const now = c.auth ? c.maps[i].slice(c.first, c.last) : await c.maps[i].readDisk(c.first, c.last);
      if (!now.equals(c.copies[i])) return false;
    }
    return true;
  }

  /**
   * Resolve [off, off+len) of a view (head when snapId is null) down to file ranges and zeros
   * through snapshots and parents, run fn on them, and re-run it if a concurrent
   * copy-on-write or copy-up changed where the bytes live while fn ran.
   */
  async withSegments<T>(snapId: number | null, off: number, len: number, fn: (segs: Segment[]) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const pins: Array<[ImageIO, Generation]> = [];
      const checks: Check[] = [];
      let result: T;
      try {
        const segs: Segment[] = [];
        await this.collect(snapId, off, len, segs, pins, checks);
        result = await fn(segs);
        let ok = true;
        for (const c of checks) if (!(await ImageIO.stillValid(c))) ok = false;
        if (ok) return result;
      } finally {
        for (const [s, g] of pins) s.unpin(g);
      }
      if (attempt >= 50) throw new StoreError(`image ${this.pool}/${this.id}: data kept moving during a read`, 'busy');
    }
  }

  protected async collect(snapId: number | null, off: number, len: number, out: Segment[], pins: Array<[ImageIO, Generation]>, checks: Check[]): Promise<void> {
    const g = this.pin();
    pins.push([this, g]);
    if (len <= 0) return;
    const pieces: Array<[number, number, number]> = [];
    g.layout.forEachPiece(off, len, (n, x, l) => pieces.push([n, x, l]));
    let first = Infinity;
    let last = -1;
    for (const p of pieces) {
      if (p[0] < first) first = p[0];
      if (p[0] > last) last = p[0];
    }
    const c = await this.capture(g, snapId, first, last);
    if (c) checks.push(c);
    let cur: Src | undefined;
    let start = off;
    let end = off;
    const flush = async (): Promise<void> => {
      if (!cur || end <= start) return;
      if (cur.k === 'file') out.push({ fd: cur.fd, off: start, len: end - start });
      else if (cur.k === 'zero') out.push({ fd: -1, off: start, len: end - start });
      else {
        const lim = Math.min(end, cur.overlap);
        if (lim > start && g.parent) await g.parent.res.value.collect(g.parent.snapId, start, lim - start, out, pins, checks);
        const z = Math.max(start, lim);
        if (end > z) out.push({ fd: -1, off: z, len: end - z });
      }
    };
    for (const [n, x, l] of pieces) {
      const s = this.src(g, snapId, n);
      const same = cur !== undefined && cur.k === s.k && x === end && (s.k !== 'file' || (cur as { fd: number }).fd === s.fd) && (s.k !== 'parent' || (cur as { overlap: number }).overlap === s.overlap);
      if (same) {
        end = x + l;
        continue;
      }
      await flush();
      cur = s;
      start = x;
      end = x + l;
    }
    await flush();
  }

  read(snapId: number | null, off: number, len: number, buf: Buffer, bufOff = 0): Promise<void> {
    if (this.broken || this.closed) return Promise.reject(new StoreError(`image ${this.pool}/${this.id} is ${this.closed ? 'closed' : `unusable: ${this.broken!.message}`}`, 'io'));
    const g = this.gen;
    if (snapId === null) {
      if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > g.size) {
        return Promise.reject(new StoreError(`range ${off}+${len} is outside the image (${g.size} bytes)`, 'invalid-argument'));
      }
      // The head file lives as long as the state: no generation pin needed. Owned objects
      // stay owned, so a clone whose range is all owned reads its own file too.
      if (!g.parent || this.allOwned(g, off, len)) return preadFull(this.headFd, buf, bufOff, len, off);
    }
    return this.readResolved(snapId, off, len, buf, bufOff);
  }

  private allOwned(g: Generation, off: number, len: number): boolean {
    if (!g.cmap || len === 0) return true;
    const m = g.cmap.value;
    if (g.layout.simple) {
      const os = g.layout.objectSize;
      const last = Math.floor((off + len - 1) / os);
      for (let n = Math.floor(off / os); n <= last; n++) if (m.get(n) !== CMAP_OWNED && !this.ownedByRule(g, n)) return false;
      return true;
    }
    for (const n of g.layout.objectsIn(off, len)) if (m.get(n) !== CMAP_OWNED && !this.ownedByRule(g, n)) return false;
    return true;
  }

  private async readResolved(snapId: number | null, off: number, len: number, buf: Buffer, bufOff: number): Promise<void> {
    const g = this.pin();
    try {
      this.checkRange(off, len, snapId === null ? g.size : (g.snapById.get(snapId)?.meta.size ?? -1));
    } finally {
      this.unpin(g);
    }
    await this.withSegments(snapId, off, len, async (segs) => {
      await Promise.all(
        segs.map((s) => {
          const at = bufOff + (s.off - off);
          if (s.fd < 0) {
            buf.fill(0, at, at + s.len);
            return undefined;
          }
          return preadFull(s.fd, buf, at, s.len, s.off);
        }),
      );
    });
  }

  /** Allocation status of [off, off+len) of a view, gap-free and merged. */
  async mapStatus(snapId: number | null, off: number, len: number): Promise<Extent[]> {
    const out: Extent[] = [];
    const push = (offset: number, length: number, state: Extent['state']): void => {
      if (length <= 0) return;
      const last = out[out.length - 1];
      if (last && last.state === state && last.offset + last.length === offset) {
        out[out.length - 1] = { offset: last.offset, length: last.length + length, state };
      } else out.push({ offset, length, state });
    };
    const g0 = this.pin();
    try {
      this.checkRange(off, len, snapId === null ? g0.size : (g0.snapById.get(snapId)?.meta.size ?? -1));
    } finally {
      this.unpin(g0);
    }
    if (len === 0) return out;
    await this.withSegments(snapId, off, len, async (segs) => {
      out.length = 0;
      for (const s of segs) {
        if (s.fd < 0) {
          push(s.off, s.len, 'deallocated');
          continue;
        }
        for (const [x, l, skip] of this.omapRuns(s)) {
          if (skip) {
            push(x, l, 'deallocated');
            continue;
          }
          let pos = x;
          for (const e of await allocExtents(s.fd, x, l)) {
            push(pos, e.offset - pos, 'deallocated');
            push(e.offset, e.length, 'mapped');
            pos = e.offset + e.length;
          }
          push(pos, x + l - pos, 'deallocated');
        }
      }
    });
    return out;
  }

  /** Split a head segment by the object map: runs of objects known empty need no syscall. */
  private omapRuns(s: Segment): Array<[number, number, boolean]> {
    const om = this.omap;
    if (!om || s.fd !== this.headFd) return [[s.off, s.len, false]];
    const layout = this.gen.layout;
    const runs: Array<[number, number, boolean]> = [];
    layout.forEachPiece(s.off, s.len, (n, x, l) => {
      const empty = om.get(n) === OMAP_NONEXISTENT;
      const last = runs[runs.length - 1];
      if (last && last[2] === empty && last[0] + last[1] === x) last[1] += l;
      else runs.push([x, l, empty]);
    });
    return runs;
  }

  // ---------------------------------------------------------------- writes, copy-on-write and copy-up

  protected needsPreserve(g: Generation, n: number): boolean {
    const t = g.cowTarget;
    if (!t || n >= t.count || t.res.value.pmap.get(n) !== PMAP_NONE) return false;
    for (const r of g.cowAlso) if (n < r.count && r.res.value.pmap.get(n) !== PMAP_NONE) return false;
    return true;
  }

  private needsCopyUp(g: Generation, n: number): boolean {
    return g.parent !== null && g.cmap !== null && g.cmap.value.get(n) === CMAP_PARENT && !this.ownedByRule(g, n);
  }

  private fastOK(g: Generation, off: number, len: number): boolean {
    if (!g.cowTarget && !g.parent) return true;
    if (g.layout.simple) {
      const os = g.layout.objectSize;
      const last = Math.floor((off + len - 1) / os);
      for (let n = Math.floor(off / os); n <= last; n++) if (this.needsPreserve(g, n) || this.needsCopyUp(g, n)) return false;
      return true;
    }
    for (const n of g.layout.objectsIn(off, len)) if (this.needsPreserve(g, n) || this.needsCopyUp(g, n)) return false;
    return true;
  }

  private assertWritable(): void {
    if (!this.isWriterHere) throw new StoreError('image is not open for writing', 'read-only');
  }

  async write(off: number, data: Buffer, fua: boolean): Promise<void> {
    this.assertWritable();
    const w = this.enterWrite();
    if (w) await w;
    let g: Generation | undefined;
    try {
      g = this.pin();
      const len = data.length;
      this.checkRange(off, len, g.size);
      if (len === 0) return;
      if (this.omap) {
        if (g.layout.simple) this.omap.markExists(g.layout.objectOf(off), g.layout.objectOf(off + len - 1));
        else this.omap.markExistsList(g.layout.objectsIn(off, len));
      }
      if (this.fastOK(g, off, len)) await pwriteFull(this.headFd, data, 0, len, off);
      else await this.slowModify(g, { kind: 'data', off, len, data });
      if (fua) await fdatasync(this.headFd);
    } finally {
      if (g) this.unpin(g);
      this.leaveWrite();
    }
  }

  /** Deallocate (punch) or zero-with-provisioning a range, honouring snapshots and parents. */
  async modifyRange(kind: 'punch' | 'zero', off: number, len: number, fua: boolean): Promise<void> {
    this.assertWritable();
    const w = this.enterWrite();
    if (w) await w;
    let g: Generation | undefined;
    try {
      g = this.pin();
      this.checkRange(off, len, g.size);
      if (len === 0) return;
      if (kind === 'zero' && this.omap) this.omap.markExistsList(g.layout.objectsIn(off, len));
      if (this.fastOK(g, off, len)) await this.applyPiece(kind, off, len, undefined, 0);
      else await this.slowModify(g, { kind, off, len });
      if (fua) await fdatasync(this.headFd);
    } finally {
      if (g) this.unpin(g);
      this.leaveWrite();
    }
  }

  async flush(): Promise<void> {
    if (this.broken) throw new StoreError(`image ${this.pool}/${this.id} is unusable: ${this.broken.message}`, 'io');
    await fdatasync(this.headFd);
  }

  private async applyPiece(kind: ModifyOp['kind'], x: number, l: number, data: Buffer | undefined, dataOff: number): Promise<void> {
    if (kind === 'data') await pwriteFull(this.headFd, data!, x - dataOff, l, x);
    else if (kind === 'punch') await punchHole(this.headFd, x, l);
    else await zeroOrWrite(this.headFd, x, l);
  }

  private async slowModify(g: Generation, op: ModifyOp): Promise<void> {
    const byObject = new Map<number, Array<[number, number]>>();
    g.layout.forEachPiece(op.off, op.len, (n, x, l) => {
      let a = byObject.get(n);
      if (!a) byObject.set(n, (a = []));
      a.push([x, l]);
    });
    for (const [n, pieces] of byObject) {
      const release = await this.objLocks.lock(n);
      try {
        await this.refreshObject(g, n);
        if (this.needsPreserve(g, n)) await this.preserve(g, n);
        if (this.needsCopyUp(g, n)) await this.copyUp(g, n, pieces, op);
        else for (const [x, l] of pieces) await this.applyPiece(op.kind, x, l, op.kind === 'data' ? op.data : undefined, op.off);
      } finally {
        release();
      }
    }
  }

  /** Re-read object n's entries from disk (another process may have set them). */
  protected async refreshObject(g: Generation, n: number): Promise<void> {
    const jobs: Array<Promise<void>> = [];
    if (g.cmap) jobs.push(g.cmap.value.refresh(n, n));
    if (g.cowTarget) jobs.push(g.cowTarget.res.value.pmap.refresh(n, n));
    for (const r of g.cowAlso) jobs.push(r.res.value.pmap.refresh(n, n));
    await Promise.all(jobs);
  }

  /** Copy object n's current content into the newest snapshot, durably, before it changes. */
  protected async preserve(g: Generation, n: number): Promise<void> {
    const t = g.cowTarget!;
    const files = t.res.value;
    if (this.headSrc(g, n).k === 'parent') {
      // The clone still reads this object from its parent: record that, copy nothing.
      await files.pmap.setDurable([n], PMAP_PARENT);
      return;
    }
    for (const [x, l] of g.layout.objectExtents(n, g.size)) await copyRange(this.headFd, x, files.dataFd, x, l, true);
    await fdatasync(files.dataFd);
    await files.pmap.setDurable([n], PMAP_DATA);
  }

  /** Make object n of a clone owned: parent bytes where the op does not write, then the op. */
  private async copyUp(g: Generation, n: number, pieces: Array<[number, number]>, op: ModifyOp | undefined): Promise<void> {
    for (const [x, l] of g.layout.objectExtents(n, g.size)) {
      for (const [a, b] of subtract([x, x + l], pieces)) await this.fillFromParent(this.headFd, a, b, g.parent!);
    }
    if (op) for (const [x, l] of pieces) await this.applyPiece(op.kind, x, l, op.kind === 'data' ? op.data : undefined, op.off);
    await fdatasync(this.headFd);
    await g.cmap!.value.setDurable([n], CMAP_OWNED);
    this.omap?.markExistsList([n]); // parent bytes were copied in, whatever the op was
  }

  /**
   * Fill [a, b) of `fd` (same offsets) from the parent `link` points to: the parent's bytes
   * below its overlap (sparse), a hole above it.
   */
  protected async fillFromParent(fd: number, a: number, b: number, link: ParentLink): Promise<void> {
    const lim = Math.min(b, link.overlap);
    if (lim > a) {
      await link.res.value.withSegments(link.snapId, a, lim - a, async (segs) => {
        for (const s of segs) {
          if (s.fd < 0) await punchHole(fd, s.off, s.len);
          else await copyRange(s.fd, s.off, fd, s.off, s.len, true);
        }
      });
    }
    const z = Math.max(a, lim);
    if (b > z) await punchHole(fd, z, b - z);
  }
}

/** Parts of [a, b) not covered by the pieces. */
function subtract(range: [number, number], pieces: Array<[number, number]>): Array<[number, number]> {
  let out: Array<[number, number]> = [range];
  for (const [x, l] of pieces) {
    const next: Array<[number, number]> = [];
    for (const [a, b] of out) {
      if (x + l <= a || x >= b) {
        next.push([a, b]);
        continue;
      }
      if (x > a) next.push([a, x]);
      if (x + l < b) next.push([x + l, b]);
    }
    out = next;
  }
  return out;
}

const ZEROS = Buffer.alloc(1 << 20);
async function zeroOrWrite(fd: number, off: number, len: number): Promise<void> {
  try {
    await zeroRange(fd, off, len);
  } catch (e) {
    if (!isErrno(e, 'EOPNOTSUPP')) throw e;
    for (let done = 0; done < len; ) {
      const n = Math.min(ZEROS.length, len - done);
      await pwriteFull(fd, ZEROS, 0, n, off + done);
      done += n;
    }
  }
}
