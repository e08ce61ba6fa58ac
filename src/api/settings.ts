/** GET /api/settings: defaults and limits of target and disk controls, api_version 2 (§2.2). */
import { BACKSTORES, DEFAULT_BACKSTORE, diskControlsLimits, diskDefaultControls, targetControlsLimits, targetDefaultControls } from '../config/validation';
import { ApiContext, Routes } from './context';

/** RBD feature bits (librbd): exclusive-lock 4, object-map 8, fast-diff 16, deep-flatten 32, journaling 64. */
const EXCLUSIVE_LOCK = 4;
const JOURNALING = 64;

export function registerSettings(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/settings', ['List settings: defaults and limits of the target and disk controls'], async () => {
    const limits = diskControlsLimits();
    const defaults = diskDefaultControls();
    return {
      api_version: 2,
      backstores: [...BACKSTORES],
      default_backstore: DEFAULT_BACKSTORE,
      config: { minimum_gateways: ctx.settings.minimum_gateways },
      // Only the owner writes an image (exclusive lock); journaling is not replayed by this gateway.
      required_rbd_features: Object.fromEntries(BACKSTORES.map((b) => [b, EXCLUSIVE_LOCK])),
      unsupported_rbd_features: Object.fromEntries(BACKSTORES.map((b) => [b, JOURNALING])),
      disk_default_controls: Object.fromEntries(BACKSTORES.map((b) => [b, defaults])),
      disk_controls_limits: Object.fromEntries(BACKSTORES.map((b) => [b, limits])),
      target_default_controls: targetDefaultControls(),
      target_controls_limits: targetControlsLimits(),
    };
  });
}
