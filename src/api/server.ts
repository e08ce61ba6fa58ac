/**
 * The REST API server (rbd-target-api compatible, reference §2): fastify with form-encoded
 * bodies (@fastify/formbody), JSON answers, {"message": …} for every error, HTTP Basic auth and
 * the caller allow-list, TLS when api_secure. It validates requests and commits changes to the
 * shared ConfigStore; it never touches the data path: every gateway's reconciler applies the
 * committed config, so a change succeeds while a gateway is down and that gateway converges
 * when it returns.
 *
 * Why fastify: a well-kept, typed HTTP framework with a fast router, per-route registration
 * (we describe every route for GET /api from the same table) and hooks for auth; formbody is
 * its official urlencoded parser.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import { storeRoot } from '../config/paths';
import { ChapSecrets } from '../config/secrets';
import type { ConfigStore } from '../config/store';
import type { RunningState } from '../daemon/running-state';
import { EmbeddedImageProvider } from '../images/embedded';
import type { ImageProvider } from '../images/provider';
import { isLoopback } from '../transport/portal';
import type { Logger } from '../util/log';
import { authHook, isDefaultCredentials } from './auth';
import type { CephSettings } from '../ceph/settings';
import { registerClientAuth } from './clientauth';
import { registerCluster } from './cluster';
import { registerClientLun } from './clientlun';
import { registerClients } from './clients';
import { registerConfig } from './config';
import { ApiContext, ApiError, ApiSettings, Routes } from './context';
import { registerDiscoveryAuth } from './discoveryauth';
import { registerDisks } from './disks';
import { registerDrain } from './drain';
import { registerDiskSnap } from './disksnap';
import { registerGateways } from './gateways';
import { registerHostGroups } from './hostgroups';
import { registerInternal } from './internal';
import { registerPools } from './pools';
import { registerSettings } from './settings';
import { registerSysinfo } from './sysinfo';
import { registerTargetAuth } from './targetauth';
import { registerTargetLun } from './targetlun';
import { registerTargets } from './targets';
import { registerDashboard } from '../web/dashboard-api';
import { StatsHistory } from '../web/history';
import type { PeerPlane } from '../ha/peer-plane';
import { WebState, defaultAssetsDir, registerWebPages } from '../web/pages';
import { LoginLimiter, WebSessions } from '../web/sessions';

export interface ApiServerOptions {
  readonly store: ConfigStore;
  readonly images: ImageProvider;
  readonly running?: RunningState;
  readonly settings: ApiSettings;
  readonly gatewayName: string;
  /** Listen address; ceph-iscsi's default is "::" (api_host), port 5000 (api_port). */
  readonly host: string;
  readonly port: number;
  readonly log: Logger;
  /** CHAP key pair (default: none, passwords stored in clear). */
  readonly secrets?: ChapSecrets;
  /** sha256 of the synced settings (default: over `settings`). */
  readonly checkconf?: () => string;
  /** The gateways' data dir: the dashboard graphs its gateways' live counters (web/live.ts). */
  readonly dataDir?: string;
  /** Where the gateways publish those counters when not in the data dir (RADOS on Ceph). */
  readonly peers?: PeerPlane;
  /** The Ceph cluster when configured (GET /api/cluster). */
  readonly ceph?: CephSettings;
}

export class ApiStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiStartError';
  }
}

export interface ApiServer {
  readonly app: FastifyInstance;
  /** Bound address (port 0 resolved). */
  address(): { host: string; port: number };
  readonly url: string;
  close(): Promise<void>;
}

function defaultCheckconf(settings: ApiSettings): () => string {
  const text = JSON.stringify(Object.fromEntries(Object.entries(settings).sort(([a], [b]) => a.localeCompare(b))));
  const hash = crypto.createHash('sha256').update(text).digest('hex');
  return () => hash;
}

/** The dashboard's state: sessions, login limiter, built assets, graphs when a data dir is known. */
export function webState(dataDir?: string, assetsDir = defaultAssetsDir(), peers?: PeerPlane): WebState {
  return { sessions: new WebSessions(), limiter: new LoginLimiter(), assetsDir, ...(dataDir ? { dataDir, history: new StatsHistory(peers ?? dataDir) } : {}) };
}

