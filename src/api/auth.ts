/**
 * Who may use the API (reference §2.1): everything but `GET /api` needs HTTP Basic credentials
 * equal to api_user/api_password; everything but `/api/sysinfo/*` also needs a caller address
 * from the allow-list — the gateways' addresses, every portal IP of every target, localhost,
 * and trusted_ip_list — else 403 "API access not available to <ip>". The default credentials
 * admin/admin are accepted only while the API listens on loopback.
 */
import * as crypto from 'node:crypto';
import * as dns from 'node:dns/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from '../config/schema';
import type { ApiContext } from './context';
import { apiSessionCheck, isWebPath } from '../web/pages';
import type { WebState } from '../web/pages';

/** The caller's address without IPv6 scope and IPv4-mapped prefix. */
export function callerAddress(raw: string | undefined): string {
  let a = raw ?? '';
  a = a.split('%')[0];
  if (a.toLowerCase().startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  return a;
}

/** "ip", "ip:port" or "[v6]:port" -> ip. */
export function hostOf(address: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (v6) return v6[1];
  const v4 = /^([^:]+):\d+$/.exec(address);
  return v4 ? v4[1] : address;
}

function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/** Resolved addresses of gateway names, cached briefly (ceph-iscsi resolves on every request). */
class NameCache {
  private readonly entries = new Map<string, { at: number; ips: string[] }>();

  async resolve(name: string): Promise<string[]> {
    const hit = this.entries.get(name);
    if (hit && Date.now() - hit.at < 10_000) return hit.ips;
    let ips: string[];
    try {
      ips = (await dns.lookup(name, { all: true })).map((r) => r.address);
    } catch {
      ips = [];
    }
    this.entries.set(name, { at: Date.now(), ips });
    if (this.entries.size > 1024) this.entries.delete(this.entries.keys().next().value as string);
    return ips;
  }
}

export async function allowedAddresses(ctx: ApiContext, c: GatewayConfig, names: NameCache): Promise<Set<string>> {
  const out = new Set<string>(['127.0.0.1', '::1', ...ctx.settings.trusted_ip_list]);
  for (const [name, g] of Object.entries(c.gateways)) {
    for (const a of g.portal_ip_addresses ?? []) out.add(hostOf(a));
    for (const ip of await names.resolve(name)) out.add(ip);
  }
  for (const t of Object.values(c.targets)) for (const ip of t.ip_list) out.add(ip);
  return out;
}

function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export function isDefaultCredentials(ctx: ApiContext): boolean {
  return ctx.settings.api_user === 'admin' && ctx.settings.api_password === 'admin';
}

/**
 * The onRequest hook: answers 401/403 itself, or lets the request through. With the web
 * dashboard (`web`), pages outside /api are left to its guard once the caller is allowed, and an
 * API request without Basic credentials may come with a dashboard session instead.
 */
export function authHook(ctx: ApiContext, web?: { app: FastifyInstance; state: WebState }) {
  const names = new NameCache();
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = req.url.split('?')[0].replace(/\/+$/, '');
    if (path === '/api' || (path === '' && !web)) return;
    if (!path.startsWith('/api/sysinfo/')) {
      const caller = callerAddress(req.socket.remoteAddress);
      const allowed = await allowedAddresses(ctx, (await ctx.store.read()).config, names);
      if (!allowed.has(caller)) {
        await reply.code(403).send({ message: `API access not available to ${caller}` });
        return reply;
      }
    }
    if (web && isWebPath(path || '/')) return;
    const creds = basicCredentials(req.headers.authorization);
    if (!creds && web && req.headers.authorization === undefined) {
      const use = apiSessionCheck(web.app, ctx, web.state, req);
      if (use === 'ok') return;
      if (use !== 'none') {
        await reply.code(403).send({ message: use.refused });
        return reply;
      }
    }
    if (!creds) {
      await reply.code(401).header('WWW-Authenticate', 'Basic realm="iscsi-gateway"').send({ message: 'Missing credentials' });
      return reply;
    }
    const match = safeEqual(creds.user, ctx.settings.api_user) && safeEqual(creds.password, ctx.settings.api_password);
    if (!match) {
      await reply.code(401).header('WWW-Authenticate', 'Basic realm="iscsi-gateway"').send({ message: 'username/password mismatch with the configuration file' });
      return reply;
    }
    if (isDefaultCredentials(ctx) && !ctx.loopbackOnly) {
      await reply.code(401).send({
        message: 'the default credentials admin/admin are accepted only while the API listens on loopback: set api_user and api_password in the settings file',
      });
      return reply;
    }
  };
}
