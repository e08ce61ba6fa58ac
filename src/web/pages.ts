/**
 * The dashboard's pages on the API server: the login form, login/logout, the session's CSRF
 * token for the single-page app, and the built front-end (dist/web) behind the session. Every
 * page needs a session; without one a page redirects to the login form and anything else
 * answers 401. The caller allow-list of the API (auth.ts) applies before any of this.
 *
 * Why @fastify/static: ETag/Last-Modified, content types and path-traversal safety for the
 * built assets, from fastify's own team. Why @fastify/cookie: correct cookie parsing and
 * Set-Cookie serialisation with every attribute (HttpOnly, SameSite, Secure, Path).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { callerAddress } from '../api/auth';
import type { ApiContext } from '../api/context';
import { LoginLimiter, SESSION_COOKIE, WebSession, WebSessions, sameSecret } from './sessions';
import type { StatsHistory } from './history';

/** What the API server keeps for the dashboard. */
export interface WebState {
  readonly sessions: WebSessions;
  readonly limiter: LoginLimiter;
  /** Built front-end (index.html, app.js, app.css, login.css). */
  readonly assetsDir: string;
  /** Sampled graphs of every gateway (absent when the API runs without a data dir). */
  readonly history?: StatsHistory;
  readonly dataDir?: string;
}

/** dist/web next to dist/src (npm run build puts the front-end there). */
export function defaultAssetsDir(): string {
  return path.resolve(__dirname, '..', '..', 'web');
}

/** Paths the dashboard answers itself (everything outside /api). */
export function isWebPath(p: string): boolean {
  return p !== '/api' && !p.startsWith('/api/');
}

const PUBLIC = new Set(['/ui/login', '/ui/login.css']);
export const PAGES = ['/ui/overview', '/ui/targets', '/ui/disks', '/ui/sessions'];

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
};

function cookieOf(app: FastifyInstance, req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  return app.parseCookie(header)[SESSION_COOKIE];
}

export function sessionOf(app: FastifyInstance, web: WebState, req: FastifyRequest): WebSession | undefined {
  return web.sessions.get(cookieOf(app, req));
}

/** The origin this server is reached at (scheme of the listener, Host header). */
function ownOrigin(ctx: ApiContext, req: FastifyRequest): string {
  return `${ctx.settings.api_secure ? 'https' : 'http'}://${req.headers.host ?? ''}`;
}

/**
 * Why a request that comes with the session cookie must not change anything, or undefined:
 * Origin (or, without it, Referer) must be this server, and, unless `csrfOptional`, the
 * session's token must come in X-CSRF-Token (or a `csrf` form field of the logout form).
 */
export function crossSiteProblem(ctx: ApiContext, req: FastifyRequest, session: WebSession | undefined, csrfOptional = false): string | undefined {
  const own = ownOrigin(ctx, req);
  const origin = req.headers.origin;
  if (origin !== undefined) {
    if (origin !== own) return `cross-site request refused: Origin ${origin} is not ${own}`;
  } else {
    const referer = req.headers.referer;
    if (referer === undefined) return 'cross-site request refused: neither Origin nor Referer header';
    if (referer !== own && !referer.startsWith(`${own}/`)) return 'cross-site request refused: Referer is not this server';
  }
  if (csrfOptional) return undefined;
  const body = req.body as Record<string, unknown> | null | undefined;
  const token = req.headers['x-csrf-token'] ?? (body && typeof body === 'object' ? body.csrf : undefined);
  if (typeof token !== 'string' || !session || !sameSecret(token, session.csrf)) return 'cross-site request refused: missing or wrong CSRF token (X-CSRF-Token)';
  return undefined;
}

/**
 * The API's use of a session (no Basic credentials came): 'none' (answer 401), 'ok', or a
 * refusal message for a state-changing request without the CSRF token or from another origin.
 */