/** Build the fastify app with every route (not listening yet); `web` adds the dashboard. */
export function buildApi(ctx: ApiContext, https?: { cert: Buffer; key: Buffer }, web?: WebState): FastifyInstance {
  const app = Fastify({
    logger: false,
    // IQNs are up to 223 bytes; two of them fit.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 256 * 1024,
    ...(https ? { https: { cert: https.cert, key: https.key, minVersion: 'TLSv1.2' as const } } : {}),
  }) as unknown as FastifyInstance;
  void app.register(formbody);
  // Fields come as a form (or JSON); a text body would be silently ignored, so refuse it (415).
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', authHook(ctx, web ? { app, state: web } : undefined));
  if (web) registerWebPages(app, ctx, web);
  // One line per change (and per refusal) for the administrator; never a body (it may carry CHAP secrets).
  app.addHook('onResponse', async (req, reply) => {
    if (req.method === 'GET' && reply.statusCode < 400) return;
    ctx.log.info({ method: req.method, path: req.url.split('?')[0], status: reply.statusCode, caller: req.socket.remoteAddress }, 'API request');
  });
  app.setErrorHandler((err: FastifyError | ApiError | Error, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ message: err.message });
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send({ message: err.message });
    ctx.log.error({ err, method: req.method, url: req.url.split('?')[0] }, 'API request failed');
    return reply.code(500).send({ message: `Unhandled exception: ${err.message}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ message: `Not found: ${req.method} ${req.url.split('?')[0]}` }));

  const routes = new Routes(app);
  registerTargets(routes, ctx);
  registerGateways(routes, ctx);
  registerDrain(routes, ctx);
  registerDisks(routes, ctx);
  registerDiskSnap(routes, ctx);
  registerPools(routes, ctx);
  registerCluster(routes, ctx);
  registerTargetLun(routes, ctx);
  registerClients(routes, ctx);
  registerClientAuth(routes, ctx);
  registerClientLun(routes, ctx);
  registerHostGroups(routes, ctx);
  registerTargetAuth(routes, ctx);
  registerDiscoveryAuth(routes, ctx);
  registerSettings(routes, ctx);
  registerSysinfo(routes, ctx);
  registerConfig(routes, ctx);
  registerInternal(routes, ctx);
  if (web) registerDashboard(routes, ctx, web);

  app.get('/api', async () => {
    const api = routes.docs
      .filter((d) => !d.url.split('/').some((seg) => seg.startsWith('_')))
      .sort((a, b) => a.url.localeCompare(b.url))
      .map((d) => {
        const url = d.url.replace(/:([a-z_]+)/g, '<$1>');
        return [`${url} : ${d.doc[0]}`, `Methods: ${d.methods.join(',')}`, d.doc.slice(1)];
      });
    api.unshift(['/api : Display all the available API endpoints', 'Methods: GET', ['**UNRESTRICTED**']]);
    return { api };
  });
  return app;
}

/** Start the API on host:port. Throws ApiStartError when TLS is requested without usable files. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const ctx: ApiContext = {
    store: options.store,
    images: options.images,
    running: options.running,
    settings: options.settings,
    gatewayName: options.gatewayName,
    secrets: options.secrets ?? ChapSecrets.none(),
    log: options.log.child({ component: 'api' }),
    checkconf: options.checkconf ?? defaultCheckconf(options.settings),
    loopbackOnly: isLoopback(options.host),
    ceph: options.ceph,
  };
  let https: { cert: Buffer; key: Buffer } | undefined;
  if (options.settings.api_secure) {
    try {
      https = { cert: fs.readFileSync(options.settings.ssl_cert), key: fs.readFileSync(options.settings.ssl_key) };
    } catch (e) {
      throw new ApiStartError(`Secure API requested (api_secure) but the certificate/key files are missing or unreadable: ${(e as Error).message}`);
    }
  }
  if (isDefaultCredentials(ctx) && !ctx.loopbackOnly) {
    ctx.log.warn({ host: options.host }, 'the API listens beyond loopback with the default credentials admin/admin: they are refused until api_user/api_password are set');
  }
  const web = webState(options.dataDir, undefined, options.peers);
  const app = buildApi(ctx, https, web);
  try {
    await app.listen({ host: options.host, port: options.port });
    web.history?.start();
  } catch (e) {
    throw new ApiStartError(`cannot listen on ${options.host}:${options.port}: ${(e as Error).message}`);
  }
  const addr = (): { host: string; port: number } => {
    const a = app.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  };
  const a = addr();
  const hostPart = a.host.includes(':') ? `[${a.host}]` : a.host;
  ctx.log.info({ address: `${hostPart}:${a.port}`, tls: !!https }, 'REST API listening');
  return {
    app,
    address: addr,
    url: `${https ? 'https' : 'http'}://${hostPart}:${a.port}`,
    close: async () => {
      web.history?.stop();
      await app.close();
    },
  };
}

/** What the daemon hands over to run the API next to a gateway. */
export interface DaemonApiOptions {
  readonly dataDir: string;
  readonly store: ConfigStore;
  readonly running: RunningState;
  readonly gatewayName: string;
  readonly settings: ApiSettings & {
    readonly api_host: string;
    readonly api_port: number;
  };
  /** CHAP password keys (the daemon's: the same ones decode passwords at login). */
  readonly secrets: ChapSecrets;
  /** sha256 input for sysinfo/checkconf (the synced settings). */
  readonly checkconfSubset: Record<string, unknown>;
  readonly log: Logger;
  /** The Ceph cluster when configured (GET /api/cluster). */
  readonly ceph?: CephSettings;
  /** The image provider when it is not the data dir's embedded store (Ceph RBD); the caller closes it. */
  readonly images?: ImageProvider;
  /** The gateways' peer plane when not the data dir (the dashboard's live counters). */
  readonly peers?: PeerPlane;
}

/**
 * Start the API of a gateway daemon over the images of the data dir's embedded store, or of
 * the provider given (Ceph RBD pools).
 */
export async function startDaemonApi(o: DaemonApiOptions): Promise<ApiServer> {
  const shared = o.images;
  const images = shared ?? await EmbeddedImageProvider.open(storeRoot(o.dataDir), `iscsi-gateway-api@${o.gatewayName}`);
  const closeImages = () => (shared ? Promise.resolve() : images.close());
  const s = o.settings;
  const secrets = o.secrets;
  const hash = crypto.createHash('sha256').update(JSON.stringify(o.checkconfSubset)).digest('hex');
  try {
    const server = await startApiServer({
      store: o.store, images, running: o.running, settings: s, gatewayName: o.gatewayName,
      host: s.api_host, port: s.api_port, log: o.log, secrets, checkconf: () => hash, dataDir: o.dataDir, ceph: o.ceph, ...(o.peers ? { peers: o.peers } : {}),
    });
    return { ...server, address: server.address, close: async () => { await server.close(); await closeImages(); } };
  } catch (e) {
    await closeImages();
    throw e;
  }
}
