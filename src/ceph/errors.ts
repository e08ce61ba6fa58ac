/**
 * CephError: a librados/librbd failure with its errno, so callers branch on `code` (ENOENT,
 * EEXIST, EBUSY, ETIMEDOUT, ...) instead of parsing messages.
 */
import { constants } from 'node:os';

/** The errno names callers of the binding branch on; any other errno keeps its own name. */
export type CephErrorCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'EBUSY'
  | 'ETIMEDOUT'
  | 'EINVAL'
  | 'EPERM'
  | 'EACCES'
  | 'EROFS'
  | 'ENOSPC'
  | 'EDQUOT'
  | 'EIO'
  | 'EBLOCKLISTED'
  | 'ESHUTDOWN'
  | 'ENOTCONN'
  | 'EBADF'
  | 'EILSEQ'
  | 'ENOTEMPTY'
  | 'EOPNOTSUPP'
  | 'ENOSYS'
  | 'ERANGE'
  | 'ECANCELED'
  | 'EAGAIN'
  | 'ENOTSUP'
  | (string & {});

export class CephError extends Error {
  constructor(
    message: string,
    /** Positive errno (ENOENT = 2). */
    readonly errno: number,
    readonly code: CephErrorCode,
    /** The librados/librbd call that failed. */
    readonly op: string,
    /** For mon commands: the mon's status text. */
    readonly status?: string,
  ) {
    super(message);
    this.name = 'CephError';
  }
}

/** EBLOCKLISTED is Ceph's own errno (108, Linux's ESHUTDOWN). */
export const EBLOCKLISTED = 108;

const byNumber = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!byNumber.has(n)) byNumber.set(n, name);

export function errnoName(errno: number): string {
  if (errno === EBLOCKLISTED) return 'EBLOCKLISTED';
  return byNumber.get(errno) ?? `E${errno}`;
}

interface NativeErrorShape {
  readonly message: string;
  readonly errno?: unknown;
  readonly code?: unknown;
  readonly syscall?: unknown;
  readonly status?: unknown;
}

/** Turn an addon rejection (Error with errno/syscall) into a CephError; other errors pass through. */
export function toCephError(e: unknown): unknown {
  if (e instanceof CephError || !(e instanceof Error)) return e;
  const n = e as NativeErrorShape;
  if (typeof n.errno !== 'number') return e;
  const op = typeof n.syscall === 'string' ? n.syscall : 'ceph';
  const status = typeof n.status === 'string' ? n.status : undefined;
  const err = new CephError(n.message, n.errno, errnoName(n.errno), op, status);
  err.stack = e.stack;
  return err;
}

/**
 * Call an addon function returning a Promise and await it, rethrowing its failure (a synchronous
 * throw for bad state, or the rejection) as CephError.
 */
export async function ceph<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw toCephError(e);
  }
}

/** Run a synchronous addon call, rethrowing its failure as CephError. */
export function cephSync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toCephError(e);
  }
}

export function isCephError(e: unknown, code?: CephErrorCode): e is CephError {
  return e instanceof CephError && (code === undefined || e.code === code);
}
