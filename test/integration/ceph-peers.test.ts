/**
 * Gateways on different hosts share only the Ceph cluster: their status documents, dashboard
 * counters and messages go through RADOS (src/ha/rados-peer-plane.ts), not the data dir.
 *
 * - The plane itself (in this process, on the test cluster): a message reaches a watching
 *   gateway by notify in milliseconds (latency measured), waits in the durable queue while its
 *   addressee is away and is delivered when it watches again, and the bounds hold (message
 *   size, queue length: a full inbox is refused, stale messages make room).
 * - Two gateway daemons with SEPARATE data dirs (as on two hosts) on one cluster: a session
 *   logged in to iscsi2 is listed by iscsi1's API and dashboard API; deleting the target or the
 *   disk through iscsi1 is refused naming that session on iscsi2; a drain ordered through
 *   iscsi1's API reaches iscsi2 (and the resume); iscsi1's metrics say iscsi2 is up; iscsi2
 *   SIGKILLed -> iscsi1 reports it down within DOWN_AFTER_MS (+1 s), and peer_up 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cephPool, cephSettingsFromEnv, closeCeph } from '../../src/ceph/settings';
import { DOWN_AFTER_MS, HEARTBEAT_MS } from '../../src/daemon/status';
import { MAX_MESSAGE_AGE_MS } from '../../src/ha/inbox';
import { MAX_MESSAGE_BYTES, MAX_QUEUED_MESSAGES, PeerPlaneError } from '../../src/ha/peer-plane';
import { RadosPeerPlane } from '../../src/ha/rados-peer-plane';
import { RadosObject } from '../../src/ceph/rados-object';
import { call } from '../helpers/api';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { freePort, tempDir } from '../helpers/daemon';
import { GatewayProcess } from '../helpers/gateways';
import { TestInitiator } from '../helpers/initiator';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:peers';
const HOST = 'iqn.1994-05.com.example:peers-host';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Poll `fn` every 10 ms until it returns a value; fails after `ms`. */
async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

