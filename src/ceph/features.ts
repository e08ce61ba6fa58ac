/** RBD feature bits and names (rbd/features.h) and image flags (rbd_get_flags). */

/** RBD feature bits (rbd/features.h) by the names `rbd` and ceph-iscsi use. */
export const RBD_FEATURES: Readonly<Record<string, number>> = {
  layering: 1 << 0,
  striping: 1 << 1,
  'exclusive-lock': 1 << 2,
  'object-map': 1 << 3,
  'fast-diff': 1 << 4,
  'deep-flatten': 1 << 5,
  journaling: 1 << 6,
  'data-pool': 1 << 7,
  operations: 1 << 8,
  migrating: 1 << 9,
  'non-primary': 1 << 10,
  'dirty-cache': 1 << 11,
};

/** rbd_get_flags bits. */
export const RBD_FLAG_OBJECT_MAP_INVALID = 1 << 0;
export const RBD_FLAG_FAST_DIFF_INVALID = 1 << 1;

export function featureNames(mask: number): string[] {
  return Object.entries(RBD_FEATURES)
    .filter(([, bit]) => (mask & bit) !== 0)
    .map(([name]) => name);
}

/** Mask of the named features; throws on an unknown name. */
export function featureMask(names: readonly string[]): number {
  let m = 0;
  for (const n of names) {
    const bit = RBD_FEATURES[n];
    if (bit === undefined) throw new RangeError(`unknown RBD feature '${n}' (known: ${Object.keys(RBD_FEATURES).join(', ')})`);
    m |= bit;
  }
  return m;
}
