/** The embedded image store: public surface for the daemon, the CLI and the REST layer. */
export { ImageStore } from './store';
export type { CreateImageOptions, OpenImageOptions, ImageInfo, SnapshotInfo, ParentInfo, LockInfo, DiskUsage, Progress, ImageStoreOptions } from './store';
export type { StoreImageDevice } from './device';
export { StoreError } from './errors';
export type { StoreErrorKind } from './errors';
export { parseImageSpec, formatSpec, DEFAULT_POOL } from './names';
export type { ImageSpec } from './names';
export { FEATURES, FEATURE_NAMES, DEFAULT_FEATURES, featureMask } from './features';
export type { FeatureName } from './features';
export { checkStore } from './check';
export type { Problem, CheckResult } from './check';
export { exportImage, importImage, copyImage } from './transfer';
