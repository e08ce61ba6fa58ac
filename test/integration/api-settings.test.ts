/**
 * `serve --config FILE` runs the REST API as the settings file says: api_host/api_port, its
 * credentials (the defaults are refused), trusted_ip_list, and CHAP password encryption with
 * the key pair under ceph_config_dir (priv_key/pub_key), as iscsi-gateway.cfg does.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateChapKeyPair } from '../../src/config/secrets';
import { CLI, freePort, tempDir } from '../helpers/daemon';
import { call } from '../helpers/api';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:settings';
const HOST = 'iqn.1994-05.com.redhat:settings-client';

describe('serve --config: the API as the settings file says', () => {
  let proc: ChildProcess | undefined;
  after(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc!.on('exit', r));
    }
  });

  it('port, credentials, trusted_ip_list, encrypted CHAP passwords', async () => {
    const dir = tempDir();
    const etc = tempDir('igw-etc-');
    const keys = generateChapKeyPair();
    fs.writeFileSync(path.join(etc, 'iscsi-gateway.key'), keys.privateKey, { mode: 0o600 });
    fs.writeFileSync(path.join(etc, 'iscsi-gateway-pub.key'), keys.publicKey);
    const apiPort = await freePort();
    const portal = `127.0.0.1:${await freePort()}`;
    const cfg = path.join(etc, 'iscsi-gateway.cfg');
    fs.writeFileSync(cfg, [
      '[config]',
      'api_host = 127.0.0.1',
      `api_port = ${apiPort}`,
      'api_user = gwadmin',
      'api_password = not-the-default-1',
      'api_secure = false',
      'trusted_ip_list = 127.0.0.3,127.0.0.4',
      `ceph_config_dir = ${etc}`,
      '',
    ].join('\n'));
    proc = spawn(process.execPath, [CLI, 'serve', '--data', dir, '--name', 'iscsi1', '--portal', portal, '--config', cfg], {
      env: { ...process.env, ISCSI_GATEWAY_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!out.includes('REST API on')) {
      assert.ok(proc.exitCode === null && Date.now() < deadline, `serve did not start:\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const api = `http://127.0.0.1:${apiPort}`;
    assert.ok(out.includes(`REST API on ${api}`), out);
    const auth = 'gwadmin:not-the-default-1';
    assert.equal((await call(api, 'GET', '/api/targets', undefined, { auth: 'admin:admin' })).status, 401);
    assert.equal((await call(api, 'GET', '/api/targets', undefined, { auth })).status, 200);
    assert.equal((await call(api, 'GET', '/api/targets', undefined, { auth, localAddress: '127.0.0.3' })).status, 200, 'trusted_ip_list');
    const denied = await call(api, 'GET', '/api/targets', undefined, { auth, localAddress: '127.0.0.5' });
    assert.deepEqual([denied.status, denied.body], [403, { message: 'API access not available to 127.0.0.5' }]);

    for (const [m, u, f] of [
      ['PUT', `/api/target/${IQN}`, undefined],
      ['PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1' }],
      ['PUT', `/api/client/${IQN}/${HOST}`, undefined],
      ['PUT', `/api/clientauth/${IQN}/${HOST}`, { username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: 'mutualusername', mutual_password: 'mutualpassword1' }],
    ] as Array<[string, string, Record<string, string> | undefined]>) {
      const r = await call(api, m, u, f, { auth });
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    const onDisk = fs.readFileSync(path.join(dir, 'gateway.json'), 'utf8');
    assert.ok(!onDisk.includes('myiscsipassword') && !onDisk.includes('mutualpassword1'), 'CHAP passwords are encrypted at rest');
    const stored = JSON.parse(onDisk) as { targets: Record<string, { clients: Record<string, { auth: { password_encryption_enabled: boolean } }> }> };
    assert.equal(stored.targets[IQN].clients[HOST].auth.password_encryption_enabled, true);
    const plain = (await call(api, 'GET', '/api/config?decrypt_passwords=true', undefined, { auth })).body as typeof stored & {
      targets: Record<string, { clients: Record<string, { auth: { password: string; mutual_password: string } }> }>;
    };
    assert.equal(plain.targets[IQN].clients[HOST].auth.password, 'myiscsipassword');
    assert.equal(plain.targets[IQN].clients[HOST].auth.mutual_password, 'mutualpassword1');
    assert.ok(!err.includes('myiscsipassword'), 'no password in the logs');
  });
});
