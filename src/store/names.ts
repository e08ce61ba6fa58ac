/**
 * Pool, image and snapshot names, and image specs ("pool/image@snap"), with RBD's rules:
 * no '/' or '@' in any name (they separate the spec), pool and image names do not start with
 * '.' (our on-disk names; RBD reserves them too), image names are at most 95 bytes
 * (RBD_MAX_IMAGE_NAME_SIZE 96 with the NUL), pool and snapshot names at most 127 bytes.
 * Control characters are refused: they would make `ls` output ambiguous.
 */
import { StoreError } from './errors';

export const DEFAULT_POOL = 'rbd';
export const MAX_POOL_NAME_BYTES = 127;
export const MAX_IMAGE_NAME_BYTES = 95;
export const MAX_SNAP_NAME_BYTES = 127;

function common(kind: string, name: string, maxBytes: number): string | undefined {
  if (name.length === 0) return `${kind} name is empty`;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxBytes) return `${kind} name '${name}' is too long (${bytes} bytes, at most ${maxBytes})`;
  if (name.includes('/')) return `${kind} name '${name}' contains '/' (not allowed: it separates pool and image)`;
  if (name.includes('@')) return `${kind} name '${name}' contains '@' (not allowed: it separates image and snapshot)`;
  // eslint-disable-next-line no-control-regex
  const ctl = /[\u0000-\u001f\u007f]/.exec(name);
  if (ctl) return `${kind} name contains the control character 0x${ctl[0].charCodeAt(0).toString(16).padStart(2, '0')}`;
  return undefined;
}

/** The problem with a pool name, or undefined when it is valid. */
export function poolNameProblem(name: string): string | undefined {
  const p = common('pool', name, MAX_POOL_NAME_BYTES);
  if (p) return p;
  if (name.startsWith('.')) return `pool name '${name}' starts with '.' (reserved)`;
  return undefined;
}

export function imageNameProblem(name: string): string | undefined {
  const p = common('image', name, MAX_IMAGE_NAME_BYTES);
  if (p) return p;
  if (name.startsWith('.')) return `image name '${name}' starts with '.' (reserved)`;
  return undefined;
}

export function snapNameProblem(name: string): string | undefined {
  return common('snapshot', name, MAX_SNAP_NAME_BYTES);
}

export function validatePoolName(name: string): void {
  const p = poolNameProblem(name);
  if (p) throw new StoreError(p, 'invalid-name');
}

export function validateImageName(name: string): void {
  const p = imageNameProblem(name);
  if (p) throw new StoreError(p, 'invalid-name');
}

export function validateSnapName(name: string): void {
  const p = snapNameProblem(name);
  if (p) throw new StoreError(p, 'invalid-name');
}

export interface ImageSpec {
  readonly pool: string;
  readonly image: string;
  readonly snapshot?: string;
}

export type SnapshotPresence = 'none' | 'permitted' | 'required';

/**
 * Parse "[pool/]image[@snap]". `pool` (e.g. --pool) is used when the spec has none; a spec
 * naming a pool wins, as in rbd. Validates every part.
 */
export function parseImageSpec(spec: string, options: { pool?: string; snapshot?: SnapshotPresence } = {}): ImageSpec {
  const presence = options.snapshot ?? 'none';
  if (spec.length === 0) throw new StoreError('image name was not specified', 'invalid-argument');
  const at = spec.indexOf('@');
  const head = at >= 0 ? spec.slice(0, at) : spec;
  const snap = at >= 0 ? spec.slice(at + 1) : undefined;
  const slash = head.indexOf('/');
  const pool = slash >= 0 ? head.slice(0, slash) : (options.pool ?? DEFAULT_POOL);
  const image = slash >= 0 ? head.slice(slash + 1) : head;
  if (image.includes('/')) {
    throw new StoreError(`invalid spec '${spec}': namespaces are not supported (use pool/image[@snapshot])`, 'invalid-name');
  }
  validatePoolName(pool);
  if (image.length === 0) throw new StoreError(`invalid spec '${spec}': image name was not specified`, 'invalid-argument');
  validateImageName(image);
  if (snap !== undefined) {
    if (presence === 'none') throw new StoreError(`snapshot name specified for a command that doesn't use it ('${spec}')`, 'invalid-argument');
    validateSnapName(snap);
  } else if (presence === 'required') {
    throw new StoreError(`snapshot name was not specified ('${spec}' needs @snapshot)`, 'invalid-argument');
  }
  return snap === undefined ? { pool, image } : { pool, image, snapshot: snap };
}

export function formatSpec(s: { pool: string; image: string; snapshot?: string }): string {
  return `${s.pool}/${s.image}${s.snapshot !== undefined ? '@' + s.snapshot : ''}`;
}
