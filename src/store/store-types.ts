/**
 * The embedded image store's option and result types (re-exported by store.ts and index.ts),
 * and the small pieces its operation layers share.
 */
import { Logger } from '../util/log';
import { ImagePaths, PoolPaths } from './disk';
import { FeatureName } from './features';
import { AdvisoryLock, SnapshotMeta, WatcherInfo } from './header';

export type Progress = (done: number, total: number) => void;

export interface ImageStoreOptions {
  /** Who we are in watcher records and lock listings (e.g. the gateway name). */
  readonly client?: string;
  readonly logger?: Logger;
}

export interface CreateImageOptions {
  /** Bytes. */
  readonly size: number;
  readonly order?: number;
  readonly objectSize?: number;
  readonly features?: readonly FeatureName[];
  readonly stripeUnit?: number;
  readonly stripeCount?: number;
  /** Create the pool when it does not exist (the CLI does, so rbd's seed commands just work). */
  readonly createPool?: boolean;
}

export interface OpenImageOptions {
  /** Open this snapshot (read-only). Also accepted as "pool/image@snap" in the spec. */
  readonly snapshot?: string;
  readonly readOnly?: boolean;
  /**
   * Writers take the image's exclusive lock (default), so no other process can write it.
   * false: shared writer (several gateways serving one LUN on purpose).
   */
  readonly exclusive?: boolean;
}

export interface SnapshotInfo {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly protected: boolean;
  readonly createTime: string;
  readonly children: number;
}

export interface ParentInfo {
  readonly pool: string;
  readonly image: string;
  readonly imageId: string;
  readonly snapshot: string;
  readonly snapshotId: number;
  readonly overlap: number;
}

export interface ImageInfo {
  readonly pool: string;
  readonly name: string;
  readonly id: string;
  readonly size: number;
  readonly order: number;
  readonly objectSize: number;
  readonly objectCount: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  readonly features: FeatureName[];
  readonly flags: string[];
  readonly createTime: string;
  readonly modifyTime: string;
  readonly snapshotCount: number;
  readonly snapshotLimit: number | null;
  readonly parent: ParentInfo | null;
  /** Set when the info is about a snapshot. */
  readonly snapshot?: SnapshotInfo;
  /** Interrupted operations a user should finish. */
  readonly warnings: string[];
}

export interface LockInfo {
  /** The managed exclusive lock (RBD's "auto" lock) held by a writer, if any. */
  readonly owner: (WatcherInfo & { token: string }) | undefined;
  readonly shared: Array<WatcherInfo & { token: string }>;
  readonly advisory: AdvisoryLock[];
}

export interface DiskUsage {
  readonly name: string;
  readonly snapshot?: string;
  readonly snapshotId?: number;
  readonly provisioned: number;
  readonly used: number;
}

export interface Resolved {
  readonly pool: string;
  readonly name: string;
  readonly id: string;
  readonly pp: PoolPaths;
  readonly paths: ImagePaths;
}

export const now = (): string => new Date().toISOString();

export function snapInfo(sm: SnapshotMeta): SnapshotInfo {
  return { id: sm.id, name: sm.name, size: sm.size, protected: sm.protected, createTime: sm.createTime, children: sm.children.length };
}
