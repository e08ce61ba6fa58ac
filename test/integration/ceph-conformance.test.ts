/**
 * libiscsi conformance (iscsi-test-cu, every suite, as ../shared/tools/conformance.sh runs it)
 * on a LUN backed by an RBD image of a real (memstore) Ceph cluster, with the controls the
 * embedded-store conformance run uses (thin provisioning, write-back cache). No test may FAIL
 * beyond the embedded store's own list (store-conformance.test.ts: failures of the SCSI layer
 * that every backstore shares) and RBD_LIMITS (each checked on its log); the verdicts are
 * written to $CEPH_CONFORMANCE_LIST for the side-by-side diff in docs/ceph.md.
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
import { seedRadosConfig } from '../helpers/ceph-config';
import { configPath } from '../../src/config/paths';

/** The embedded store's FAILs on the same suites (store-conformance.test.ts KNOWN_SCSI_FAILURES). */
const EMBEDDED_STORE_FAILURES = new Set(['Reserve6.LUNReset', 'GetLBAStatus.UnmapSingle']);

/** The text a test printed, from its "Test:" line to the next test or the summary. */
function testLog(log: string, test: string): string {
  const lines = log.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^\\s+Test: ${test} \\.\\.\\.`).test(l));
  if (start < 0) return '';
  let end = lines.findIndex((l, k) => k > start && (/^\s+Test: /.test(l) || l.startsWith('Run Summary')));
  if (end < 0) end = lines.length;
  return lines.slice(start, end).join('\n');
}

/**
 * The one difference RBD cannot remove, allowed only in exactly its documented way:
 * WriteAtomic16.Simple writes 1..256 blocks atomically at LBA 0 in steps of the granularity and
 * ignores MAXIMUM ATOMIC TRANSFER LENGTH (VPD B0h). RADOS makes one write atomic only within one
 * object (one OSD transaction, no multi-object transactions), so the RBD LU announces one
 * aligned 4 KiB page and refuses longer WRITE ATOMIC (16) with INVALID FIELD IN CDB, as SBC-4
 * requires; the embedded store's journal offers 1 MiB. Any other failure line fails the test.
 */
const RBD_LIMITS: Record<string, (text: string) => string | undefined> = {
  'WriteAtomic16.Simple': (t) => {
    const failed = t.split('\n').filter((l) => l.includes('[FAILED]'));
    const other = failed.filter((l) => !/WRITEATOMIC16 command failed with status 2 \/ sense key ILLEGAL_REQUEST\(0x05\) \/ ASCQ INVALID_FIELD_IN_CDB\(0x2400\)/.test(l));
    return failed.length === 0 || other.length > 0 ? `unexpected failures: ${other.join(' | ') || '(none)'}` : undefined;
  },
};

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
    // The `rbd` backstore on Ceph is active/active: no exclusive-lock (nor object-map/fast-diff).
    await cluster.rbd(['create', '--size', '256M', '--image-feature', 'layering,deep-flatten', `rbd/${image}`]);
    const cfg = path.join(dataDir, 'iscsi-gateway.cfg');
    fs.writeFileSync(cfg, `[config]\ncluster_name = ceph\nceph_config_dir = ${cluster.dir}\napi_secure = false\nprometheus_exporter = false\n`);
    await writeGatewayConfig(dataDir, { rbd: [{ disk: `rbd/${image}` }] });
    // With Ceph configured the daemon's configuration is the RADOS object (branch rados-config).
    await seedRadosConfig(cluster.cephConf, fs.readFileSync(configPath(dataDir), 'utf8'));
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
    const limits: string[] = [];
    const verdicts: string[] = [];
    for (const suite of suites) {
      const r = await runSuite(lunUrl(daemon.port, 'rbd'), suite);
      assert.ok(r.results.size > 0, `no tests ran in ${suite}:\n${r.log.slice(-2000)}`);
      for (const [name, v] of r.results) {
        totals[v as Verdict]++;
        verdicts.push(`${v} ${name}`);
        if (v !== 'FAIL') continue;
        if (EMBEDDED_STORE_FAILURES.has(name)) shared.push(name);
        else if (RBD_LIMITS[name] && RBD_LIMITS[name](testLog(r.log, name.slice(suite.length + 1))) === undefined) limits.push(name);
        else fails.push(name);
      }
      assert.ok(daemon.alive, `the daemon must survive ${suite}`);
    }
    t.diagnostic(`rbd: tests ${totals.PASS + totals.SKIP + totals.FAIL}: PASS ${totals.PASS} SKIP ${totals.SKIP} FAIL ${totals.FAIL}`);
    if (shared.length) t.diagnostic(`FAIL shared with the embedded store: ${shared.join(', ')}`);
    if (limits.length) t.diagnostic(`FAIL from RBD's documented limits: ${limits.join(', ')}`);
    if (process.env.CEPH_CONFORMANCE_LIST) fs.writeFileSync(process.env.CEPH_CONFORMANCE_LIST, verdicts.sort((a, b) => a.slice(5).localeCompare(b.slice(5))).join('\n') + '\n');
    assert.deepEqual(fails, [], 'failures on the RBD LUN beyond the embedded store list');
  });
});
