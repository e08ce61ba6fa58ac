/**
 * libiscsi conformance (iscsi-test-cu 1.19) against the demo LUN, suite by suite. Fails on
 * any FAIL; SKIPs are reported in the output.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../helpers/daemon';
import { runSuite } from '../helpers/conformance';

// The foundation issue's suites: all of them must be free of FAILs.
const SUITES = [
  'Inquiry', 'Mandatory', 'ModeSense6', 'NoMedia', 'Prefetch10', 'Prefetch16', 'PreventAllow',
  'Read6', 'Read10', 'Read12', 'Read16', 'ReadCapacity10', 'ReadCapacity16', 'ReadDefectData10',
  'ReadDefectData12', 'ReportSupportedOpcodes', 'StartStopUnit', 'TestUnitReady', 'Verify10',
  'Verify12', 'Verify16', 'Write10', 'Write12', 'Write16', 'WriteVerify10', 'WriteVerify12',
  'WriteVerify16', 'iSCSIcmdsn', 'iSCSIdatasn', 'iSCSIResiduals', 'iSCSITMF',
];

describe('iscsi-test-cu conformance', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start();
  });
  after(async () => {
    await daemon.stop();
  });

  const totals = { PASS: 0, SKIP: 0, FAIL: 0 };
  for (const suite of SUITES) {
    it(suite, async () => {
      const { results, log } = await runSuite(daemon.url, suite);
      assert.ok(results.size > 0, `no tests ran in ${suite}:\n${log.slice(-2000)}`);
      const failed = [...results].filter(([, v]) => v === 'FAIL').map(([k]) => k);
      for (const v of results.values()) totals[v]++;
      const skipped = [...results].filter(([, v]) => v === 'SKIP').map(([k]) => k);
      if (skipped.length) process.stdout.write(`# ${suite}: SKIP ${skipped.join(', ')}\n`);
      assert.deepEqual(failed, [], `${suite} failures:\n${log.slice(-6000)}`);
      assert.ok(daemon.alive, 'the daemon must survive the suite');
    });
  }
  it('summary', () => {
    process.stdout.write(`# conformance: PASS ${totals.PASS} SKIP ${totals.SKIP} FAIL ${totals.FAIL}\n`);
  });
});
