/**
 * Typed store errors. `kind` says what went wrong in a way callers can act on (the CLI picks
 * its message and exit code from it, the REST layer its HTTP status, the SCSI layer its sense).
 */
export type StoreErrorKind =
  | 'not-found' // pool, image or snapshot does not exist
  | 'exists' // name already taken
  | 'invalid-name'
  | 'invalid-argument'
  | 'busy' // open elsewhere, locked, or a watcher did not answer
  | 'protected' // snapshot is protected
  | 'not-protected' // clone source snapshot is not protected
  | 'has-children'
  | 'has-snapshots'
  | 'not-empty' // pool still holds images
  | 'shrink-not-allowed'
  | 'read-only'
  | 'limit' // snapshot limit reached, too many objects
  | 'unsupported'
  | 'corrupt' // on-disk metadata does not parse
  | 'io';

export class StoreError extends Error {
  constructor(
    message: string,
    readonly kind: StoreErrorKind,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

/** Wrap an fs error with what we were doing; ENOSPC stays recognisable. */
export function ioError(what: string, e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new StoreError(`${what}: ${msg}`, 'io');
}
