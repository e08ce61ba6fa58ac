/**
 * The Prometheus endpoint, like ceph-iscsi's rbd-target-gw: `GET /metrics` in the text
 * exposition format, `GET /` a link page. Unlike rbd-target-gw it also answers while no target
 * is configured (a scrape target that 404s looks down), and gzips for scrapers that ask.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { Logger } from '../util/log';
import { GatewayMetrics, GatewayRegistryOptions } from './collectors';
import type { MetricsSource } from './source';

/** ceph-iscsi's prometheus_port. */
export const DEFAULT_METRICS_PORT = 9287;

const gzip = promisify(zlib.gzip);
/** Bodies smaller than this are sent as they are (compressing costs more than it saves). */
const GZIP_MIN_BYTES = 4096;

const INDEX = `<!DOCTYPE html>
<html><head><title>iSCSI gateway metrics</title></head>
<body><h1>iSCSI gateway metrics</h1><p><a href="/metrics">Metrics</a></p></body></html>
`;

export interface MetricsServerOptions extends GatewayRegistryOptions {
  /** Listen address ("::" or "0.0.0.0" for every interface). */
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly source: MetricsSource;
  readonly log: Logger;
}

export interface MetricsServer {
  readonly metrics: GatewayMetrics;
  /** The address actually bound. */
  address(): { host: string; port: number };
  close(): Promise<void>;
}

/** Start the endpoint; resolves once it listens, rejects if the address cannot be bound. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const metrics = new GatewayMetrics(options.source, options);
  const log = options.log.child({ component: 'metrics' });
  // One scrape at a time: each takes a snapshot, and two concurrent ones gain nothing.
  let queue: Promise<unknown> = Promise.resolve();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { message: `method ${req.method ?? ''} is not allowed` }, { Allow: 'GET, HEAD' });
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(INDEX);
      return;
    }
    if (path !== '/metrics') {
      sendJson(res, 404, { message: `no such resource; metrics are at /metrics` });
      return;
    }
    const acceptsGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const job = queue.then(async () => {
      const text = await metrics.scrape();
      let body = Buffer.from(text);
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': metrics.contentType };
      if (acceptsGzip && body.length >= GZIP_MIN_BYTES) {
        body = await gzip(body);
        headers['Content-Encoding'] = 'gzip';
      }
      headers['Content-Length'] = body.length;
      res.writeHead(200, headers).end(body);
    });
    queue = job.catch((err: unknown) => {
      log.error({ err }, 'collecting metrics failed');
      if (!res.headersSent) sendJson(res, 500, { message: 'could not collect metrics' });
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (): { host: string; port: number } => {
    const a = server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  };
  log.info({ address: bound() }, 'metrics endpoint listening');
  return {
    metrics,
    address: bound,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function sendJson(res: http.ServerResponse, status: number, body: { message: string }, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers }).end(text);
}
