/**
 * The optional librados/librbd addon (native/src/ceph, built only where librbd-dev and
 * librados-dev are installed) and the complete TypeScript shape of what it exports. Code outside
 * src/ceph uses the wrappers (cluster.ts, rbd-image.ts, rbd-admin.ts), not these raw calls.
 *
 * Conventions of the raw interface:
 *   - Every call that talks to the cluster returns a Promise (libuv pool or librbd aio); the
 *     synchronous ones only read local state.
 *   - Failures are Errors with `errno` (positive), `code` ('ENOENT', ...) and `syscall` (the
 *     librados/librbd call); cluster.ts turns them into CephError.
 *   - Offsets and sizes are byte counts as JS numbers (< 2^53).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Set to any non-empty value to make the loader report the addon unavailable (tests, or to force the embedded store). */
export const DISABLE_ENV = 'ISCSI_GATEWAY_NO_CEPH';

export interface NativeVersions {
  readonly rados: string;
  readonly rbd: string;
}

export interface MonCommandResult {
  /** The mon's status text (outs), e.g. "pool 'x' created". */
  readonly status: string;
  /** The command's output (outbuf): JSON when the command asked for format=json. */
  readonly output: Buffer;
}

/** One rados_t. */
export interface NativeCluster {
  /**
   * rados_conf_set. Before connect() the pair also overrides the conf file (it is re-applied
   * after the file is read): this is how rados_osd_op_timeout / rados_mon_op_timeout /
   * client_mount_timeout are set.
   */
  confSet(key: string, value: string): void;
  confGet(key: string): string;
  /** Read the conf file (null: CEPH_CONF or the default search path), CEPH_ARGS, the overrides, then connect. */
  connect(confFile: string | null): Promise<void>;
  isConnected(): boolean;
  /** EBUSY while pool contexts, images or operations still use the cluster. */
  shutdown(): Promise<void>;
  /** rados_mon_command with one JSON command. Rejects with `status` (the mon's text) on the error too. */
  monCommand(command: string, input?: Buffer | null): Promise<MonCommandResult>;
  /** rados_blocklist_add("ip:port/nonce", seconds; 0 = the cluster default, 1 h). */
  blocklistAdd(address: string, expireSeconds?: number): Promise<void>;
  /** rados_get_instance_id: this client's global id (client.<id> in lock owners and watchers). */
  instanceId(): number;
  /** rados_getaddrs: this client's address(es), e.g. "v2:127.0.0.1:0/1234": what blocklistAdd takes. */
  addrs(): string;
  fsid(): string;
  poolList(): Promise<string[]>;
  openIoCtx(pool: string): Promise<NativeIoCtx>;
}

/** One rados_ioctx_t (pool + namespace). */
export interface NativeIoCtx {
  /** Drops this handle; operations and images opened through it keep their own reference. */
  close(): void;
  setNamespace(namespace: string): void;
  getNamespace(): string;
  poolName(): string;
  poolId(): number;
}

/** rbd_image_info_t plus the per-image getters that read local state. */
export interface NativeImageInfo {
  readonly size: number;
  readonly objectSize: number;
  readonly order: number;
  readonly numObjects: number;
  readonly blockNamePrefix: string;
  readonly id: string;
  readonly features: number;
  readonly opFeatures: number;
  readonly flags: number;
  readonly stripeUnit: number;
  readonly stripeCount: number;
  /** Data pool id (-1: the image's own pool). */
  readonly dataPoolId: number;
  /** Seconds since the epoch. */
  readonly createTimestamp: number;
  readonly parent: NativeParentInfo | null;
}

export interface NativeParentInfo {
  readonly pool: string;
  readonly namespace: string;
  readonly image: string;
  readonly imageId: string;
  readonly snapshot: string;
  readonly snapshotId: number;
  readonly overlap: number;
}

export interface NativeSnapInfo {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  /** Seconds since the epoch. */
  readonly timestamp: number;
  readonly protected: boolean;
}

