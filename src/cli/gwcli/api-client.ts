/**
 * gwcli's REST client: form-encoded requests to the local gateway's API (rbd-target-api dialect),
 * HTTP Basic credentials and http/https from the same settings file as the daemon.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { GatewaySettings } from '../../config/settings';

export interface ApiReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** The API could not be reached at all (connection refused, timeout, TLS failure). */
export class ApiUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiUnreachableError';
  }
}

/** The API answered with a non-200 status; `message` is its {"message"} text. */
export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export type Fields = Record<string, string | undefined>;

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly user: string,
    private readonly password: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Client for the local API as the settings say (api_secure, api_port; api_host when not a wildcard). */
  static fromSettings(s: GatewaySettings, host?: string): ApiClient {
    const wild = s.api_host === '::' || s.api_host === '0.0.0.0' || s.api_host === '';
    let h = host ?? (wild ? 'localhost' : s.api_host);
    if (h.includes(':') && !h.startsWith('[')) h = `[${h}]`;
    return new ApiClient(`${s.api_secure ? 'https' : 'http'}://${h}:${s.api_port}`, s.api_user, s.api_password);
  }

  /** The same credentials and scheme against another host:port (another gateway's API). */
  at(host: string, port: number): ApiClient {
    const u = new URL(this.baseUrl);
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return new ApiClient(`${u.protocol}//${h}:${port}`, this.user, this.password, 3000);
  }

  get port(): number {
    const u = new URL(this.baseUrl);
    return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  }

  request(method: string, path: string, fields?: Fields): Promise<ApiReply> {
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) clean[k] = v;
    const body = fields ? new URLSearchParams(clean).toString() : undefined;
    const headers: Record<string, string> = {
      authorization: `Basic ${Buffer.from(`${this.user}:${this.password}`).toString('base64')}`,
    };
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const url = new URL(path, this.baseUrl);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      // Gateways use self-signed certificates; ceph-iscsi's gwcli does not verify either.
      const req = mod.request(url, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            const v: unknown = JSON.parse(text);
            if (v && typeof v === 'object' && !Array.isArray(v)) parsed = v as Record<string, unknown>;
          } catch {
            parsed = { message: text.trim() };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new ApiUnreachableError(`no answer within ${this.timeoutMs / 1000} s`)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof ApiUnreachableError ? e : new ApiUnreachableError(e.code ?? e.message)));
      req.end(body);
    });
  }

  /** A request that must succeed: the body on 200, else ApiCallError with the API's message. */
  async ok(method: string, path: string, fields?: Fields): Promise<Record<string, unknown>> {
    const r = await this.request(method, path, fields);
    if (r.status !== 200) {
      const m = typeof r.body.message === 'string' ? r.body.message : JSON.stringify(r.body);
      throw new ApiCallError(m, r.status);
    }
    return r.body;
  }
}

/** Path segment encoding for IQNs and names (':' stays readable, as rbd-target-api expects). */
export function seg(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%40/g, '@');
}
