/**
 * Internal routes other gateways and gwcli call directly (§2.3). In this gateway every gateway
 * applies the shared config itself, so the fan-out routes of ceph-iscsi have nothing to do;
 * `_ping` answers whether this gateway serves iSCSI.
 */
import { ApiContext, Routes } from './context';

export function registerInternal(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/_ping', ['Simple "is alive" ping responder (internal)'], async (_req, reply) => {
    // 503 while this gateway is a configured gateway but has not applied the config yet
    // (its portals are not up); 200 otherwise, as ceph-iscsi.
    const c = (await ctx.store.read()).config;
    const configured = c.gateways[ctx.gatewayName] !== undefined;
    const serving = !ctx.running || ctx.running.appliedEpoch() >= 0;
    return reply.code(configured && !serving ? 503 : 200).send({ message: 'pong' });
  });
}
