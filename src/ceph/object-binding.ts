/**
 * The RADOS object functions native/src/ceph/object.cc adds to the Ceph addon (ceph::InitObject,
 * the object hook of native/src/ceph/module.cc), typed: an extension of binding.ts's CephAddon,
 * kept here so that binding.ts stays the data-path binding's file. Errors carry `errno` and
 * `code` as the rest of the addon's.
 */
import { requireCephBinding } from './binding';
import type { NativeIoCtx } from './binding';

export type { NativeIoCtx };
/** A registered watch (external handle owned by object.cc). */
export type NativeWatchHandle = object;

export type NativeWriteOp =
  | { readonly op: 'create'; readonly exclusive: boolean }
  | { readonly op: 'assertExists' }
  | { readonly op: 'assertVersion'; readonly version: bigint }
  | { readonly op: 'cmpxattr'; readonly name: string; readonly comparison: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte'; readonly value: Buffer }
  | { readonly op: 'writeFull'; readonly data: Buffer }
  | { readonly op: 'setxattr'; readonly name: string; readonly value: Buffer }
  | { readonly op: 'rmxattr'; readonly name: string }
  | { readonly op: 'omapSet'; readonly keys: readonly string[]; readonly values: readonly Buffer[] }
  | { readonly op: 'omapRemove'; readonly keys: readonly string[] }
  | { readonly op: 'exec'; readonly cls: string; readonly method: string; readonly input: Buffer }
  | { readonly op: 'remove' };

export type NativeWatchCallback = (
  kind: 'notify' | 'error', payload: Buffer | undefined, notifierId: bigint | undefined, err: number | undefined, notifyId: bigint | undefined,
) => void;

/** One watcher's ack of a notify (its reply payload, empty unless the watcher acks manually). */
export interface NativeNotifyReply {
  readonly notifierId: bigint;
  readonly cookie: bigint;
  readonly payload: Buffer;
}

/** Rejections carry `errno` (negative, as librados returns it). */
export interface ObjectBinding {
  /** null: no such object. `sizeHint`: first read length (re-read when the object is larger). */
  objRead(io: NativeIoCtx, oid: string, sizeHint: number): Promise<{ data: Buffer; size: number; xattrs: Record<string, Buffer>; version: bigint } | null>;
  objStat(io: NativeIoCtx, oid: string): Promise<{ size: number; mtime: number } | null>;
  /** null: no such object or xattr. */
  objGetXattr(io: NativeIoCtx, oid: string, name: string): Promise<Buffer | null>;
  objOmapGet(io: NativeIoCtx, oid: string, startAfter: string, max: number): Promise<{ entries: Array<[string, Buffer]>; more: boolean }>;
  objOperate(io: NativeIoCtx, oid: string, ops: readonly NativeWriteOp[]): Promise<void>;
  objLockExclusive(io: NativeIoCtx, oid: string, name: string, cookie: string, description: string, durationMs: number, flags: number): Promise<void>;
  objUnlock(io: NativeIoCtx, oid: string, name: string, cookie: string): Promise<void>;
  objListLockers(io: NativeIoCtx, oid: string, name: string): Promise<{ exclusive: boolean; tag: string; lockers: Array<{ client: string; cookie: string; address: string }> }>;
  objBreakLock(io: NativeIoCtx, oid: string, name: string, client: string, cookie: string): Promise<void>;
  /** `manualAck`: notifies are not acked until objNotifyAck (with a reply). */
  objWatch(io: NativeIoCtx, oid: string, callback: NativeWatchCallback, manualAck?: boolean): Promise<NativeWatchHandle>;
  /** 0 or a negative errno. */
  objNotifyAck(watch: NativeWatchHandle, notifyId: bigint, reply?: Buffer): number;
  objUnwatch(watch: NativeWatchHandle): Promise<void>;
  /** ms since last confirmed, or a negative errno when broken. */
  objWatchCheck(watch: NativeWatchHandle): number;
  objNotify(io: NativeIoCtx, oid: string, payload: Buffer, timeoutMs: number): Promise<{
    acks: number; timeouts: number;
    replies: NativeNotifyReply[];
    timedOut: Array<{ notifierId: bigint; cookie: bigint }>;
  }>;
}

/** The object functions of the loaded addon (throws binding.ts's error when Ceph is absent). */
export function objectBinding(): ObjectBinding {
  return requireCephBinding() as unknown as ObjectBinding;
}
