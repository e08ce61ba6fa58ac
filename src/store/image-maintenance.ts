/**
 * Long-running work ImageStore drives on an open image, alongside I/O (per-object locks,
 * batches sharing one fdatasync): preserving what a shrink cuts off, flatten (copy-up of a
 * clone's head and of its snapshots), merging a removed snapshot into its predecessor, and
 * allocation figures for du.
 */
import * as fs from 'node:fs';
import { copyRange } from '../sys/native';
import { fdatasync } from '../sys/durable';
import { CMAP_OWNED, CMAP_PARENT, PMAP_DATA, PMAP_NONE, PMAP_PARENT } from './disk';
import { ParentLink, SnapEntry } from './image-generation';
import { ImageWriters } from './image-writers';

export abstract class ImageMaintenance extends ImageWriters {
  /** Does object n of snapshot snapId resolve to something other than the head? */
  snapshotDiffers(snapId: number, n: number): boolean {
    const g = this.gen;
    for (const s of g.snaps) {
      if (s.meta.id < snapId || n >= s.count) continue;
      if (s.res.value.pmap.get(n) !== PMAP_NONE) return true;
    }
    return false;
  }

  /**
   * Before a shrink to newSize (writers quiesced): preserve every object the shrink cuts into
   * the newest snapshot that still needs it.
   */
  async preserveForShrink(newSize: number): Promise<void> {
    const g = this.pin();
    try {
      for (const n of g.layout.objectsCut(newSize, g.size)) {
        const release = await this.objLocks.lock(n);
        try {
          await this.refreshObject(g, n);
          if (this.needsPreserve(g, n)) await this.preserve(g, n);
        } finally {
          release();
        }
      }
    } finally {
      this.unpin(g);
    }
  }

  /**
   * Flatten step 1: copy up every object of the clone's head that still reads from the parent.
   * Runs alongside I/O (per-object locks), in batches sharing one fdatasync.
   */
  async copyUpAll(progress?: (done: number, total: number) => void): Promise<void> {
    const g0 = this.gen;
    const total = g0.count;
    const BATCH = 16;
    for (let n = 0; n < total; ) {
      const w = this.enterWrite();
      if (w) await w;
      const g = this.pin();
      const releases: Array<() => void> = [];
      try {
        if (!g.parent || !g.cmap) return;
        const batch: number[] = [];
        for (; n < Math.min(total, g.count) && batch.length < BATCH; n++) {
          if (this.ownedByRule(g, n) || g.cmap.value.get(n) === CMAP_OWNED) continue;
          const release = await this.objLocks.lock(n);
          releases.push(release);
          await g.cmap.value.refresh(n, n);
          if (g.cmap.value.get(n) === CMAP_OWNED) continue;
          for (const [x, l] of g.layout.objectExtents(n, g.size)) await this.fillFromParent(this.headFd, x, x + l, g.parent);
          batch.push(n);
        }
        if (batch.length > 0) {
          await fdatasync(this.headFd);
          await g.cmap.value.setDurable(batch, CMAP_OWNED);
          this.omap?.markExistsList(batch);
        }
        if (g.count < total && n >= g.count) n = total;
      } finally {
        for (const r of releases) r();
        this.unpin(g);
        this.leaveWrite();
      }
      progress?.(Math.min(n, total), total);
    }
  }

  /** Objects of the head that still read from the parent (flatten must reach 0). */
  unownedObjects(): number {
    const g = this.gen;
    if (!g.parent || !g.cmap) return 0;
    let k = 0;
    for (let n = 0; n < g.count; n++) if (!this.ownedByRule(g, n) && g.cmap.value.get(n) === CMAP_PARENT) k++;
    return k;
  }

  /** Flatten step 2 (deep-flatten): give snapshots their own copy of what they read from the parent. */
  async materializeSnapshots(progress?: (done: number, total: number) => void): Promise<void> {
    const g = this.pin();
    try {
      if (!g.parent) return;
      const work: Array<[SnapEntry, number]> = [];
      for (const s of g.snaps) {
        await s.res.value.pmap.refresh();
        for (let n = 0; n < s.count; n++) if (s.res.value.pmap.get(n) === PMAP_PARENT) work.push([s, n]);
      }
      let done = 0;
      for (const s of g.snaps) {
        const mine = work.filter(([e]) => e === s).map(([, n]) => n);
        for (let i = 0; i < mine.length; i += 16) {
          const batch = mine.slice(i, i + 16);
          const link: ParentLink = { res: g.parent.res, snapId: g.parent.snapId, overlap: s.meta.parentOverlap };
          for (const n of batch) {
            const release = await this.objLocks.lock(n);
            try {
              for (const [x, l] of g.layout.objectExtents(n, s.meta.size)) await this.fillFromParent(s.res.value.dataFd, x, x + l, link);
            } finally {
              release();
            }
          }
          await fdatasync(s.res.value.dataFd);
          await s.res.value.pmap.setDurable(batch, PMAP_DATA);
          done += batch.length;
          progress?.(done, work.length);
        }
      }
    } finally {
      this.unpin(g);
    }
  }

  /**
   * Snapshot removal: move what `snapId` preserved into its predecessor where the predecessor
   * reads through it, so removing it changes no other snapshot's content.
   */
  async mergeIntoPredecessor(snapId: number, progress?: (done: number, total: number) => void): Promise<void> {
    const g = this.pin();
    try {
      const idx = g.snaps.findIndex((s) => s.meta.id === snapId);
      if (idx <= 0) return; // the oldest snapshot: nobody reads through it
      const s = g.snaps[idx];
      const p = g.snaps[idx - 1];
      const sm = s.res.value.pmap;
      const pm = p.res.value.pmap;
      await sm.refresh();
      const todo: number[] = [];
      for (let n = 0; n < Math.min(s.count, p.count); n++) if (sm.get(n) !== PMAP_NONE) todo.push(n);
      let done = 0;
      for (let i = 0; i < todo.length; i += 16) {
        const batch = todo.slice(i, i + 16);
        const releases: Array<() => void> = [];
        const data: number[] = [];
        const parent: number[] = [];
        try {
          for (const n of batch) {
            releases.push(await this.objLocks.lock(n));
            await pm.refresh(n, n);
            if (pm.get(n) !== PMAP_NONE) continue;
            if (sm.get(n) === PMAP_PARENT) {
              parent.push(n);
              continue;
            }
            for (const [x, l] of g.layout.objectExtents(n, Math.min(s.meta.size, p.meta.size))) {
              await copyRange(s.res.value.dataFd, x, p.res.value.dataFd, x, l, true);
            }
            data.push(n);
          }
          if (data.length) await fdatasync(p.res.value.dataFd);
          await pm.setDurable(data, PMAP_DATA);
          await pm.setDurable(parent, PMAP_PARENT);
        } finally {
          for (const r of releases) r();
        }
        done += batch.length;
        progress?.(done, todo.length);
      }
    } finally {
      this.unpin(g);
    }
  }

  /** Bytes allocated in the head file and each snapshot file (du). */
  async usage(): Promise<{ head: number; snaps: Map<number, number> }> {
    const g = this.pin();
    try {
      const head = fs.fstatSync(this.headFd).blocks * 512;
      const snaps = new Map<number, number>();
      for (const s of g.snaps) snaps.set(s.meta.id, fs.fstatSync(s.res.value.dataFd).blocks * 512);
      return { head, snaps };
    } finally {
      this.unpin(g);
    }
  }
}
