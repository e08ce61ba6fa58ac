/** GET /api/settings: defaults and limits of target and disk controls, api_version 2 (§2.2). */
import { BACKSTORES, DEFAULT_BACKSTORE, diskControlsLimits, diskDefaultControls, targetControlsLimits, targetDefaultControls } from '../config/validation';
import { requiredFeatures, unsupportedFeatures } from '../images/disk-rules';
import { isActiveActive } from '../ha/active-active';
import { ApiContext, Routes } from './context';

export function registerSettings(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/settings', ['List settings: defaults and limits of the target and disk controls'], async () => {
    const limits = diskControlsLimits();
    const defaults = diskDefaultControls();
    return {
      api_version: 2,
      backstores: [...BACKSTORES],
      default_backstore: DEFAULT_BACKSTORE,
      config: { minimum_gateways: ctx.settings.minimum_gateways },
      // The backstore rules of src/images/disk-rules.ts (user:rbd: exclusive-lock; journaling refused).
      required_rbd_features: Object.fromEntries(BACKSTORES.map((b) => [b, requiredFeatures(b)])),
      // rbd on Ceph is active/active: exclusive-lock, object-map and fast-diff refused too.
      unsupported_rbd_features: Object.fromEntries(BACKSTORES.map((b) => [b, unsupportedFeatures(b, { activeActive: isActiveActive({ backstore: b }, ctx.images.kind) })])),
      disk_default_controls: Object.fromEntries(BACKSTORES.map((b) => [b, defaults])),
      disk_controls_limits: Object.fromEntries(BACKSTORES.map((b) => [b, limits])),
      target_default_controls: targetDefaultControls(),
      target_controls_limits: targetControlsLimits(),
    };
  });
}