export interface NativeChildInfo {
  readonly pool: string;
  readonly namespace: string;
  readonly imageId: string;
  readonly image: string;
  readonly trash: boolean;
}

export interface NativeLockOwners {
  /** 'exclusive' or 'shared'; owners is empty when nobody holds the lock. */
  readonly mode: 'exclusive' | 'shared';
  /** Lock owner strings as librbd reports them (pass one to lockBreak). */
  readonly owners: string[];
}

export interface NativeWatcher {
  readonly address: string;
  readonly id: number;
  readonly cookie: number;
}

/**
 * One open rbd_image_t. All data calls are rbd_aio_*: submitted on the JS thread, completed
 * through the image's one thread-safe function; Buffers stay pinned until their completion and
 * are never copied by the binding.
 */
export interface NativeImage {
  readonly name: string;
  readonly readOnly: boolean;
  /** Operations submitted and not yet completed. */
  inFlight(): number;

  /** Read into `into` (>= length bytes); resolves with the byte count (short only at the end of the image). */
  read(offset: number, length: number, into: Buffer): Promise<number>;
  /** rbd_aio_write2; `fua` adds LIBRADOS_OP_FLAG_FADVISE_FUA. */
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /** rbd_aio_writesame: `pattern` repeated over [offset, offset+length); length a multiple of pattern.length. */
  writeSame(offset: number, length: number, pattern: Buffer, fua: boolean): Promise<void>;
  /** rbd_aio_discard: the range reads as zeros afterwards. */
  discard(offset: number, length: number): Promise<void>;
  /** rbd_aio_write_zeroes; `thick` keeps the range allocated (RBD_WRITE_ZEROES_FLAG_THICK_PROVISION). */
  writeZeroes(offset: number, length: number, thick: boolean): Promise<void>;
  /**
   * rbd_aio_compare_and_write (COMPARE AND WRITE): resolves with -1 when `compare` matched and
   * `data` was written, else with the byte offset of the first mismatch relative to `offset`
   * (nothing written).
   */
  compareAndWrite(offset: number, compare: Buffer, data: Buffer, fua: boolean): Promise<number>;
  flush(): Promise<void>;
  /** rbd_aio_close; in-flight operations complete first. Further calls reject with EBADF. */
  close(): Promise<void>;

  /** Size as librbd last saw it (local, no I/O). */
  size(): number;
  info(): Promise<NativeImageInfo>;
  resize(size: number, allowShrink: boolean): Promise<void>;
  updateFeatures(mask: number, enabled: boolean): Promise<void>;

  /** Allocated extents [offset, length, exists(1/0), ...] since `fromSnapshot` (null: all data). */
  diffIterate(fromSnapshot: string | null, offset: number, length: number, includeParent: boolean, wholeObject: boolean): Promise<number[]>;

  snapCreate(name: string): Promise<void>;
  snapRemove(name: string): Promise<void>;
  snapRollback(name: string): Promise<void>;
  snapProtect(name: string): Promise<void>;
  snapUnprotect(name: string): Promise<void>;
  snapIsProtected(name: string): Promise<boolean>;
  snapList(): Promise<NativeSnapInfo[]>;
  flatten(): Promise<void>;
  /** Children of the snapshot this image was opened at (open it with a snapshot). */
  listChildren(): Promise<NativeChildInfo[]>;

  metadataGet(key: string): Promise<string>;
  metadataSet(key: string, value: string): Promise<void>;
  metadataRemove(key: string): Promise<void>;
  metadataList(): Promise<Record<string, string>>;

  /** rbd_lock_acquire(RBD_LOCK_MODE_EXCLUSIVE): this handle keeps the lock until release (no hand-over). */
  lockAcquire(): Promise<void>;
  lockRelease(): Promise<void>;
  lockGetOwners(): Promise<NativeLockOwners>;
  lockBreak(owner: string): Promise<void>;
  isLockOwner(): Promise<boolean>;
  watchers(): Promise<NativeWatcher[]>;

