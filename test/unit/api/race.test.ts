/**
 * Two API servers in two processes on one shared config, 100 interleaved changes (50 through
 * each, concurrently): compare-and-swap loses none of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileConfigStore } from '../../../src/config/file-store';
import { TARGET, call } from '../../helpers/api';

function startChild(dir: string, name: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [path.join(__dirname, '..', '..', 'helpers', 'api-child.js'), dir, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('API child did not start')), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /url (\S+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] });
      }
    });
    proc.on('exit', (code) => reject(new Error(`API child exited with ${code}`)));
  });
}

test('two API processes, 100 interleaved changes: none lost', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-race-'));
  const a = await startChild(dir, 'iscsi1');
  const b = await startChild(dir, 'iscsi2');
  try {
    assert.equal((await call(a.url, 'PUT', `/api/target/${TARGET}`)).status, 200);
    assert.equal((await call(b.url, 'PUT', `/api/gateway/${TARGET}/iscsi1`, { ip_address: '127.0.0.1', skipchecks: 'true' })).status, 200);
    const store = new FileConfigStore(path.join(dir, 'gateway.json'));
    const start = (await store.read()).epoch;
    const writer = async (url: string, tag: string) => {
      for (let i = 0; i < 50; i++) {
        const r = await call(url, 'PUT', `/api/client/${TARGET}/iqn.2024-01.com.example:${tag}-${i}`);
        assert.equal(r.status, 200, r.text);
      }
    };
    await Promise.all([writer(a.url, 'a'), writer(b.url, 'b')]);
    const end = await store.read();
    const clients = Object.keys(end.config.targets[TARGET].clients);
    assert.equal(clients.length, 100);
    for (const tag of ['a', 'b']) for (let i = 0; i < 50; i++) assert.ok(clients.includes(`iqn.2024-01.com.example:${tag}-${i}`), `${tag}-${i}`);
    assert.equal(end.epoch, start + 100, 'one commit per change');
    await store.close();
  } finally {
    a.proc.kill('SIGTERM');
    b.proc.kill('SIGTERM');
  }
});
