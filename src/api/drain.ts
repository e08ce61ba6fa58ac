/**
 * Maintenance of one gateway (not in ceph-iscsi): drain hands every disk the gateway owns to the
 * other gateways serving it (their paths become active/optimized) and makes it take none, so it
 * can be stopped or restarted without an I/O error on multipath initiators; resume ends that.
 * Any gateway's API can drain any running gateway: the order travels through the peer plane
 * (the data dir, or RADOS when gateways are on different hosts: src/ha/peer-plane.ts).
 *
 *   GET    /api/drain/<gateway>   {"gateway", "up", "draining", "active_disks": [...]}
 *   PUT    /api/drain/<gateway>   drain; `wait=false` returns at once, else waits (time_out)
 *   DELETE /api/drain/<gateway>   resume
 */
import { ApiContext, Routes, boolField, current, fail, params } from './context';
import type { GatewayStatus } from '../daemon/running-state';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** How long PUT/DELETE wait: above one transition's bound (2 leases + 10 s at the default lease). */
const WAIT_S = 60;

export function registerDrain(r: Routes, ctx: ApiContext): void {
  const find = async (name: string): Promise<GatewayStatus> => {
    const c = await current(ctx);
    if (!c.gateways[name]) fail(404, 'Gateway does not exist in configuration');
    if (!ctx.running) fail(503, 'this API runs without a gateway daemon: it cannot reach the gateways');
    const g = (await ctx.running.gateways()).find((s) => s.name === name);
    if (!g || !g.up) fail(400, `gateway ${name} is not running (no fresh heartbeat): nothing to drain`);
    return g;
  };
  const describe = (g: GatewayStatus) => ({ gateway: g.name, up: g.up, draining: g.draining ?? false, active_disks: g.activeDisks });

  r.add(['GET', 'PUT', 'DELETE'], '/api/drain/:gateway_name', [
    'Drain a gateway for maintenance (PUT: hand its disks to the other gateways, take none), resume it (DELETE), or show its state (GET)',
    ':param wait: (bool) PUT/DELETE: wait until done (default true; at most 60 s)',
  ], async (req, reply) => {
    const name = params(req).gateway_name;
    const g = await find(name);
    if (req.method === 'GET') return describe(g);
    const drain = req.method === 'PUT';
    await ctx.running!.requestDrain!(name, drain);
    if (!boolField(req, 'wait', true)) return reply.code(200).send({ message: `${drain ? 'drain' : 'resume'} of gateway ${name} requested` });
    const deadline = Date.now() + WAIT_S * 1000;
    for (;;) {
      const now = (await ctx.running!.gateways()).find((s) => s.name === name);
      if (!now || !now.up) fail(503, `gateway ${name} stopped before the ${drain ? 'drain' : 'resume'} completed`);
      const done = drain ? now.draining === true && now.drainKept !== undefined : now.draining === false;
      if (done) {
        // A disk no other running gateway serves stays where it is: say which.
        if (drain && now.activeDisks.length > 0) {
          fail(409, `gateway ${name} is draining but still owns ${now.activeDisks.join(', ')} (no other running gateway serves ${now.activeDisks.length === 1 ? 'it' : 'them'})`);
        }
        return reply.code(200).send({ message: drain ? `gateway ${name} drained: it owns no disk and takes none` : `gateway ${name} resumed`, ...describe(now) });
      }
      if (Date.now() > deadline) fail(504, `gateway ${name} did not ${drain ? 'drain' : 'resume'} within ${WAIT_S} s`);
      await sleep(100);
    }
  });
}