  /**
   * rbd_update_watch: `listener` runs on the JS thread after any header change (resize,
   * snapshot, features, lock) made by any client. Resolves with a handle for updateUnwatch.
   * An update watch does not keep the process alive.
   */
  updateWatch(listener: () => void): Promise<number>;
  updateUnwatch(handle: number): Promise<void>;
}

export interface NativeOpenOptions {
  readonly snapshot?: string | null;
  readonly readOnly?: boolean;
}

export interface NativeCreateOptions {
  /** RBD feature bits (rbd/features.h); absent: the cluster's rbd_default_features. */
  readonly features?: number;
  /** log2 of the object size (12..26); absent: 22 (4 MiB). */
  readonly order?: number;
  readonly stripeUnit?: number;
  readonly stripeCount?: number;
  readonly dataPool?: string;
}

export interface NativeImageSpec {
  readonly id: string;
  readonly name: string;
}

/** What the addon exports. */
export interface CephAddon {
  versions(): NativeVersions;
  Cluster: new (clusterName?: string, clientName?: string) => NativeCluster;

  /** rbd_aio_open / rbd_aio_open_read_only (snapshot opens are read-only). */
  rbdOpen(ioctx: NativeIoCtx, name: string, options: NativeOpenOptions): Promise<NativeImage>;
  rbdCreate(ioctx: NativeIoCtx, name: string, size: number, options: NativeCreateOptions): Promise<void>;
  rbdRemove(ioctx: NativeIoCtx, name: string): Promise<void>;
  rbdList(ioctx: NativeIoCtx): Promise<NativeImageSpec[]>;
  rbdRename(ioctx: NativeIoCtx, from: string, to: string): Promise<void>;
  /** rbd_clone3 (clone v2 when the cluster's min compat client is >= mimic). */
  rbdClone(
    parentIoctx: NativeIoCtx,
    parent: string,
    snapshot: string,
    childIoctx: NativeIoCtx,
    child: string,
    options: NativeCreateOptions,
  ): Promise<void>;
  /** rbd_features_from_string / rbd_features_to_string. */
  featuresFromString(names: string): number;
  featuresToString(mask: number): string;
}

export type CephBinding = { readonly available: true; readonly addon: CephAddon } | { readonly available: false; readonly reason: string };

const ADDON_FILE = path.join('native', 'build', 'Release', 'iscsi_gateway_ceph.node');
let cached: CephBinding | undefined;

/**
 * The addon, or why it is unavailable (not built because librbd-dev/librados-dev were missing,
 * librados/librbd shared libraries missing at run time, or disabled by ISCSI_GATEWAY_NO_CEPH).
 * Never throws.
 */
export function loadCephBinding(): CephBinding {
  if (process.env[DISABLE_ENV]) return { available: false, reason: `the Ceph backend is disabled (${DISABLE_ENV} is set)` };
  if (cached) return cached;
  cached = locateAndLoad();
  return cached;
}

function locateAndLoad(): CephBinding {
  // The addon sits in the package root; this file runs from dist/src/ceph or src/ceph.
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, ADDON_FILE);
    if (fs.existsSync(candidate)) {
      try {
        const mod = { exports: {} as unknown };
        process.dlopen(mod, candidate);
        const addon = mod.exports as Partial<CephAddon>;
        if (typeof addon.Cluster !== 'function') {
          return { available: false, reason: `${candidate} was built without Ceph support (install librbd-dev and librados-dev, then \`npm run build:native\`)` };
        }
        return { available: true, addon: addon as CephAddon };
      } catch (e) {
        return { available: false, reason: `cannot load ${candidate}: ${(e as Error).message}` };
      }
    }
    dir = path.dirname(dir);
  }
  return {
    available: false,
    reason: `the Ceph addon ${ADDON_FILE} is not built (install librbd-dev and librados-dev, then \`npm run build:native\`)`,
  };
}

/** The addon or a thrown Error carrying the reason (for callers that need Ceph). */
export function requireCephBinding(): CephAddon {
  const b = loadCephBinding();
  if (!b.available) throw new Error(b.reason);
  return b.addon;
}