describe('the gateway-to-gateway plane through RADOS', () => {
  let cluster: TestCephCluster;
  const gws: GatewayProcess[] = [];

  before(async () => {
    cluster = await startCephCluster();
    process.env.CEPH_CONF = cluster.cephConf;
  });
  after(async () => {
    for (const g of gws) await g.stop();
    await closeCeph();
    delete process.env.CEPH_CONF;
    await cluster?.stop();
  });

  it('delivers messages by notify, keeps them for an absent gateway, and holds its bounds', async () => {
    const ceph = cephSettingsFromEnv();
    assert.ok(ceph);
    const io = await cephPool(ceph, ceph.pool);
    const a = new RadosPeerPlane(io, ceph.pool, 'plane-test.conf', { safetyPollMs: 60_000 });
    const b = new RadosPeerPlane(io, ceph.pool, 'plane-test.conf', { safetyPollMs: 60_000 });
    try {
      // b watches its inbox; a's messages wake it (the safety read is a minute away: only the notify explains it).
      let woke = 0;
      let wakeAt = 0;
      b.onMessage('gw-b', () => {
        woke++;
        wakeAt = Date.now();
      });
      await until('b watches its inbox', 10_000, async () => (woke > 0 ? true : undefined));
      assert.deepEqual(await b.take('gw-b'), []);
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const before = woke;
        const sent = Date.now();
        await a.send('gw-b', { kind: 'take', disk: `rbd/d${i}`, from: 'gw-a', at: sent });
        await until('woken', 5000, async () => (woke > before ? true : undefined));
        const got = await b.take('gw-b');
        latencies.push(Date.now() - sent);
        assert.deepEqual(got, [{ kind: 'take', disk: `rbd/d${i}`, from: 'gw-a', at: sent }]);
        assert.ok(wakeAt >= sent);
      }
      process.stdout.write(`# RADOS plane message delivery (send -> notify -> take), 20 messages: median ${median(latencies)} ms, max ${Math.max(...latencies)} ms\n`);
      assert.deepEqual(await b.take('gw-b'), [], 'nothing twice');

      // An absent addressee (no watch): messages wait in the queue, in order, until it reads.
      const t = Date.now();
      await a.send('gw-c', { kind: 'drain', from: 'gw-a', at: t });
      await a.send('gw-c', { kind: 'resume', from: 'gw-a', at: t + 1 });
      const c = new RadosPeerPlane(io, ceph.pool, 'plane-test.conf', { safetyPollMs: 60_000 });
      let cWoke = false;
      c.onMessage('gw-c', () => (cWoke = true));
      await until('c watches', 10_000, async () => (cWoke ? true : undefined));
      assert.deepEqual((await c.take('gw-c')).map((m) => m.kind), ['drain', 'resume']);
      await c.close();

      // Bounds: a message too large, a full inbox (stale ones make room, fresh ones do not).
      await assert.rejects(a.send('gw-d', { kind: 'take', disk: 'x'.repeat(MAX_MESSAGE_BYTES), from: 'gw-a', at: Date.now() }),
        (e: unknown) => e instanceof PeerPlaneError && e.reason === 'too-large');
      const inbox = new RadosObject(io, ceph.pool, 'plane-test.conf.inbox.gw-d');
      const fill = (at: number) => new Map(Array.from({ length: MAX_QUEUED_MESSAGES }, (_, i) => [
        `${at.toString().padStart(15, '0')}-${i.toString(16).padStart(8, '0')}`, Buffer.from(JSON.stringify({ kind: 'resume', from: 'gw-a', at })),
      ]));
      await inbox.omapSet(fill(Date.now()));
      await assert.rejects(a.send('gw-d', { kind: 'drain', from: 'gw-a', at: Date.now() }),
        (e: unknown) => e instanceof PeerPlaneError && e.reason === 'full' && /inbox of gateway gw-d is full \(256 messages waiting\)/.test(e.message));
      await a.clear('gw-d');
      await inbox.omapSet(fill(Date.now() - MAX_MESSAGE_AGE_MS - 1000));
      await a.send('gw-d', { kind: 'drain', from: 'gw-a', at: Date.now() });
      assert.deepEqual((await a.take('gw-d')).map((m) => m.kind), ['drain'], 'the stale messages were dropped, the new one delivered');

      // Documents: one entry per gateway, oversized ones refused.
      await a.publish('status', 'gw-a', { name: 'gw-a', heartbeat: Date.now() });
      await b.publish('status', 'gw-b', { name: 'gw-b', heartbeat: Date.now() });
      assert.deepEqual((await a.read('status')).map((d) => (d as { name: string }).name).sort(), ['gw-a', 'gw-b']);
      await assert.rejects(a.publish('status', 'gw-a', { name: 'gw-a', pad: 'p'.repeat(1024 * 1024) }), (e: unknown) => e instanceof PeerPlaneError && e.reason === 'too-large');
      await b.withdraw('status', 'gw-b');
      assert.deepEqual((await a.read('status')).map((d) => (d as { name: string }).name), ['gw-a']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two gateways with separate data dirs see each other through RADOS: sessions, refusals, drain, down, peer_up', async () => {
    const port = await freePort();
    const names = ['iscsi1', 'iscsi2'] as const;
    const ips = { iscsi1: '127.0.0.1', iscsi2: '127.0.0.2' };
    const apis: Record<string, string> = {};
    const metrics: Record<string, string> = {};
    const dirs: Record<string, string> = {};
    const env = { CEPH_CONF: cluster.cephConf, ISCSI_GATEWAY_LOG: 'warn' };
    for (const name of names) {
      const dir = tempDir('igw-peers-');
      dirs[name] = dir;
      const apiPort = await freePort();
      const metricsPort = await freePort();
      apis[name] = `http://${ips[name]}:${apiPort}`;
      metrics[name] = `http://${ips[name]}:${metricsPort}/metrics`;
      const cfg = path.join(dir, 'iscsi-gateway.cfg');
      fs.writeFileSync(cfg, '[config]\ncluster_name = ceph\napi_secure = false\n');
      const g = await GatewayProcess.start(dir, name, `${ips[name]}:${port}`, `${ips[name]}:${apiPort}`, {
        args: ['--config', cfg, '--metrics', `${ips[name]}:${metricsPort}`], env,
      });
      gws.push(g);
      assert.match(g.out, /gateways meet in rados:rbd\/gateway\.conf\.\{status,live,inbox\.\*\}/, g.out);
    }
    const [api1, api2] = [apis.iscsi1, apis.iscsi2];

    for (const [m, u, f] of [
      ['PUT', `/api/target/${IQN}`, undefined],
      ['PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', nosync: 'false', skipchecks: 'true' }],
      ['PUT', `/api/gateway/${IQN}/iscsi2`, { ip_address: '127.0.0.2', nosync: 'false', skipchecks: 'true' }],
      ['PUT', '/api/disk/rbd/peers1', { mode: 'create', size: '16M' }],
      ['PUT', `/api/targetlun/${IQN}`, { disk: 'rbd/peers1' }],
      ['PUT', `/api/client/${IQN}/${HOST}`, undefined],
      ['PUT', `/api/clientlun/${IQN}/${HOST}`, { disk: 'rbd/peers1' }],
    ] as const) {
      const r = await call(api1, m, u, f);
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    // Both see each other up through RADOS (nothing of the other in its own data dir).
    for (const [via, other] of [[api1, 'iscsi2'], [api2, 'iscsi1']] as const) {
      await until(`${other} up through ${via}`, 10_000, async () => {
        const r = await call(via, 'GET', `/api/drain/${other}`);
        return r.status === 200 && r.body.up === true ? true : undefined;
      });
    }
    // iscsi2 has applied the set-up (its applied epoch, as iscsi1's dashboard reads it from RADOS).
    const epoch = (await call(api1, 'GET', '/api/config')).body.epoch as number;
    await until('iscsi2 applied the set-up', 10_000, async () => {
      const r = await call(api1, 'GET', '/api/dashboard');
      const row = (r.body.gateways as Array<{ name: string; applied_epoch?: number }>).find((g) => g.name === 'iscsi2');
      return (row?.applied_epoch ?? -1) >= epoch ? true : undefined;
    });
    assert.equal(fs.existsSync(path.join(dirs.iscsi1, 'status', 'iscsi2.json')), false, 'iscsi2 status is not in iscsi1 data dir');
    assert.equal(fs.existsSync(path.join(dirs.iscsi2, 'ha', 'inbox')), false, 'no data-dir inbox');

    // A session on iscsi2, seen through iscsi1's API (status propagation time measured).
    const ini = await TestInitiator.connect(port, '127.0.0.2', '127.0.0.3');
    try {
      await ini.login({ initiatorName: HOST, targetName: IQN });
      const loggedIn = Date.now();
      const info = await until('the session on iscsi2 in iscsi1 clientinfo', 3 * HEARTBEAT_MS + 2000, async () => {
        const r = await call(api1, 'GET', `/api/clientinfo/${IQN}/${HOST}`);
        assert.equal(r.status, 200, r.text);
        const st = r.body.state as Record<string, string[]>;
        return st.LOGGED_IN?.includes('iscsi2') ? r.body : undefined;
      });
      const propagation = Date.now() - loggedIn;
      process.stdout.write(`# status propagation (login on iscsi2 -> listed by iscsi1's API): ${propagation} ms (heartbeat ${HEARTBEAT_MS} ms)\n`);
      assert.deepEqual(info.ip_address, ['127.0.0.3'], 'the initiator address as iscsi2 saw it');

      // The dashboard API of iscsi1 lists it too, with its negotiated parameters (the live channel).
      const dash = await until('the session in iscsi1 dashboard', 3 * HEARTBEAT_MS + 4000, async () => {
        const r = await call(api1, 'GET', '/api/dashboard/sessions');
        assert.equal(r.status, 200, r.text);
        const list = r.body.sessions as Array<{ gateway: string; initiator: string; luns: Array<{ disk: string }>; parameters: Record<string, unknown> }>;
        return list.find((s) => s.gateway === 'iscsi2' && s.initiator === HOST);
      });
      assert.deepEqual(dash.luns.map((l) => l.disk), ['rbd/peers1']);
      assert.equal(typeof dash.parameters.MaxBurstLength, 'number');
      const overview = await call(api1, 'GET', '/api/dashboard');
      assert.equal(overview.status, 200, overview.text);

      // Disruptive changes through iscsi1 are refused, naming the session on iscsi2.
      const delTarget = await call(api1, 'DELETE', `/api/target/${IQN}`);
      assert.ok(delTarget.status >= 400 && delTarget.status < 500, delTarget.text);
      assert.match(String(delTarget.body.message), new RegExp(`${HOST.replace(/\./g, '\\.')} on iscsi2`), delTarget.text);
      const delLun = await call(api1, 'DELETE', `/api/targetlun/${IQN}`, { disk: 'rbd/peers1' });
      assert.ok(delLun.status >= 400 && delLun.status < 500, delLun.text);
      assert.match(String(delLun.body.message), /rbd\/peers1 is in use: .* on iscsi2/, delLun.text);
      const delClient = await call(api1, 'DELETE', `/api/client/${IQN}/${HOST}`);
      assert.ok(delClient.status >= 400 && delClient.status < 500, delClient.text);
      assert.match(String(delClient.body.message), /on iscsi2/, delClient.text);

      // A drain ordered through iscsi1 reaches iscsi2 (its inbox in RADOS), and so does the resume.
      const t0 = Date.now();
      const drained = await call(api1, 'PUT', `/api/drain/iscsi2`);
      const drainMs = Date.now() - t0;
      assert.equal(drained.status, 200, drained.text);
      assert.equal(drained.body.draining, true);
      const local = await call(api2, 'GET', '/api/drain/iscsi2');
      assert.equal(local.body.draining, true, 'iscsi2 itself says it is draining');
      const t1 = Date.now();
      const resumed = await call(api1, 'DELETE', `/api/drain/iscsi2`);
      const resumeMs = Date.now() - t1;
      assert.equal(resumed.status, 200, resumed.text);
      assert.equal((await call(api2, 'GET', '/api/drain/iscsi2')).body.draining, false);
      process.stdout.write(`# drain ordered through iscsi1 for iscsi2, until iscsi1 sees it draining: ${drainMs} ms; resume: ${resumeMs} ms\n`);
    } finally {
      ini.close();
    }

    const peerUp = async (): Promise<string | undefined> => {
      const r = await fetch(metrics.iscsi1);
      const text = await r.text();
      return /^iscsi_gateway_peer_up\{[^}]*peer="iscsi2"[^}]*\} (\d)/m.exec(text)?.[1];
    };
    assert.equal(await until('peer_up of iscsi2', 3 * HEARTBEAT_MS, async () => ((await peerUp()) === '1' ? '1' : undefined)), '1');

    // iscsi2 dies: iscsi1 reports it down within DOWN_AFTER_MS (+1 s), its metric follows at the next heartbeat.
    const g2 = gws[1];
    const killed = Date.now();
    g2.proc.kill('SIGKILL');
    await g2.exited;
    await until('iscsi2 down through iscsi1', DOWN_AFTER_MS + 1000, async () => {
      const r = await call(api1, 'GET', '/api/dashboard');
      const row = (r.body.gateways as Array<{ name: string; state: string }>).find((g) => g.name === 'iscsi2');
      return row?.state === 'down' ? true : undefined;
    });
    const downMs = Date.now() - killed;
    await until('peer_up 0', HEARTBEAT_MS + 2000, async () => ((await peerUp()) === '0' ? true : undefined));
    const metricMs = Date.now() - killed;
    process.stdout.write(`# iscsi2 SIGKILLed -> down through iscsi1's API after ${downMs} ms, peer_up 0 after ${metricMs} ms (DOWN_AFTER_MS ${DOWN_AFTER_MS})\n`);
    const drain = await call(api1, 'PUT', '/api/drain/iscsi2');
    assert.equal(drain.status, 400, drain.text);
    assert.match(String(drain.body.message), /iscsi2 is not running/);
  });
});
