/**
 * Writers of an open image: the exclusive lock (one writer in the whole cluster of processes,
 * which then owns the object map and the in-memory maps) or the shared lock (several writers
 * on purpose), the watcher registration that tells others who holds it, and the recovery of
 * what interrupted operations left behind.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { fdatasync } from '../sys/durable';
import { StoreError } from './errors';
import { ftruncate } from './fsutil';
import { readHeader } from './header';
import { Generation, WriterMode } from './image-generation';
import { ImageIO } from './image-io';
import { FileLock } from './locks';
import { ObjectMap } from './object-map';
import { listWatchers } from './watch';

export abstract class ImageWriters extends ImageIO {
  /** Become a writer. Exclusive: nobody else may write; shared: other shared writers may. */
  async addWriter(mode: WriterMode): Promise<void> {
    if (this.headFd < 0) throw new StoreError('image is closed', 'io');
    if (mode === 'exclusive') {
      if (this.writers.exclusive > 0 || this.writers.shared > 0) {
        throw new StoreError(`image ${this.pool}/${this.gen.header.name} is already open for writing in this process`, 'busy');
      }
      const lock = FileLock.tryAcquire(this.paths.exclusiveLock, 'exclusive');
      if (!lock) throw new StoreError(await this.busyMessage(), 'busy');
      this.exclusiveLock = lock;
      this.writers.exclusive++;
      try {
        await this.recoverLeftovers();
        // We may have been a reader with stale caches; from now on memory is the truth.
        await this.refreshMaps(this.gen);
        await this.openObjectMap();
        await this.reRegister('write-exclusive');
      } catch (e) {
        await this.removeWriter('exclusive');
        throw e;
      }
      return;
    }
    if (this.writers.exclusive > 0) {
      throw new StoreError(`image ${this.pool}/${this.gen.header.name} is open exclusively in this process`, 'busy');
    }
    if (this.writers.shared === 0) {
      const lock = FileLock.tryAcquire(this.paths.exclusiveLock, 'shared');
      if (!lock) throw new StoreError(await this.busyMessage(), 'busy');
      this.sharedLock = lock;
      await ObjectMap.invalidate(this.paths.omap);
      await this.reRegister('write-shared');
    }
    this.writers.shared++;
  }

  async removeWriter(mode: WriterMode): Promise<void> {
    if (mode === 'exclusive') {
      this.writers.exclusive = Math.max(0, this.writers.exclusive - 1);
      if (this.writers.exclusive === 0) {
        if (this.omapTimer) clearInterval(this.omapTimer);
        this.omapTimer = undefined;
        if (this.omap) await this.omap.close().catch((e) => this.ctx.log.warn({ err: e }, 'object map write-back failed'));
        this.omap = undefined;
        this.exclusiveLock?.release();
        this.exclusiveLock = undefined;
        await this.reRegister('read').catch(() => undefined);
      }
    } else {
      this.writers.shared = Math.max(0, this.writers.shared - 1);
      if (this.writers.shared === 0) {
        this.sharedLock?.release();
        this.sharedLock = undefined;
        await this.reRegister('read').catch(() => undefined);
      }
    }
  }

  /**
   * Clean up what interrupted operations leave behind (files of an uncommitted snapshot, a
   * flattened clone's copy-up map, bytes past the end after an interrupted shrink). Runs when
   * a process becomes the exclusive writer, under the meta lock; nothing here is referenced by
   * the committed header, so removing it cannot change any image's content.
   */
  private async recoverLeftovers(): Promise<void> {
    const meta = await FileLock.acquire(this.paths.metaLock, 'exclusive');
    try {
      const h = await readHeader(this.paths.header);
      const snapIds = new Set(h.snapshots.map((x) => x.id));
      const cleaned: string[] = [];
      for (const f of await fsp.readdir(this.paths.dir)) {
        const m = /^snap-(\d+)\.(data|pmap)$/.exec(f);
        const stale = f.startsWith('.tmp-') || (m !== null && !snapIds.has(Number(m[1]))) || (f === 'head.cmap' && !h.parent);
        if (stale) {
          await fsp.rm(`${this.paths.dir}/${f}`, { force: true, recursive: true });
          cleaned.push(f);
        }
      }
      if (fs.fstatSync(this.headFd).size > h.size) {
        await ftruncate(this.headFd, h.size);
        await fdatasync(this.headFd);
        cleaned.push('bytes past the end of head');
      }
      if (cleaned.length > 0) this.ctx.log.info({ image: `${this.pool}/${h.name}`, cleaned }, 'removed leftovers of interrupted operations');
    } finally {
      meta.release();
    }
  }

  /** Rebuild the object map from the head file (after data was placed behind its back). */
  async rescanObjectMap(): Promise<void> {
    if (this.omap) this.omap.replace(await ObjectMap.scan(this.headFd, this.gen.layout, this.gen.size));
  }

  private async busyMessage(): Promise<string> {
    const ws = await listWatchers(this.paths.dir, new Set(this.token ? [this.token] : []));
    const holders = ws.filter((w) => w.info.mode !== 'read');
    const name = `${this.pool}/${this.gen.header.name}`;
    if (holders.length === 0) return `image ${name} is locked by another writer`;
    const h = holders[0].info;
    const kind = h.mode === 'write-exclusive' ? 'exclusively locked' : 'open for shared writing';
    return `image ${name} is ${kind} by pid ${h.pid} on ${h.host}${h.client ? ` (client ${h.client})` : ''} since ${h.since}`;
  }

  private async reRegister(mode: 'read' | 'write-exclusive' | 'write-shared'): Promise<void> {
    if (!this.agent) return;
    const old = this.registration;
    this.registration = await this.agent.register(this.paths.dir, this, { client: this.ctx.client, mode });
    if (old) this.agent.unregister(this.paths.dir, old, true);
  }

  private async refreshMaps(g: Generation): Promise<void> {
    for (const s of g.snaps) await s.res.value.pmap.refresh();
    if (g.cmap) await g.cmap.value.refresh();
  }

  private async openObjectMap(): Promise<void> {
    const g = this.gen;
    if (!this.authoritative || !g.hasFeature('object-map')) return;
    this.omap = await ObjectMap.openForOwner(this.paths.omap, this.headFd, g.layout, g.size);
    // Lazy write-back keeps a restart after a clean-ish crash cheap; correctness never needs it.
    this.omapTimer = setInterval(() => {
      this.omap?.persist().catch((e) => this.ctx.log.warn({ err: e }, 'object map write-back failed'));
    }, 5000);
    this.omapTimer.unref();
  }

  protected async syncObjectMap(old: Generation, next: Generation): Promise<void> {
    if (!this.authoritative) return;
    const want = next.hasFeature('object-map');
    if (!want && this.omap) {
      if (this.omapTimer) clearInterval(this.omapTimer);
      this.omapTimer = undefined;
      await this.omap.close();
      this.omap = undefined;
      await fsp.rm(this.paths.omap, { force: true });
      return;
    }
    if (want && !this.omap) {
      await this.openObjectMap();
      return;
    }
    if (this.omap && (old.size !== next.size || (old.header.parent !== null) !== (next.header.parent !== null) || old.header.generation !== next.header.generation)) {
      // Sizes or ownership changed under us (resize, flatten elsewhere): rescan.
      this.omap.replace(await ObjectMap.scan(this.headFd, next.layout, next.size));
    }
  }
}
