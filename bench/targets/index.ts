/**
 * Target kinds the benchmark knows, in report order. A new back end to compare (e.g. the
 * gateway on an embedded-store image) is one more `TargetKind` here.
 */
import { GatewayKind, GatewayKindOptions } from './gateway';
import { TargetKind } from './target';
import { TgtKind } from './tgt';

export function createTargetKinds(gateway: GatewayKindOptions): TargetKind[] {
  return [new TgtKind(), new GatewayKind(gateway)];
}
