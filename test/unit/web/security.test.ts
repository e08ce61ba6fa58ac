/**
 * The dashboard's access rules on a real API server (port 0, temporary data dir): without a
 * session every page redirects to the login form and every API route answers 401; the session
 * cookie's attributes; a state-changing request that comes with the cookie needs the session's
 * CSRF token and this server's Origin/Referer (forged cross-site requests are refused and change
 * nothing); login CSRF; logout ends the session; Basic-auth clients (gwcli, Ceph Dashboard) work
 * unchanged; repeated failed logins are throttled.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { startTestApi, TestApi } from '../../helpers/api';
import { PAGES } from '../../../src/web/pages';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown>;
}

function request(base: string, method: string, url: string, o: { headers?: Record<string, string>; form?: Record<string, string> } = {}): Promise<Answer> {
  const body = o.form ? new URLSearchParams(o.form).toString() : undefined;
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const u = new URL(url, base);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { method, headers, agent: false, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // HTML
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const TARGET = 'iqn.2003-01.com.example:web-sec';

describe('web dashboard access control', () => {
  let api: TestApi;
  let base: string;
  let origin: string;
  const login = async (): Promise<{ cookie: string; csrf: string }> => {
    const r = await request(base, 'POST', '/ui/login', { headers: { origin }, form: { username: 'admin', password: 'admin', next: '/ui/targets' } });
    assert.equal(r.status, 303, r.text);
    const set = String(r.headers['set-cookie']?.[0] ?? '');
    const cookie = set.split(';')[0];
    const s = await request(base, 'GET', '/ui/session', { headers: { cookie } });
    return { cookie, csrf: String(s.json.csrf) };
  };

  before(async () => {
    api = await startTestApi();
    base = api.url;
    origin = base;
  });
  after(async () => {
    await api.close();
  });

  it('without a session every page redirects to the login form, which needs nothing', async () => {
    for (const p of ['/', '/ui', ...PAGES, '/ui/targets/iqn.2003-01.com.example:x', '/ui/targets/_new', '/ui/app.js', '/ui/app.css', '/ui/index.html', '/ui/session']) {
      const r = await request(base, 'GET', p);
      assert.equal(r.status, 302, `${p}: ${r.status}`);
      assert.match(String(r.headers.location), /^\/ui\/(login|overview)/, p);
      if (p !== '/' && p !== '/ui') assert.match(String(r.headers.location), /^\/ui\/login\?next=/, p);
    }
    const form = await request(base, 'GET', '/ui/login');
    assert.equal(form.status, 200);
    assert.match(form.text, /<form method="post" action="\/ui\/login">/);
    assert.match(String(form.headers['content-security-policy']), /frame-ancestors 'none'/);
    // A state-changing page request without a session: 401, no redirect.
    assert.equal((await request(base, 'POST', '/ui/logout', { headers: { origin } })).status, 401);
  });

  it('without credentials or a session every API route answers 401', async () => {
    const index = (await request(base, 'GET', '/api')).json.api as Array<[string, string]>;
    assert.ok(index.length > 25, `the route index lists the routes: ${index.length}`);
    let checked = 0;
    for (const [line, methods] of index) {
      const url = line.split(' : ')[0].replace(/<[a-z_]+>/g, (m) => (m.includes('iqn') ? TARGET : 'x'));
      if (url === '/api') continue;
      for (const m of methods.replace('Methods: ', '').split(',')) {
        const r = await request(base, m, url, m === 'GET' ? {} : { form: { mode: 'create' } });
        assert.equal(r.status, 401, `${m} ${url}: ${r.status} ${r.text}`);
        assert.equal(r.json.message, 'Missing credentials');
        checked++;
      }
    }
    assert.ok(checked > 35, `${checked} route/method pairs`);
    for (const p of ['/api/dashboard', '/api/dashboard/stats', '/api/dashboard/sessions', '/api/dashboard/disks']) {
      assert.equal((await request(base, 'GET', p)).status, 401, p);
    }
    // A made-up cookie is no session.
    assert.equal((await request(base, 'GET', '/api/targets', { headers: { cookie: 'igw_session=forged' } })).status, 401);
  });

  it('login: wrong password refused with the API message; the cookie is HttpOnly, SameSite=Strict, server-side', async () => {
    const bad = await request(base, 'POST', '/ui/login', { headers: { origin }, form: { username: 'admin', password: 'nope' } });
    assert.equal(bad.status, 401);
    assert.match(bad.text, /username\/password mismatch with the configuration file/);
    assert.equal(bad.headers['set-cookie'], undefined);
    const r = await request(base, 'POST', '/ui/login', { headers: { origin }, form: { username: 'admin', password: 'admin', next: '//evil.example/x' } });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/ui/overview', 'an off-site next is not followed');
    const set = String(r.headers['set-cookie']?.[0] ?? '');
    assert.match(set, /^igw_session=[A-Za-z0-9_-]{43}; /);
    assert.match(set, /; HttpOnly/);
    assert.match(set, /; SameSite=Strict/);
    assert.match(set, /; Path=\//);
    assert.doesNotMatch(set, /; Secure/, 'plain HTTP (api_secure false): no Secure flag');
    const cookie = set.split(';')[0];
    assert.equal((await request(base, 'GET', '/ui/overview', { headers: { cookie } })).status, 200);
    assert.equal((await request(base, 'GET', '/api/targets', { headers: { cookie } })).status, 200);
  });

  it('a forged cross-site request with the cookie is refused and changes nothing', async () => {
    const { cookie, csrf } = await login();
    const epoch = async () => ((await api.call('GET', '/api/config')).body as { epoch: number }).epoch;
    const e0 = await epoch();
    const forged: Array<[string, Record<string, string>]> = [
      ['no token, own origin', { cookie, origin }],
      ['wrong token, own origin', { cookie, origin, 'x-csrf-token': 'A'.repeat(43) }],
      ['right token, foreign origin', { cookie, origin: 'http://evil.example', 'x-csrf-token': csrf }],
      ['no token, foreign origin', { cookie, origin: 'http://evil.example' }],
      ['right token, no Origin nor Referer', { cookie, 'x-csrf-token': csrf }],
      ['right token, foreign Referer', { cookie, referer: 'http://evil.example/page', 'x-csrf-token': csrf }],
    ];
    for (const [what, headers] of forged) {
      for (const [m, u] of [['PUT', `/api/target/${TARGET}`], ['DELETE', '/api/disk/rbd/x'], ['PUT', '/api/disk/rbd/x']] as const) {
        const r = await request(base, m, u, { headers, form: { mode: 'create', size: '1M', preserve_image: 'true' } });
        assert.equal(r.status, 403, `${what}: ${m} ${u}: ${r.status} ${r.text}`);
        assert.match(String(r.json.message), /^cross-site request refused: /, what);
      }
    }
    assert.equal(await epoch(), e0, 'the refused requests changed nothing');
    // The same request from the dashboard itself goes through.
    const ok = await request(base, 'PUT', `/api/target/${TARGET}`, { headers: { cookie, origin, 'x-csrf-token': csrf } });
    assert.equal(ok.status, 200, ok.text);
    const viaReferer = await request(base, 'PUT', `/api/target/${TARGET}`, { headers: { cookie, referer: `${base}/ui/targets`, 'x-csrf-token': csrf } });
    assert.equal(viaReferer.status, 200, viaReferer.text);
    // The token of one session is not valid for another.
    const other = await login();
    assert.equal((await request(base, 'PUT', `/api/target/${TARGET}`, { headers: { cookie: other.cookie, origin, 'x-csrf-token': csrf } })).status, 403);
  });

  it('login from a foreign page is refused (login CSRF)', async () => {
    const r = await request(base, 'POST', '/ui/login', { headers: { origin: 'http://evil.example' }, form: { username: 'admin', password: 'admin' } });
    assert.equal(r.status, 403);
    assert.equal(r.headers['set-cookie'], undefined);
  });

  it('logout needs the token and ends the session on the server', async () => {
    const { cookie, csrf } = await login();
    assert.equal((await request(base, 'POST', '/ui/logout', { headers: { cookie, origin } })).status, 403);
    assert.equal((await request(base, 'GET', '/api/targets', { headers: { cookie } })).status, 200, 'a refused logout leaves the session');
    const out = await request(base, 'POST', '/ui/logout', { headers: { cookie, origin, 'x-csrf-token': csrf } });
    assert.equal(out.status, 303);
    assert.match(String(out.headers['set-cookie']?.[0]), /^igw_session=;/);
    assert.equal((await request(base, 'GET', '/api/targets', { headers: { cookie } })).status, 401, 'the old cookie is worth nothing');
    assert.equal((await request(base, 'GET', '/ui/overview', { headers: { cookie } })).status, 302);
  });

  it('Basic-auth clients (gwcli, Ceph Dashboard) work unchanged: no CSRF token, no Origin', async () => {
    const r = await api.call('PUT', `/api/target/${TARGET}-basic`);
    assert.equal(r.status, 200, r.text);
    const wrong = await api.call('GET', '/api/targets', undefined, { auth: 'admin:bad' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.message, 'username/password mismatch with the configuration file');
  });

  it('repeated failed logins from one address are throttled', async () => {
    const fresh = await startTestApi();
    try {
      const o = fresh.url;
      for (let i = 0; i < 5; i++) assert.equal((await request(o, 'POST', '/ui/login', { headers: { origin: o }, form: { username: 'admin', password: `bad${i}` } })).status, 401);
      const r = await request(o, 'POST', '/ui/login', { headers: { origin: o }, form: { username: 'admin', password: 'admin' } });
      assert.equal(r.status, 429);
      assert.match(r.text, /Too many failed logins/);
      const overview = await fresh.call('GET', '/api/dashboard');
      assert.ok((overview.body.alerts as Array<{ kind: string }>).some((a) => a.kind === 'failed-logins'), 'the overview alerts on failed logins');
    } finally {
      await fresh.close();
    }
  });

  it('with api_secure (HTTPS) the cookie is also Secure and the origin must be https://', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-web-tls-'));
    const key = path.join(dir, 'k.pem');
    const crt = path.join(dir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', crt], { stdio: 'ignore' });
    const tls = await startTestApi({ settings: { api_secure: true, ssl_cert: crt, ssl_key: key } });
    try {
      const o = tls.url;
      assert.match(o, /^https:/);
      const plainOrigin = o.replace('https:', 'http:');
      assert.equal((await request(o, 'POST', '/ui/login', { headers: { origin: plainOrigin }, form: { username: 'admin', password: 'admin' } })).status, 403, 'an http:// origin is another origin');
      const r = await request(o, 'POST', '/ui/login', { headers: { origin: o }, form: { username: 'admin', password: 'admin' } });
      assert.equal(r.status, 303, r.text);
      const set = String(r.headers['set-cookie']?.[0] ?? '');
      assert.match(set, /; Secure/);
      assert.match(set, /; HttpOnly/);
      assert.match(set, /; SameSite=Strict/);
    } finally {
      await tls.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
