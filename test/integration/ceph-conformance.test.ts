/**
 * libiscsi conformance (iscsi-test-cu, every suite, as ../shared/tools/conformance.sh runs it)
 * on a LUN backed by an RBD image of a real (memstore) Ceph cluster, with the controls the
 * embedded-store conformance run uses (thin provisioning, write-back cache). No test may FAIL
 * beyond the embedded store's own list (store-conformance.test.ts: failures of the SCSI layer
 * that every backstore shares); the verdicts are printed for the side-by-side diff in
 * docs/ceph.md.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon, freePort, run, tempDir } from '../helpers/daemon';
import { Verdict, runSuite } from '../helpers/conformance';
import { lunUrl, writeGatewayConfig } from '../helpers/store';
import { TestCephCluster, startCephCluster } from '../helpers/ceph';

/** The embedded store's FAILs on the same suites (store-conformance.test.ts KNOWN_SCSI_FAILURES). */
const EMBEDDED_STORE_FAILURES = new Set(['Reserve6.LUNReset', 'GetLBAStatus.UnmapSingle']);

describe('iscsi-test-cu on an RBD LUN (Ceph provider)', { timeout: 600_000 }, () => {
  const dataDir = tempDir('igw-ceph-conf-');
  const image = `conformance-${randomUUID().slice(0, 8)}`;
  let cluster: TestCephCluster;
  let daemon: Daemon;
  let suites: string[] = [];

  before(async () => {
    const list = await run('iscsi-test-cu', ['--list']);
    suites = list.stdout.split('\n').map((l) => /^ALL\.(\w+)$/.exec(l.trim())?.[1]).filter((s): s is string => s !== undefined);
    assert.ok(suites.length >= 40, `iscsi-test-cu --list:\n${list.stdout}`);
    cluster = await startCephCluster();
    await cluster.rbd(['create', '--size', '256M', `rbd/${image}`]);
    const cfg = path.join(dataDir, 'iscsi-gateway.cfg');
    fs.writeFileSync(cfg, `[config]\ncluster_name = ceph\nceph_config_dir = ${cluster.dir}\napi_secure = false\nprometheus_exporter = false\n`);
    await writeGatewayConfig(dataDir, { rbd: [{ disk: `rbd/${image}` }] });
    // --config without an API address would start the API on 5000: give it a free port.
    daemon = await Daemon.start({ dataDir, extraArgs: ['--config', cfg, '--api', `127.0.0.1:${await freePort()}`] });
  });
  after(async () => {
    if (daemon?.alive) await daemon.stop();
    await cluster?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('every suite: no FAIL beyond the embedded store list', { timeout: 600_000 }, async (t) => {
    const totals = { PASS: 0, SKIP: 0, FAIL: 0 };
    const fails: string[] = [];
    const shared: string[] = [];
    const verdicts: string[] = [];
    for (const suite of suites) {
      const r = await runSuite(lunUrl(daemon.port, 'rbd'), suite);
      assert.ok(r.results.size > 0, `no tests ran in ${suite}:\n${r.log.slice(-2000)}`);
      for (const [name, v] of r.results) {
        totals[v as Verdict]++;
        verdicts.push(`${v} ${name}`);
        if (v === 'FAIL') (EMBEDDED_STORE_FAILURES.has(name) ? shared : fails).push(name);
      }
      assert.ok(daemon.alive, `the daemon must survive ${suite}`);
    }
    t.diagnostic(`rbd: tests ${totals.PASS + totals.SKIP + totals.FAIL}: PASS ${totals.PASS} SKIP ${totals.SKIP} FAIL ${totals.FAIL}`);
    if (shared.length) t.diagnostic(`FAIL shared with the embedded store: ${shared.join(', ')}`);
    if (process.env.CEPH_CONFORMANCE_LIST) fs.writeFileSync(process.env.CEPH_CONFORMANCE_LIST, verdicts.sort().join('\n') + '\n');
    assert.deepEqual(fails, [], 'failures on the RBD LUN beyond the embedded store list');
  });
});
