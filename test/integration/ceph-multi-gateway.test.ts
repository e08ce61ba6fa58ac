/**
 * Two gateway daemons (iscsi1 on 127.0.0.1, iscsi2 on 127.0.0.2), each with its OWN data dir,
 * share one configuration: the RADOS object rbd/gateway.conf of a real (memstore) cluster,
 * chosen because the settings file names the cluster (CEPH_CONF points at its ceph.conf).
 *
 * - A change made through either gateway's REST API is applied by the other within 1 s. The
 *   safety re-read is set to a minute (ISCSI_GATEWAY_CONFIG_RESYNC_MS), so only the RADOS
 *   notify can explain that; the latency of each change is measured and printed.
 * - The target created through iscsi1's API is served by iscsi2 (discovery through its portal).
 * - gwcli `ls /cluster` shows the cluster as `ceph` reports it: health, pools with replication
 *   (x<size>), OSD and MON counts; `info` of a pool gives size/min_size as the mons have them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readStatuses } from '../../src/daemon/status';
import { call } from '../helpers/api';
import { startCephCluster, TestCephCluster } from '../helpers/ceph';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess } from '../helpers/gateways';
import { GWCLI, settingsFile } from '../helpers/gwcli';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:rados';

async function appliedEpoch(dataDir: string, name: string): Promise<number> {
  const st = (await readStatuses(dataDir)).find((s) => s.name === name);
  return st?.appliedEpoch ?? -1;
}

/** The epoch the API's last change committed: GET /api/config of that gateway. */
async function epochOf(api: string): Promise<number> {
  const r = await call(api, 'GET', '/api/config');
  assert.equal(r.status, 200, r.text);
  return r.body.epoch as number;
}

