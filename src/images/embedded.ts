/**
 * ImageProvider over the embedded image store (src/store): images are files in the data dir,
 * shared by the gateway daemons of one host. Pools are created on first use, as an
 * administrator who types `disk create rbd/x` expects on a fresh data dir. Store errors become
 * ImageErrors of the same kind.
 */
import type { BlockDevice } from '../block/block-device';
import { FEATURE_NAMES, ImageStore, StoreError, featureMask } from '../store';
import type { FeatureName, ImageInfo, SnapshotInfo } from '../store';
import {
  CreateOptions, ImageDetails, ImageError, ImageErrorKind, ImageProvider, LockState, OpenOptions, SnapshotDetails,
} from './provider';

const KINDS: ReadonlySet<string> = new Set<ImageErrorKind>([
  'not-found', 'exists', 'invalid-name', 'invalid-argument', 'busy', 'protected', 'not-protected', 'has-children',
  'has-snapshots', 'shrink-not-allowed', 'read-only', 'limit', 'unsupported', 'io',
]);

function wrap(e: unknown): never {
  if (e instanceof StoreError) {
    const kind = (KINDS.has(e.kind) ? e.kind : e.kind === 'not-empty' ? 'busy' : 'io') as ImageErrorKind;
    throw new ImageError(e.message, kind);
  }
  throw e;
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    return wrap(e);
  }
}

function details(i: ImageInfo): ImageDetails {
  return {
    pool: i.pool,
    image: i.name,
    id: i.id,
    size: i.size,
    objectSize: i.objectSize,
    features: [...i.features],
    featureMask: featureMask(i.features),
    stripeUnit: i.stripeUnit,
    stripeCount: i.stripeCount,
    snapshotCount: i.snapshotCount,
    parent: i.parent ? { pool: i.parent.pool, image: i.parent.image, snapshot: i.parent.snapshot, overlap: i.parent.overlap } : null,
    createTime: i.createTime,
  };
}

function snap(s: SnapshotInfo): SnapshotDetails {
  return { id: s.id, name: s.name, size: s.size, protected: s.protected, children: s.children, createTime: s.createTime };
}

function featureNames(list: readonly string[] | undefined): FeatureName[] | undefined {
  if (!list) return undefined;
  for (const f of list) {
    if (!(FEATURE_NAMES as readonly string[]).includes(f)) throw new ImageError(`unknown image feature '${f}' (known: ${FEATURE_NAMES.join(', ')})`, 'invalid-argument');
  }
  return list as FeatureName[];
}

export class EmbeddedImageProvider implements ImageProvider {
  readonly kind = 'embedded';
  private readonly watchers = new Set<() => void>();

  constructor(readonly store: ImageStore) {}

  /** Open the store under `root` (normally storeRoot(dataDir)). */
  static async open(root: string, client?: string): Promise<EmbeddedImageProvider> {
    return new EmbeddedImageProvider(await guard(() => ImageStore.open(root, client ? { client } : {})));
  }

  listPools(): Promise<string[]> {
    return guard(() => this.store.listPools());
  }

  list(pool: string): Promise<string[]> {
    return guard(async () => ((await this.store.poolExists(pool)) ? this.store.listImages(pool) : []));
  }

  async exists(pool: string, image: string): Promise<boolean> {
    try {
      await this.store.imageInfo({ pool, image });
      return true;
    } catch (e) {
      if (e instanceof StoreError && e.kind === 'not-found') return false;
      return wrap(e);
    }
  }

  info(pool: string, image: string): Promise<ImageDetails> {
    return guard(async () => details(await this.store.imageInfo({ pool, image })));
  }

  create(pool: string, image: string, size: number, options: CreateOptions = {}): Promise<ImageDetails> {
    return guard(async () => {
      const features = featureNames(options.features);
      const info = await this.store.createImage({ pool, image }, { size, createPool: true, ...(features ? { features } : {}), ...(options.objectSize ? { objectSize: options.objectSize } : {}) });
      return details(info);
    });
  }

  resize(pool: string, image: string, size: number): Promise<void> {
    return guard(() => this.store.resizeImage({ pool, image }, size));
  }

  remove(pool: string, image: string): Promise<void> {
    return guard(() => this.store.removeImage({ pool, image }));
  }

  listSnapshots(pool: string, image: string): Promise<SnapshotDetails[]> {
    return guard(async () => (await this.store.listSnapshots({ pool, image })).map(snap));
  }

  createSnapshot(pool: string, image: string, snapshot: string): Promise<SnapshotDetails> {
    return guard(async () => snap(await this.store.createSnapshot({ pool, image, snapshot })));
  }

  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return guard(() => this.store.removeSnapshot({ pool, image, snapshot }));
  }

  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return guard(() => this.store.rollbackSnapshot({ pool, image, snapshot }));
  }

  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return guard(() => this.store.protectSnapshot({ pool, image, snapshot }));
  }

  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return guard(() => this.store.unprotectSnapshot({ pool, image, snapshot }));
  }

  clone(pool: string, image: string, snapshot: string, childPool: string, childImage: string): Promise<ImageDetails> {
    return guard(async () => details(await this.store.cloneImage({ pool, image, snapshot }, { pool: childPool, image: childImage }, { createPool: true })));
  }

  flatten(pool: string, image: string): Promise<void> {
    return guard(() => this.store.flattenImage({ pool, image }));
  }

  open(pool: string, image: string, options: OpenOptions = {}): Promise<BlockDevice> {
    return guard(() => this.store.openImage({ pool, image }, {
      ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}),
      ...(options.readOnly ? { readOnly: true } : {}),
    }));
  }

  lockState(pool: string, image: string): Promise<LockState> {
    return guard(async () => {
      const l = await this.store.listLocks({ pool, image });
      const who = (w: { client: string; pid: number; host: string }) => `${w.client} pid ${w.pid} on ${w.host}`;
      return { owner: l.owner ? who(l.owner) : undefined, watchers: l.shared.map(who) };
    });
  }

  watch(pool: string, image: string, listener: (info: ImageDetails) => void, intervalMs = 1000): () => void {
    let last = '';
    let busy = false;
    const poll = async () => {
      if (busy) return;
      busy = true;
      try {
        const info = await this.info(pool, image);
        const snaps = await this.listSnapshots(pool, image);
        const lock = await this.lockState(pool, image);
        const key = JSON.stringify([info.size, info.features, info.parent, snaps.map((s) => [s.id, s.protected]), lock.owner]);
        if (key !== last) {
          const first = last === '';
          last = key;
          if (!first) listener(info);
        }
      } catch {
        // a removed image stops changing; the caller unsubscribes when it learns of the removal
      } finally {
        busy = false;
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), intervalMs);
    timer.unref();
    const stop = () => {
      clearInterval(timer);
      this.watchers.delete(stop);
    };
    this.watchers.add(stop);
    return stop;
  }

  usage(pool: string, image: string): Promise<number> {
    // The head file's allocated blocks (rbd du of the store): exact, and independent of the
    // object map, which only the exclusive-lock owner keeps current.
    return guard(async () => {
      const head = (await this.store.diskUsage({ pool, image })).find((u) => u.snapshot === undefined);
      return head?.used ?? 0;
    });
  }

  async close(): Promise<void> {
    for (const stop of [...this.watchers]) stop();
    await this.store.close();
  }
}
