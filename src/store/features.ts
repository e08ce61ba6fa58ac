/**
 * RBD image features: names, bits, dependencies, and which may change after creation
 * (librbd's rules: layering and striping are fixed at creation; deep-flatten may only be
 * disabled; object-map needs exclusive-lock; fast-diff needs object-map; journaling needs
 * exclusive-lock).
 */
import { StoreError } from './errors';

export const FEATURES = {
  layering: 1,
  striping: 2,
  'exclusive-lock': 4,
  'object-map': 8,
  'fast-diff': 16,
  'deep-flatten': 32,
  journaling: 64,
} as const;

export type FeatureName = keyof typeof FEATURES;
export const FEATURE_NAMES = Object.keys(FEATURES) as FeatureName[];

/** rbd_default_features: layering, exclusive-lock, object-map, fast-diff, deep-flatten (61). */
export const DEFAULT_FEATURES: readonly FeatureName[] = ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'];

const REQUIRES: Partial<Record<FeatureName, FeatureName>> = {
  'object-map': 'exclusive-lock',
  'fast-diff': 'object-map',
  journaling: 'exclusive-lock',
};
const ENABLE_LATER: ReadonlySet<FeatureName> = new Set(['exclusive-lock', 'object-map', 'fast-diff', 'journaling']);
const DISABLE_LATER: ReadonlySet<FeatureName> = new Set(['exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten', 'journaling']);

export function isFeatureName(s: string): s is FeatureName {
  return Object.prototype.hasOwnProperty.call(FEATURES, s);
}

/** Parse feature names (also comma-separated lists and numeric masks, as rbd accepts). */
export function parseFeatures(items: readonly string[]): FeatureName[] {
  const out = new Set<FeatureName>();
  for (const item of items) {
    for (const raw of item.split(',')) {
      const s = raw.trim();
      if (s === '') continue;
      if (/^\d+$/.test(s)) {
        let mask = Number(s);
        for (const n of FEATURE_NAMES) {
          if (mask & FEATURES[n]) {
            out.add(n);
            mask &= ~FEATURES[n];
          }
        }
        if (mask !== 0) throw new StoreError(`unknown feature bits 0x${mask.toString(16)} in '${s}'`, 'invalid-argument');
      } else if (isFeatureName(s)) {
        out.add(s);
      } else {
        throw new StoreError(`unknown image feature '${s}' (known: ${FEATURE_NAMES.join(', ')})`, 'invalid-argument');
      }
    }
  }
  return sortFeatures([...out]);
}

export function sortFeatures(f: readonly FeatureName[]): FeatureName[] {
  return [...new Set(f)].sort((a, b) => FEATURES[a] - FEATURES[b]);
}

export function featureMask(f: readonly FeatureName[]): number {
  return f.reduce((m, n) => m | FEATURES[n], 0);
}

/** Check that every feature's prerequisite is present. */
export function validateFeatureSet(f: readonly FeatureName[]): void {
  const set = new Set(f);
  for (const n of set) {
    const req = REQUIRES[n];
    if (req && !set.has(req)) throw new StoreError(`feature '${n}' requires feature '${req}'`, 'invalid-argument');
  }
}

/** The feature set after enabling/disabling `change` on `current`, checked against librbd's rules. */
export function changeFeatures(current: readonly FeatureName[], change: readonly FeatureName[], enable: boolean): FeatureName[] {
  const set = new Set(current);
  for (const n of change) {
    if (enable) {
      if (set.has(n)) throw new StoreError(`feature '${n}' is already enabled`, 'invalid-argument');
      if (!ENABLE_LATER.has(n)) throw new StoreError(`feature '${n}' can only be set when the image is created`, 'invalid-argument');
      set.add(n);
    } else {
      if (!set.has(n)) throw new StoreError(`feature '${n}' is already disabled`, 'invalid-argument');
      if (!DISABLE_LATER.has(n)) throw new StoreError(`feature '${n}' cannot be disabled`, 'invalid-argument');
      set.delete(n);
    }
  }
  for (const n of set) {
    const req = REQUIRES[n];
    if (req && !set.has(req)) {
      throw new StoreError(
        enable ? `feature '${n}' requires feature '${req}'` : `cannot disable '${req}': feature '${n}' depends on it`,
        'invalid-argument',
      );
    }
  }
  return sortFeatures([...set]);
}
