/**
 * Which images a backstore may export (reference §6.1, the user's guide §6.4.2): the same
 * rules for every image provider, checked when a disk is created or attached through the API
 * and again whenever a gateway opens the image (an image changed with `rbd feature enable`
 * after it was attached is refused there, not exported half-right).
 *
 *  - `user:rbd` requires exclusive-lock (mask 4): only the lock holder writes, which is what
 *    makes active/passive paths through independent gateways safe.
 *  - journaling (mask 64) is refused on both backstores: this gateway writes through librbd's
 *    plain data path and does not append to the image journal in lock step, so a journal
 *    consumer (rbd-mirror) would replay a history that misses writes.
 *  - a stripe unit below 4096 bytes is refused: every SCSI write of one 4 KiB physical block
 *    would be split over several objects (several OSD round trips, no longer atomic per
 *    block), and the guide forbids it.
 *  - `rbd` on Ceph is active/active (every gateway writes the image at once, src/ha/active-active.ts):
 *    exclusive-lock (and object-map / fast-diff, which only the lock holder may keep) is refused,
 *    because librbd would move the lock to whichever gateway writes, on every write.
 */
import { RBD_FEATURES, featureNames } from '../ceph/features';
import type { ImageDetails } from './provider';

/** Features of the images ceph-iscsi creates (RBDDev.create): layering, exclusive-lock, object-map, fast-diff, deep-flatten. */
export const CEPH_ISCSI_DEFAULT_FEATURES: readonly string[] = ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'];

/** Features of the images the API creates for an active/active `rbd` disk on Ceph: no exclusive-lock, nor what needs it. */
export const ACTIVE_ACTIVE_FEATURES: readonly string[] = ['layering', 'deep-flatten'];

/** Smallest stripe unit an exported image may have (the guide: "Stripe-Einheit von weniger als 4096 Byte"). */
export const MIN_STRIPE_UNIT = 4096;

export type ImageBackstore = 'user:rbd' | 'rbd';

const EXCLUSIVE_LOCK = RBD_FEATURES['exclusive-lock'];
const JOURNALING = RBD_FEATURES.journaling;
/** What only an exclusive-lock holder may keep: refused when several gateways write at once. */
const SINGLE_WRITER = EXCLUSIVE_LOCK | RBD_FEATURES['object-map'] | RBD_FEATURES['fast-diff'];

/** How the image will be written: by several gateways at once (`rbd` on Ceph) or by one owner. */
export interface ExportMode {
  readonly activeActive?: boolean;
}

/** Feature mask an image must have to be exported with `backstore` (/api/settings required_rbd_features). */
export function requiredFeatures(backstore: ImageBackstore): number {
  return backstore === 'user:rbd' ? EXCLUSIVE_LOCK : 0;
}

/** Feature mask an image must not have (/api/settings unsupported_rbd_features). */
export function unsupportedFeatures(_backstore: ImageBackstore, mode: ExportMode = {}): number {
  return mode.activeActive ? JOURNALING | SINGLE_WRITER : JOURNALING;
}

/** What of an image a backstore rule looks at. */
export type RuleInput = Pick<ImageDetails, 'pool' | 'image' | 'featureMask' | 'stripeUnit' | 'stripeCount'>;

/**
 * Why `image` cannot be exported with `backstore`, in ceph-iscsi's words ("(LUN.allocate) rbd
 * 'x' is not compatible with LIO", then the reason), or undefined when it can.
 */
export function exportProblem(backstore: ImageBackstore, image: RuleInput, mode: ExportMode = {}): string | undefined {
  const reasons: string[] = [];
  const shared = mode.activeActive ? image.featureMask & SINGLE_WRITER : 0;
  if (shared) {
    // Disabled in dependency order: fast-diff needs object-map, object-map needs exclusive-lock.
    const order = ['fast-diff', 'object-map', 'exclusive-lock'].filter((f) => (shared & RBD_FEATURES[f]) !== 0);
    reasons.push(`Image features ${featureNames(shared).join(',')} are not supported by the ${backstore} backstore on Ceph`
      + ' (every gateway writes the image at once, active/active, and librbd would move the exclusive lock between them on every write;'
      + ` disable them with 'rbd feature disable ${image.pool}/${image.image} ${order.join(' ')}')`);
  }
  const unsupported = image.featureMask & JOURNALING;
  if (unsupported) {
    reasons.push(`Image features ${featureNames(unsupported).join(',')} are not supported`
      + ' (this gateway does not write the RBD journal, so rbd-mirror would replay an incomplete history;'
      + ` disable it with 'rbd feature disable ${image.pool}/${image.image} journaling')`);
  }
  const missing = requiredFeatures(backstore) & ~image.featureMask;
  if (missing) {
    reasons.push(`Image features ${featureNames(missing).join(',')} are required by the ${backstore} backstore`
      + ` (only the exclusive-lock holder may write; enable it with 'rbd feature enable ${image.pool}/${image.image} exclusive-lock')`);
  }
  // Without the striping feature the stripe unit is the object size, at least 4 KiB by librbd's rules.
  if (image.stripeUnit > 0 && image.stripeUnit < MIN_STRIPE_UNIT) {
    reasons.push(`Images with a stripe unit of less than ${MIN_STRIPE_UNIT} bytes cannot be exported (stripe unit ${image.stripeUnit} bytes:`
      + ' one 4 KiB block would be split over several objects)');
  }
  if (reasons.length === 0) return undefined;
  return `(LUN.allocate) rbd '${image.image}' is not compatible with LIO\n${reasons.join('\n')}`;
}
