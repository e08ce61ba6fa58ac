/**
 * What every route handler works with: the shared ConfigStore (the only thing the API changes),
 * the ImageProvider (images behind disks), this gateway's view of the running gateways
 * (sessions, for refusing disruptive changes), the settings and the CHAP key pair. Plus the
 * helpers every resource file uses: typed HTTP errors, form fields, commits.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CephSettings } from '../ceph/settings';
import { ChapSecrets } from '../config/secrets';
import type { GatewayConfig, TargetConfig } from '../config/schema';
import { ConfigStoreError } from '../config/store';
import type { ConfigMutator, ConfigStore, UpdateResult } from '../config/store';
import type { DisruptiveChange, RunningState } from '../daemon/running-state';
import { DisruptiveChangeError } from '../daemon/running-state';
import { ImageError } from '../images/provider';
import type { ImageProvider } from '../images/provider';
import type { Logger } from '../util/log';

/** The settings the API reads (a subset of iscsi-gateway.cfg's [config], reference §3.5). */
export interface ApiSettings {
  readonly api_user: string;
  readonly api_password: string;
  readonly api_secure: boolean;
  readonly trusted_ip_list: readonly string[];
  readonly minimum_gateways: number;
  readonly ssl_cert: string;
  readonly ssl_key: string;
}

export interface ApiContext {
  readonly store: ConfigStore;
  readonly images: ImageProvider;
  /** Absent when the API runs without a gateway daemon (tools, tests): no session checks. */
  readonly running?: RunningState;
  readonly settings: ApiSettings;
  /** This gateway's name (the config's gateways key); `allocating_host` of disks it creates. */
  readonly gatewayName: string;
  readonly secrets: ChapSecrets;
  readonly log: Logger;
  /** sha256 of the synced settings (GET /api/sysinfo/checkconf). */
  readonly checkconf: () => string;
  /** True while the API listens on a loopback address only (default credentials allowed). */
  readonly loopbackOnly: boolean;
  /** The Ceph cluster when configured (src/ceph/settings.ts); GET /api/cluster reports on it. */
  readonly ceph?: CephSettings;
}

/** A refusal with its HTTP status; the body is {"message": message}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function fail(status: number, message: string): never {
  throw new ApiError(status, message);
}

/** A form field (x-www-form-urlencoded body) or, for GET, a query parameter. */
export function field(req: FastifyRequest, name: string): string | undefined {
  const body = req.body as Record<string, unknown> | undefined | null;
  const fromBody = body && typeof body === 'object' ? body[name] : undefined;
  const query = req.query as Record<string, unknown> | undefined;
  const v = fromBody ?? query?.[name];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return String(v[v.length - 1]);
  // A JSON body (not what ceph-iscsi clients send, but harmless): objects are JSON fields.
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * The form body of a GET request (fastify parses none; rbd-target-api's GET /api/disks reads
 * `config=yes` from it, and gwcli sends it so). At most 64 KiB.
 */
export async function getForm(req: FastifyRequest): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded') || req.raw.readableEnded) return new URLSearchParams();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.raw) {
    size += (chunk as Buffer).length;
    if (size > 65536) fail(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A comma-separated list field ("" and absent = empty list), entries trimmed. */
export function listField(req: FastifyRequest, name: string): string[] {
  const v = field(req, name);
  if (!v) return [];
  return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export function boolField(req: FastifyRequest, name: string, dflt: boolean): boolean {
  const v = field(req, name);
  if (v === undefined || v === '') return dflt;
  return v.toLowerCase() === 'true';
}

export function params(req: FastifyRequest): Record<string, string> {
  return req.params as Record<string, string>;
}

/**
 * Commit a change: the mutator runs on a private copy of the newest document and may throw
 * ApiError to refuse (nothing is written); a lost race re-runs it on the newer document.
 */
export async function commit<T>(ctx: ApiContext, mutator: ConfigMutator<T>): Promise<UpdateResult<T>> {
  try {
    return await ctx.store.update(mutator);
  } catch (e) {
    if (e instanceof ConfigStoreError) {
      if (e.kind === 'invalid') fail(400, e.message);
      if (e.kind === 'conflict' || e.kind === 'timeout' || e.kind === 'lock-lost') fail(503, `configuration busy, retry: ${e.message}`);
    }
    throw e;
  }
}

export async function current(ctx: ApiContext): Promise<GatewayConfig> {
  return (await ctx.store.read()).config;
}

export function requireTarget(config: GatewayConfig, iqn: string): TargetConfig {
  const t = config.targets[iqn];
  if (!t) fail(404, `Target ${iqn} does not exist`);
  return t;
}

/** Refuse a change that would break sessions, naming them (from the running-state view). */
export async function refuseIfDisruptive(ctx: ApiContext, change: DisruptiveChange): Promise<void> {
  if (!ctx.running) return;
  try {
    await ctx.running.refuseIfDisruptive(change);
  } catch (e) {
    if (e instanceof DisruptiveChangeError) fail(400, e.message);
    throw e;
  }
}

/** ImageErrors as HTTP answers. */
export function imageFailure(e: unknown, what: string): never {
  if (e instanceof ImageError) {
    const status = e.kind === 'not-found' ? 404 : e.kind === 'io' ? 500 : e.kind === 'busy' ? 409 : 400;
    fail(status, `${what} - ${e.message}`);
  }
  throw e;
}

export interface RouteDoc {
  readonly url: string;
  readonly methods: string[];
  readonly doc: readonly string[];
}

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * Register a route and its description for GET /api. `doc[0]` is the one-line summary, the rest
 * the parameter lines (as rbd-target-api's docstrings). Paths with a segment starting with '_'
 * are internal and not listed.
 */
export class Routes {
  readonly docs: RouteDoc[] = [];

  constructor(private readonly app: FastifyInstance) {}

  add(methods: Array<'GET' | 'PUT' | 'DELETE'>, url: string, doc: readonly string[], handler: Handler): void {
    this.app.route({ method: methods, url, handler });
    const existing = this.docs.find((d) => d.url === url);
    if (existing) existing.methods.push(...methods);
    else this.docs.push({ url, methods: [...methods], doc });
  }
}

/** A JSON answer {"message": text} with status 200. */
export function ok(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(200).send({ message });
}
