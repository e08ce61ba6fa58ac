/**
 * REST API test helpers: an API server on a temporary data dir (file config store + embedded
 * images), and a small form-encoding HTTP client that can pick its source address (to test the
 * caller allow-list from 127.0.0.2) and speak TLS.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiServer, startApiServer } from '../../src/api/server';
import type { ApiSettings } from '../../src/api/context';
import { FileConfigStore } from '../../src/config/file-store';
import { ChapSecrets } from '../../src/config/secrets';
import { EmbeddedImageProvider } from '../../src/images/embedded';
import type { RunningState } from '../../src/daemon/running-state';
import { silentLogger } from '../../src/util/log';

export const TARGET = 'iqn.2003-01.com.example.iscsi-gw:ceph-igw';
export const CLIENT = 'iqn.1994-05.com.redhat:rh7-client';

export function apiSettings(over: Partial<ApiSettings> = {}): ApiSettings {
  return {
    api_user: 'admin',
    api_password: 'admin',
    api_secure: false,
    trusted_ip_list: [],
    minimum_gateways: 1,
    ssl_cert: '/nonexistent.crt',
    ssl_key: '/nonexistent.key',
    ...over,
  };
}

export interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

export interface CallOptions {
  readonly auth?: string | null;
  readonly localAddress?: string;
  readonly tls?: boolean;
}

/** One HTTP request with a form-encoded body (as gwcli/the Dashboard send). */
export function call(base: string, method: string, url: string, fields?: Record<string, string>, opts: CallOptions = {}): Promise<Reply> {
  const body = fields ? new URLSearchParams(fields).toString() : undefined;
  const headers: Record<string, string> = {};
  const auth = opts.auth === undefined ? 'admin:admin' : opts.auth;
  if (auth !== null) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const u = new URL(url, base);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method, headers, localAddress: opts.localAddress, rejectUnauthorized: false, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          parsed = {};
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface TestApi {
  readonly dir: string;
  readonly server: ApiServer;
  readonly store: FileConfigStore;
  readonly images: EmbeddedImageProvider;
  readonly url: string;
  call(method: string, url: string, fields?: Record<string, string>, opts?: CallOptions): Promise<Reply>;
  close(): Promise<void>;
}

export async function startTestApi(options: {
  settings?: Partial<ApiSettings>;
  running?: RunningState;
  dir?: string;
  host?: string;
  secrets?: ChapSecrets;
  gatewayName?: string;
} = {}): Promise<TestApi> {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'igw-api-'));
  const store = new FileConfigStore(path.join(dir, 'gateway.json'));
  const images = await EmbeddedImageProvider.open(path.join(dir, 'store'));
  const server = await startApiServer({
    store,
    images,
    running: options.running,
    settings: apiSettings(options.settings),
    gatewayName: options.gatewayName ?? 'iscsi1',
    host: options.host ?? '127.0.0.1',
    port: 0,
    log: silentLogger(),
    secrets: options.secrets,
  });
  return {
    dir,
    server,
    store,
    images,
    url: server.url,
    call: (method, url, fields, opts) => call(server.url, method, url, fields, opts),
    close: async () => {
      await server.close();
      await store.close();
      await images.close();
    },
  };
}

/** The seed's target with two gateways (skipchecks as the Dashboard), ready for disks. */
export async function seedTarget(api: TestApi): Promise<void> {
  const steps: Array<[string, string, Record<string, string>?]> = [
    ['PUT', `/api/target/${TARGET}`],
    ['PUT', `/api/gateway/${TARGET}/iscsi1`, { ip_address: '127.0.0.1', skipchecks: 'true' }],
    ['PUT', `/api/gateway/${TARGET}/iscsi2`, { ip_address: '127.0.0.2', skipchecks: 'true' }],
  ];
  for (const [m, u, f] of steps) {
    const r = await api.call(m, u, f);
    if (r.status !== 200) throw new Error(`${m} ${u}: ${r.status} ${r.text}`);
  }
}