export function apiSessionCheck(app: FastifyInstance, ctx: ApiContext, web: WebState, req: FastifyRequest): 'none' | 'ok' | { refused: string } {
  const s = sessionOf(app, web, req);
  if (!s) return 'none';
  if (req.method === 'GET' || req.method === 'HEAD') return 'ok';
  const problem = crossSiteProblem(ctx, req, s);
  return problem ? { refused: problem } : 'ok';
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Only a dashboard page of this server, never another site ("//evil", "/\evil"). */
function safeNext(raw: unknown): string {
  const next = typeof raw === 'string' ? raw : '';
  return /^\/ui\/[A-Za-z0-9._~%/:@-]*$/.test(next) && !next.startsWith('//') ? next : '/ui/overview';
}

function loginPage(ctx: ApiContext, message: string | undefined, next: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>iSCSI gateway - log in</title><link rel="stylesheet" href="/ui/login.css"></head>
<body><main class="login">
<h1>iSCSI gateway</h1>
<p class="sub">Gateway ${escapeHtml(ctx.gatewayName)}: log in with the API user (api_user / api_password).</p>
${message ? `<p class="error" role="alert" id="login-error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/ui/login">
<input type="hidden" name="next" value="${escapeHtml(next)}">
<label for="username">User</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></main></body></html>
`;
}

function credentialsProblem(ctx: ApiContext, user: string, password: string): string | undefined {
  const match = sameSecret(user, ctx.settings.api_user) && sameSecret(password, ctx.settings.api_password);
  if (!match) return 'username/password mismatch with the configuration file';
  if (ctx.settings.api_user === 'admin' && ctx.settings.api_password === 'admin' && !ctx.loopbackOnly) {
    return 'the default credentials admin/admin are accepted only while the API listens on loopback: set api_user and api_password in the settings file';
  }
  return undefined;
}

function setHeaders(reply: FastifyReply, html: boolean): FastifyReply {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
  if (html) reply.header('Cache-Control', 'no-store');
  return reply;
}

function field(req: FastifyRequest, name: string): string {
  const body = req.body as Record<string, unknown> | null | undefined;
  const v = body && typeof body === 'object' ? body[name] : undefined;
  return typeof v === 'string' ? v : '';
}

/** Register the pages (call after the API's auth hook). */
export function registerWebPages(app: FastifyInstance, ctx: ApiContext, web: WebState): void {
  // Its onRequest hook may run after the API's auth hook, so the session cookie is parsed
  // explicitly (cookieOf) wherever it is needed; the plugin serialises Set-Cookie.
  void app.register(fastifyCookie);
  const built = fs.existsSync(path.join(web.assetsDir, 'index.html'));
  if (built) void app.register(fastifyStatic, { root: web.assetsDir, prefix: '/ui/', wildcard: true, index: false, serve: true });

  const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: ctx.settings.api_secure };

  // The guard: a session for everything under /ui but the login form and its style sheet.
  app.addHook('onRequest', async (req, reply) => {
    const p = req.url.split('?')[0];
    if (!isWebPath(p)) return;
    setHeaders(reply, false);
    if (!p.startsWith('/ui/') || PUBLIC.has(p)) return;
    if (sessionOf(app, web, req)) return;
    if (req.method === 'GET' || req.method === 'HEAD') {
      await reply.code(302).header('Location', `/ui/login?next=${encodeURIComponent(p)}`).send();
    } else {
      await reply.code(401).send({ message: 'Missing credentials' });
    }
    return reply;
  });

  app.get('/', async (_req, reply) => reply.code(302).header('Location', '/ui/overview').send());
  app.get('/ui', async (_req, reply) => reply.code(302).header('Location', '/ui/overview').send());

  app.get('/ui/login', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    if (sessionOf(app, web, req)) return reply.code(302).header('Location', safeNext(q.next)).send();
    const expired = q.expired === '1' ? 'Your session has ended: log in again.' : undefined;
    return setHeaders(reply, true).type('text/html; charset=utf-8').send(loginPage(ctx, expired, safeNext(q.next)));
  });

  app.post('/ui/login', async (req, reply) => {
    setHeaders(reply, true).type('text/html; charset=utf-8');
    const next = safeNext(field(req, 'next'));
    // Login CSRF: a foreign page must not log the browser in under our user either.
    const cross = crossSiteProblem(ctx, req, undefined, true);
    if (cross) return reply.code(403).send(loginPage(ctx, cross, next));
    const address = callerAddress(req.socket.remoteAddress);
    if (web.limiter.blocked(address)) {
      return reply.code(429).send(loginPage(ctx, `Too many failed logins from ${address}: wait a minute and try again.`, next));
    }
    const problem = credentialsProblem(ctx, field(req, 'username'), field(req, 'password'));
    if (problem) {
      web.limiter.failed(address);
      // Never the password, never the user name typed (it may be a password typed in the wrong field).
      ctx.log.warn({ caller: address }, 'dashboard login failed');
      return reply.code(401).send(loginPage(ctx, problem, next));
    }
    web.limiter.succeeded(address);
    web.sessions.destroy(cookieOf(app, req));
    const s = web.sessions.create(ctx.settings.api_user);
    ctx.log.info({ caller: address }, 'dashboard login');
    return reply.code(303).setCookie(SESSION_COOKIE, s.id, cookieOptions).header('Location', next).send();
  });

  app.post('/ui/logout', async (req, reply) => {
    const s = sessionOf(app, web, req);
    const cross = crossSiteProblem(ctx, req, s);
    if (cross) return reply.code(403).send({ message: cross });
    web.sessions.destroy(s?.id);
    return reply.code(303).clearCookie(SESSION_COOKIE, cookieOptions).header('Location', '/ui/login').send();
  });

  app.get('/ui/session', async (req) => {
    const s = sessionOf(app, web, req);
    return { user: s?.user, csrf: s?.csrf, gateway: ctx.gatewayName };
  });

  const index = async (_req: FastifyRequest, reply: FastifyReply) => {
    setHeaders(reply, true);
    if (!built) return reply.code(503).send({ message: 'the dashboard is not built: run npm run build' });
    return reply.sendFile('index.html');
  };
  for (const p of PAGES) {
    app.get(p, index);
    app.get(`${p}/*`, index);
  }
  if (!built) app.get('/ui/login.css', async (_req, reply) => reply.type('text/css').send(''));
}
