/**
 * The immutable per-reload view of one open image (a Generation) and the reference-counted
 * files it shares with the generations before and after it. I/O pins the generation it started
 * with, so files a reload retires are closed only when no I/O uses them any more.
 */
import { ByteMap } from './bytemap';
import { ImagePaths } from './disk';
import { FeatureName } from './features';
import { ImageHeader, SnapshotMeta } from './header';
import type { ImageState } from './image';
import { Layout } from './layout';
import { Logger } from '../util/log';

export interface StoreContext {
  readonly root: string;
  readonly client: string;
  readonly log: Logger;
  imagePaths(pool: string, id: string): ImagePaths;
}

/** A reference-counted resource shared by generations. */
export class Res<T> {
  private refs = 1;
  constructor(
    readonly value: T,
    private readonly dispose: () => Promise<void>,
  ) {}
  retain(): this {
    this.refs++;
    return this;
  }
  async release(): Promise<void> {
    if (--this.refs === 0) await this.dispose();
  }
}

export interface SnapFiles {
  readonly dataFd: number;
  readonly pmap: ByteMap;
}

export interface SnapEntry {
  readonly meta: SnapshotMeta;
  readonly count: number;
  readonly res: Res<SnapFiles>;
}

export interface ParentLink {
  readonly res: Res<ImageState>;
  readonly snapId: number;
  readonly overlap: number;
}

export class Generation {
  pins = 0;
  retired = false;
  readonly count: number;
  /** Newest active snapshot: where the head's copy-on-write goes. */
  readonly cowTarget: SnapEntry | undefined;
  /** Snapshots newer than cowTarget that are being removed (still hold preserved data). */
  readonly cowAlso: SnapEntry[];
  readonly snapById: Map<number, SnapEntry>;

  constructor(
    readonly header: ImageHeader,
    readonly layout: Layout,
    readonly snaps: SnapEntry[],
    readonly parent: ParentLink | null,
    readonly cmap: Res<ByteMap> | null,
  ) {
    this.count = layout.objectCount(header.size);
    this.snapById = new Map(snaps.map((s) => [s.meta.id, s]));
    let target = -1;
    for (let i = snaps.length - 1; i >= 0; i--) {
      if (snaps[i].meta.state === 'active') {
        target = i;
        break;
      }
    }
    this.cowTarget = target >= 0 ? snaps[target] : undefined;
    this.cowAlso = snaps.slice(target + 1);
  }

  get size(): number {
    return this.header.size;
  }

  hasFeature(f: FeatureName): boolean {
    return this.header.features.includes(f);
  }

  async dispose(): Promise<void> {
    for (const s of this.snaps) await s.res.release();
    if (this.parent) await this.parent.res.release();
    if (this.cmap) await this.cmap.release();
  }
}

/** A data source for one piece of an image view. */
export type Src = { k: 'file'; fd: number } | { k: 'parent'; overlap: number } | { k: 'zero' };

/** A resolved byte range: from a file at the same offset, or zeros (fd -1). */
export interface Segment {
  readonly fd: number;
  readonly off: number;
  readonly len: number;
}

export interface Check {
  readonly auth: boolean;
  readonly maps: ByteMap[];
  readonly first: number;
  readonly last: number;
  readonly copies: Buffer[];
}

export type ModifyOp = { kind: 'data'; off: number; len: number; data: Buffer } | { kind: 'punch' | 'zero'; off: number; len: number };

export type WriterMode = 'exclusive' | 'shared';
