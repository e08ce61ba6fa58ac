/**
 * Target kinds the benchmark knows, in report order. A new back end to compare (e.g. the
 * gateway on an embedded-store image) is one more `TargetKind` here.
 *
 * Write semantics differ by default: tgt's rdwr store acknowledges writes from the page cache
 * (it reports WCE=1 and syncs on SYNCHRONIZE CACHE), while the gateway's default
 * emulate_write_cache=0 (as LIO/ceph-iscsi) makes every write write-through (fdatasync). The
 * variants give the two like-for-like comparisons next to the default one.
 */
import { GatewayKind, GatewayKindOptions } from './gateway';
import { TargetKind } from './target';
import { TgtKind } from './tgt';

export function createTargetKinds(gateway: GatewayKindOptions): TargetKind[] {
  return [
    new TgtKind({ id: 'tgt', title: 'tgtd, rdwr backing store (defaults: write-back, WCE=1)' }),
    new TgtKind({ id: 'tgt-sync', title: 'tgtd, rdwr backing store, --bsoflags sync (O_SYNC: write-through)', bsoflags: 'sync' }),
    new GatewayKind({ id: 'gateway', title: 'iscsi-gateway, file backstore (defaults: emulate_write_cache=0, write-through)', diskControls: {} }, gateway),
    new GatewayKind({ id: 'gateway-wce', title: 'iscsi-gateway, file backstore, emulate_write_cache=1 (write-back, like tgt)', diskControls: { emulate_write_cache: 1 } }, gateway),
    // No storage at all: what the targets cost themselves, the ceiling of this machine.
    new TgtKind({ id: 'tgt-null', title: 'tgtd, null backing store (reads zeros, discards writes)', bstype: 'null' }),
    new GatewayKind({ id: 'gateway-null', title: 'iscsi-gateway, null backstore (reads zeros, discards writes), emulate_write_cache=1', diskControls: { emulate_write_cache: 1 }, backstore: 'null' }, gateway),
  ];
}