describe('two gateways sharing the configuration in RADOS', () => {
  let cluster: TestCephCluster;
  const gws: GatewayProcess[] = [];

  before(async () => {
    cluster = await startCephCluster();
  });
  after(async () => {
    for (const g of gws) await g.stop();
    await cluster?.stop();
  });

  it("a change through one gateway's API is applied by the other within 1 s, by notification (not polling)", async () => {
    const port = await freePort();
    const apiPort1 = await freePort();
    const apiPort2 = await freePort();
    const api1 = `http://127.0.0.1:${apiPort1}`;
    const api2 = `http://127.0.0.2:${apiPort2}`;
    const env = { CEPH_CONF: cluster.cephConf, ISCSI_GATEWAY_CONFIG_RESYNC_MS: '60000' };
    const dirs: Record<string, string> = {};
    for (const [name, ip, apiPort] of [['iscsi1', '127.0.0.1', apiPort1], ['iscsi2', '127.0.0.2', apiPort2]] as const) {
      const dir = tempDir();
      dirs[name] = dir;
      const cfg = path.join(dir, 'iscsi-gateway.cfg');
      fs.writeFileSync(cfg, '[config]\ncluster_name = ceph\napi_secure = false\nprometheus_exporter = false\n');
      const g = await GatewayProcess.start(dir, name, `${ip}:${port}`, `${ip}:${apiPort}`, { args: ['--config', cfg], env });
      gws.push(g);
      assert.match(g.out, /configuration in rados:rbd\/gateway\.conf/, g.out);
    }

    // Set up through iscsi1's API: target, both gateways as its portals.
    for (const [m, u, f] of [
      ['PUT', `/api/target/${IQN}`, undefined],
      ['PUT', `/api/gateway/${IQN}/iscsi1`, { ip_address: '127.0.0.1', nosync: 'false', skipchecks: 'true' }],
      ['PUT', `/api/gateway/${IQN}/iscsi2`, { ip_address: '127.0.0.2', nosync: 'false', skipchecks: 'true' }],
    ] as const) {
      const r = await call(api1, m, u, f);
      assert.equal(r.status, 200, `${m} ${u}: ${r.text}`);
    }
    const setupEpoch = await epochOf(api1);
    for (let i = 0; i < 200 && (await appliedEpoch(dirs.iscsi2, 'iscsi2')) < setupEpoch; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok((await appliedEpoch(dirs.iscsi2, 'iscsi2')) >= setupEpoch, 'iscsi2 applied the set-up');

    // Changes through one API, applied by the other gateway: latency from the API's answer.
    const latencies: string[] = [];
    let worst = 0;
    for (let i = 0; i < 6; i++) {
      const [via, other, otherDir] = i % 2 === 0 ? [api1, 'iscsi2', dirs.iscsi2] : [api2, 'iscsi1', dirs.iscsi1];
      const host = `iqn.1994-05.com.example:host${i}`;
      const r = await call(via, 'PUT', `/api/client/${IQN}/${host}`);
      const answered = Date.now();
      assert.equal(r.status, 200, r.text);
      const epoch = await epochOf(via);
      let applied = -1;
      while (Date.now() - answered < 2000) {
        applied = await appliedEpoch(otherDir, other);
        if (applied >= epoch) break;
        await new Promise((res) => setTimeout(res, 2));
      }
      const ms = Date.now() - answered;
      assert.ok(applied >= epoch, `${other} has not applied epoch ${epoch} after ${ms} ms (at ${applied})`);
      worst = Math.max(worst, ms);
      latencies.push(`${other} ${ms} ms`);
    }
    process.stdout.write(`# change propagation between gateways through RADOS watch/notify: worst ${worst} ms (${latencies.join(', ')})\n`);
    assert.ok(worst < 1000, `worst propagation ${worst} ms`);

    // iscsi2 serves the target created through iscsi1's API, to the host added through it (it
    // only knows both from RADOS).
    const ls = await run('iscsi-ls', ['-i', 'iqn.1994-05.com.example:host0', '-s', `iscsi://127.0.0.2:${port}/`], { timeoutMs: 30_000 });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`Target:${IQN.replace(/\./g, '\\.')} Portal:127\\.0\\.0\\.2:${port},\\d+`), ls.stdout);

    // Both APIs answer with the same document (one shared configuration, not two files).
    const c1 = await call(api1, 'GET', '/api/config');
    const c2 = await call(api2, 'GET', '/api/config');
    assert.deepEqual(c1.body, c2.body);
    assert.equal(Object.keys((c1.body.targets as Record<string, { clients: object }>)[IQN].clients).length, 6);
    assert.ok(!fs.existsSync(path.join(dirs.iscsi1, 'gateway.json')) || JSON.parse(fs.readFileSync(path.join(dirs.iscsi1, 'gateway.json'), 'utf8')).targets?.[IQN] === undefined, 'nothing went to the data dir file');
  });

  it('gwcli ls /cluster shows health, pools with replication, OSD/MON counts as the cluster reports them', async () => {
    assert.ok(gws.length === 2, 'the gateways of the previous test run');
    await cluster.ceph(['osd', 'pool', 'create', 'replica2', '8', '8', 'replicated']);
    await cluster.ceph(['osd', 'pool', 'set', 'replica2', 'size', '2', '--yes-i-really-mean-it']);
    const health = (JSON.parse(await cluster.ceph(['health', '--format=json'])) as { status: string }).status;
    const minSize = (JSON.parse(await cluster.ceph(['osd', 'pool', 'get', 'replica2', 'min_size', '--format=json'])) as { min_size: number }).min_size;
    const apiPort = Number(/REST API on http:\/\/127\.0\.0\.1:(\d+)/.exec(gws[0].out)?.[1]);
    const dir = tempDir('igw-gwcli-');
    const cfg = settingsFile(dir, apiPort);
    const gwcli = (args: string[]) => run(process.execPath, [GWCLI, '--config', cfg, ...args], { env: { GWCLI_HOME: path.join(dir, 'home'), NO_COLOR: '1' }, timeoutMs: 30_000 });

    const ls = await gwcli(['ls', '/cluster']);
    assert.equal(ls.code, 0, ls.stderr);
    process.stdout.write(`# gwcli ls /cluster:\n${ls.stdout.replace(/^/gm, '#   ')}\n`);
    assert.match(ls.stdout, /o- cluster \.+ \[Clusters: 1\]/);
    assert.match(ls.stdout, new RegExp(`o- ceph \\.+ \\[${health}\\]`));
    assert.match(ls.stdout, /o- pools \.+ \[Pools: 2\]/);
    // No mgr in this cluster: the mons know no usage, and gwcli says so rather than print 0.
    assert.match(ls.stdout, /o- rbd \.+ \[\(x1\), Commit: 0B, Used: n\/a\]/);
    assert.match(ls.stdout, /o- replica2 \.+ \[\(x2\), Commit: 0B, Used: n\/a\]/);
    assert.match(ls.stdout, /o- topology \.+ \[OSDs: 1,MONs: 1\]/);

    const info = await gwcli(['/cluster/ceph/pools/replica2', 'info']);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^size +\.\. 2$/m);
    assert.match(info.stdout, new RegExp(`^min_size +\\.\\. ${minSize}$`, 'm'));
    assert.match(info.stdout, /^type +\.\. replicated$/m);
    const top = await gwcli(['/cluster/ceph', 'info']);
    assert.equal(top.code, 0, top.stderr);
    assert.match(top.stdout, /^osds +\.\. 1 \(up: 1, in: 1\)$/m);
    assert.match(top.stdout, /^mons +\.\. 1 \(quorum: a\)$/m);
  });
});
