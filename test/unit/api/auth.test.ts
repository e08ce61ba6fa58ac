/**
 * Who may use the API: Basic credentials (401 messages of rbd-target-api), the caller
 * allow-list (403 from 127.0.0.2 when it is not trusted), sysinfo with credentials only, the
 * unauthenticated index, default credentials only on loopback, and TLS when api_secure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildApi } from '../../../src/api/server';
import { ChapSecrets } from '../../../src/config/secrets';
import { FileConfigStore } from '../../../src/config/file-store';
import { EmbeddedImageProvider } from '../../../src/images/embedded';
import { silentLogger } from '../../../src/util/log';
import { TARGET, apiSettings, seedTarget, startTestApi } from '../../helpers/api';

test('no credentials 401, wrong credentials 401; the refused request changes nothing', async () => {
  const api = await startTestApi();
  try {
    const before = await api.store.read();
    let r = await api.call('PUT', `/api/target/${TARGET}`, undefined, { auth: null });
    assert.deepEqual([r.status, r.body], [401, { message: 'Missing credentials' }]);
    r = await api.call('PUT', `/api/target/${TARGET}`, undefined, { auth: 'admin:wrong' });
    assert.deepEqual([r.status, r.body], [401, { message: 'username/password mismatch with the configuration file' }]);
    r = await api.call('GET', '/api/sysinfo/hostname', undefined, { auth: null });
    assert.deepEqual([r.status, r.body], [401, { message: 'Missing credentials' }]);
    const after = await api.store.read();
    assert.equal(after.epoch, before.epoch);
    // Never written (epoch 0): each read makes the empty document afresh, stamped with the time.
    const unstamped = (c: typeof after.config) => ({ ...c, created: '', updated: '' });
    assert.deepEqual(unstamped(after.config), unstamped(before.config));
    r = await api.call('GET', '/api', undefined, { auth: null });
    assert.equal(r.status, 200);
  } finally {
    await api.close();
  }
});

test('an untrusted caller address gets 403; trusted_ip_list, portal IPs and sysinfo let it in', async () => {
  const api = await startTestApi({ settings: { trusted_ip_list: ['127.0.0.9'] } });
  try {
    const before = await api.store.read();
    let r = await api.call('PUT', `/api/target/${TARGET}`, undefined, { localAddress: '127.0.0.2' });
    assert.deepEqual([r.status, r.body], [403, { message: 'API access not available to 127.0.0.2' }]);
    r = await api.call('GET', '/api/config', undefined, { localAddress: '127.0.0.2', auth: null });
    assert.equal(r.status, 403, 'the address is checked before the credentials');
    assert.equal((await api.store.read()).epoch, before.epoch);
    // sysinfo needs only the credentials (a new gateway asks before it is known).
    r = await api.call('GET', '/api/sysinfo/hostname', undefined, { localAddress: '127.0.0.2' });
    assert.deepEqual([r.status, r.body], [200, { data: 'iscsi1' }]);
    r = await api.call('GET', '/api/targets', undefined, { localAddress: '127.0.0.9' });
    assert.equal(r.status, 200, 'trusted_ip_list');
    r = await api.call('GET', '/api/targets', undefined, { localAddress: '127.0.0.1' });
    assert.equal(r.status, 200, 'localhost');
    // Once 127.0.0.2 is a portal IP of a gateway, that gateway may call (as ceph-iscsi).
    await seedTarget(api);
    r = await api.call('GET', '/api/targets', undefined, { localAddress: '127.0.0.2' });
    assert.equal(r.status, 200);
  } finally {
    await api.close();
  }
});

test('default credentials are refused when the API listens beyond loopback', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-api-'));
  const store = new FileConfigStore(path.join(dir, 'gateway.json'));
  const images = await EmbeddedImageProvider.open(path.join(dir, 'store'));
  const base = { store, images, gatewayName: 'iscsi1', secrets: ChapSecrets.none(), log: silentLogger(), checkconf: () => 'x' };
  const open = buildApi({ ...base, settings: apiSettings(), loopbackOnly: false });
  const auth = `Basic ${Buffer.from('admin:admin').toString('base64')}`;
  try {
    let r = await open.inject({ method: 'GET', url: '/api/targets', headers: { authorization: auth }, remoteAddress: '127.0.0.1' });
    assert.equal(r.statusCode, 401);
    assert.match(JSON.parse(r.body).message, /default credentials admin\/admin are accepted only while the API listens on loopback/);
    const custom = buildApi({ ...base, settings: apiSettings({ api_user: 'root', api_password: 's3cret-enough' }), loopbackOnly: false });
    r = await custom.inject({ method: 'GET', url: '/api/targets', headers: { authorization: `Basic ${Buffer.from('root:s3cret-enough').toString('base64')}` }, remoteAddress: '127.0.0.1' });
    assert.equal(r.statusCode, 200);
    await custom.close();
  } finally {
    await open.close();
    await store.close();
    await images.close();
  }
});

test('api_secure: TLS with the cert/key files; missing files refuse to start', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-tls-'));
  const crt = path.join(dir, 'iscsi-gateway.crt');
  const key = path.join(dir, 'iscsi-gateway.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', crt], { stdio: 'ignore' });
  const api = await startTestApi({ settings: { api_secure: true, ssl_cert: crt, ssl_key: key } });
  try {
    assert.match(api.url, /^https:/);
    const r = await api.call('GET', '/api/targets');
    assert.deepEqual([r.status, r.body], [200, { targets: [] }]);
  } finally {
    await api.close();
  }
  await assert.rejects(startTestApi({ settings: { api_secure: true, ssl_cert: path.join(dir, 'none.crt'), ssl_key: key } }), /Secure API requested/);
});

test('bodies: a JSON body works like form fields; an unsupported content type is a 415 with a message', async () => {
  const api = await startTestApi();
  try {
    const app = api.server.app;
    const auth = `Basic ${Buffer.from('admin:admin').toString('base64')}`;
    let r = await app.inject({ method: 'PUT', url: `/api/target/${TARGET}`, headers: { authorization: auth, 'content-type': 'application/json' }, payload: { controls: { cmdsn_depth: 32 } }, remoteAddress: '127.0.0.1' });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual((await api.store.read()).config.targets[TARGET].controls, { cmdsn_depth: 32 });
    const before = (await api.store.read()).epoch;
    r = await app.inject({ method: 'PUT', url: `/api/target/${TARGET}`, headers: { authorization: auth, 'content-type': 'text/plain' }, payload: 'mode=reconfigure', remoteAddress: '127.0.0.1' });
    assert.equal(r.statusCode, 415);
    assert.equal(typeof JSON.parse(r.body).message, 'string');
    r = await app.inject({ method: 'PUT', url: `/api/target/${TARGET}`, headers: { authorization: auth, 'content-type': 'application/json' }, payload: '{not json', remoteAddress: '127.0.0.1' });
    assert.equal(r.statusCode, 400);
    assert.equal(typeof JSON.parse(r.body).message, 'string');
    assert.equal((await api.store.read()).epoch, before);
  } finally {
    await api.close();
  }
});
