/**
 * StoreBase: where things are in the embedded store (pools, name links, image directories),
 * name validation, and the protocol every metadata change of an image follows (imageOp).
 * The operations are layered on top: store-images.ts, store-snapshots.ts, store.ts.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Logger } from '../util/log';
import { ImagePaths, PoolPaths } from './disk';
import { isErrno, StoreError } from './errors';
import { exists } from './fsutil';
import { fsyncDir, writeFileAtomic } from '../sys/durable';
import { ImageHeader, PoolFile, readHeader, SnapshotMeta, writeHeader } from './header';
import { ImageState, StoreContext } from './image';
import { withFileLock } from './locks';
import { formatSpec, ImageSpec, parseImageSpec, SnapshotPresence, validateImageName, validatePoolName, validateSnapName } from './names';
import { Notifier } from './watch';
import { now, Resolved } from './store-types';

export abstract class StoreBase {
  protected readonly ctx: StoreContext;

  protected constructor(
    readonly root: string,
    readonly client: string,
    readonly log: Logger,
  ) {
    this.ctx = {
      root,
      client,
      log,
      imagePaths: (pool, id) => new PoolPaths(root, pool).image(id),
    };
  }

  // ------------------------------------------------------------------ names and lookups

  protected pool(name: string): PoolPaths {
    return new PoolPaths(this.root, name);
  }

  protected async requirePool(name: string): Promise<PoolPaths> {
    validatePoolName(name);
    const pp = this.pool(name);
    if (!(await exists(pp.poolFile))) throw new StoreError(`pool '${name}' does not exist`, 'not-found');
    return pp;
  }

  protected async resolve(pool: string, name: string): Promise<Resolved> {
    const pp = await this.requirePool(pool);
    validateImageName(name);
    let id: string;
    try {
      id = await fsp.readlink(pp.nameLink(name));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new StoreError(`image '${pool}/${name}' does not exist`, 'not-found');
      if (isErrno(e, 'EINVAL')) throw new StoreError(`${pp.nameLink(name)} is not a name link`, 'corrupt');
      throw e;
    }
    return { pool, name, id, pp, paths: pp.image(id) };
  }

  protected async resolveId(pool: string, id: string): Promise<{ paths: ImagePaths; header: ImageHeader }> {
    const paths = this.pool(pool).image(id);
    return { paths, header: await readHeader(paths.header) };
  }

  protected toSpec(spec: string | ImageSpec, presence: SnapshotPresence): ImageSpec {
    if (typeof spec === 'string') return parseImageSpec(spec, { snapshot: presence });
    validatePoolName(spec.pool);
    validateImageName(spec.image);
    if (spec.snapshot !== undefined) {
      if (presence === 'none') throw new StoreError(`snapshot name specified for a command that doesn't use it ('${formatSpec(spec)}')`, 'invalid-argument');
      validateSnapName(spec.snapshot);
    } else if (presence === 'required') throw new StoreError(`snapshot name was not specified ('${formatSpec(spec)}' needs @snapshot)`, 'invalid-argument');
    return spec;
  }

  protected findSnap(h: ImageHeader, name: string, img: { pool: string; name: string }): SnapshotMeta {
    const s = h.snapshots.find((x) => x.name === name && x.state === 'active');
    if (!s) throw new StoreError(`snapshot '${name}' of image '${img.pool}/${img.name}' does not exist`, 'not-found');
    return s;
  }

  // ------------------------------------------------------------------ metadata operations

  /**
   * Run a metadata change of one image: meta lock held; `quiesce` holds writes in every
   * process first; after fn commits, every process reloads the header before writes resume.
   */
  protected async imageOp<T>(
    img: Resolved | { pool: string; name: string; paths: ImagePaths },
    opts: { quiesce?: boolean },
    fn: (h: ImageHeader, commit: (next: ImageHeader) => Promise<void>) => Promise<T>,
  ): Promise<T> {
    return withFileLock(
      img.paths.metaLock,
      async () => {
        let header = await readHeader(img.paths.header);
        const dir = img.paths.dir;
        const localBefore = ImageState.lookup(dir);
        const except = (): Set<string> => {
          const s = ImageState.lookup(dir);
          return new Set(s?.token ? [s.token] : []);
        };
        let notifier: Notifier | undefined;
        let localQuiesced: ImageState | undefined;
        let remoteQuiesced = false;
        let committed = false;
        try {
          if (opts.quiesce) {
            notifier = await Notifier.connect(dir, except());
            if (localBefore) {
              await localBefore.quiesce();
              localQuiesced = localBefore;
            }
            remoteQuiesced = true;
            await notifier.request('quiesce');
          }
          const commit = async (next: ImageHeader): Promise<void> => {
            const h: ImageHeader = { ...next, generation: header.generation + 1, modifyTime: now() };
            await writeHeader(img.paths.header, h);
            header = h;
            committed = true;
          };
          const result = await fn(header, commit);
          if (committed) {
            const local = ImageState.lookup(dir);
            if (local) await local.reload().catch((e) => this.log.error({ err: e }, 'local reload failed'));
            notifier ??= await Notifier.connect(dir, except());
            await notifier.request('reload').catch((e) => this.log.warn({ err: e }, 'a watcher did not reload; it will before it writes again'));
          }
          return result;
        } finally {
          localQuiesced?.resume();
          if (remoteQuiesced && notifier) await notifier.request('unquiesce').catch((e) => this.log.warn({ err: e }, 'unquiesce failed'));
          notifier?.close();
        }
      },
      { busyMessage: () => `image '${img.pool}/${img.name}': another operation holds its metadata lock` },
    );
  }

  // ------------------------------------------------------------------ pools

  async createPool(name: string): Promise<void> {
    validatePoolName(name);
    const pp = this.pool(name);
    if (await exists(pp.dir)) throw new StoreError(`pool '${name}' already exists`, 'exists');
    const poolsDir = path.dirname(pp.dir);
    const tmp = path.join(poolsDir, `.tmp-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(tmp);
    try {
      const pf: PoolFile = { magic: 'iscsi-gateway-pool', format: 1, name, id: randomBytes(6).toString('hex'), createTime: now() };
      await writeFileAtomic(path.join(tmp, 'pool.json'), JSON.stringify(pf, null, 1) + '\n');
      for (const d of ['names', 'images', 'trash']) await fsp.mkdir(path.join(tmp, d));
      await fsyncDir(tmp);
      try {
        await fsp.rename(tmp, pp.dir);
      } catch (e) {
        if (isErrno(e, 'EEXIST') || isErrno(e, 'ENOTEMPTY')) throw new StoreError(`pool '${name}' already exists`, 'exists');
        throw e;
      }
      await fsyncDir(poolsDir);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  async listPools(): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.root, 'pools'));
    const out: string[] = [];
    for (const n of names) if (!n.startsWith('.') && (await exists(this.pool(n).poolFile))) out.push(n);
    return out.sort();
  }

  async poolExists(name: string): Promise<boolean> {
    validatePoolName(name);
    return exists(this.pool(name).poolFile);
  }

  async removePool(name: string): Promise<void> {
    const pp = await this.requirePool(name);
    await withFileLock(pp.lockFile, async () => {
      const images = await this.listImages(name);
      if (images.length > 0) throw new StoreError(`pool '${name}' is not empty (${images.length} image(s): ${images.slice(0, 5).join(', ')}${images.length > 5 ? ', ...' : ''})`, 'not-empty');
      const dirs = (await fsp.readdir(pp.imagesDir)).filter((d) => !d.startsWith('.'));
      if (dirs.length > 0) throw new StoreError(`pool '${name}' still holds ${dirs.length} image director(ies) without a name; run 'check' on it`, 'not-empty');
      const trash = path.join(this.root, 'pools', `.trash-${randomBytes(6).toString('hex')}`);
      await fsp.rename(pp.dir, trash);
      await fsyncDir(path.dirname(pp.dir));
      await fsp.rm(trash, { recursive: true, force: true });
    });
  }

  protected async ensurePool(name: string, create: boolean): Promise<PoolPaths> {
    validatePoolName(name);
    if (create && !(await exists(this.pool(name).poolFile))) {
      try {
        await this.createPool(name);
      } catch (e) {
        if (!(e instanceof StoreError && e.kind === 'exists')) throw e;
      }
    }
    return this.requirePool(name);
  }

  async listImages(pool: string): Promise<string[]> {
    const pp = await this.requirePool(pool);
    const names = await fsp.readdir(pp.namesDir);
    return names.filter((n) => !n.startsWith('.')).sort();
  }
}
