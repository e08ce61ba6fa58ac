import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiResult, ScsiStatus } from '../../../src/scsi/sam';
import {
  LuStats, MAX_INITIATORS_PER_LU, OTHER_INITIATORS, OpKind, SessionStats, countLoginFailure, ioStatsJson, loginFailureReason,
  loginFailures,
} from '../../../src/metrics/stats';
import { assertGood, cdb10, command, fixture, nexus, pattern } from '../scsi/helpers';

const WRITE10 = 0x2a;
const READ10 = 0x28;

describe('LuStats', () => {
  it('classifies by data direction and counts bytes of successful commands only', () => {
    const s = new LuStats();
    const n = nexus(1);
    const good = (extra: Partial<ScsiResult> = {}): ScsiResult => ({ status: ScsiStatus.Good, ...extra });
    s.record(command([WRITE10], { nexus: n, dataOutLength: 8192 }), good({ dataOutTransferLength: 4096 }), 0.001);
    s.record(command([WRITE10], { nexus: n, dataOutLength: 4096 }), good({ dataOutTransferLength: 8192 }), 0.002);
    s.record(command([WRITE10], { nexus: n, dataOutLength: 4096 }), { status: ScsiStatus.CheckCondition, dataOutTransferLength: 4096 }, 0.003);
    s.record(command([READ10], { nexus: n, dataInLength: 512 }), good({ data: Buffer.alloc(1024) }), 0.0001);
    s.record(command([READ10], { nexus: n, dataInLength: 4096 }), { status: ScsiStatus.ConditionMet, data: Buffer.alloc(100) }, 0.0001);
    s.record(command([0], { nexus: n, dataInLength: 0 }), { status: ScsiStatus.TaskSetFull }, 0.00001);
    const j = ioStatsJson(s.total);
    assert.deepEqual(j.commands, { read: 2, write: 3, other: 1 });
    assert.equal(j.write_bytes, 4096 + 4096, 'capped at the expected transfer length; failed write not counted');
    assert.equal(j.read_bytes, 512 + 100, 'capped at the expected Data-In length');
    assert.equal(j.errors, 2);
    assert.equal(j.latency_seconds.write.count, 3);
    assert.ok(Math.abs(j.latency_seconds.write.sum - 0.006) < 1e-12);
    assert.deepEqual(ioStatsJson(s.initiators.get(n.initiatorName)!), j, 'one initiator: its counters are the totals');
  });

  it('keeps counters per initiator node name, and folds names beyond the bound into "other"', () => {
    const s = new LuStats();
    for (let i = 0; i < MAX_INITIATORS_PER_LU + 10; i++) {
      s.record(command([0], { nexus: nexus(i + 1), dataInLength: 0 }), { status: ScsiStatus.Good }, 0);
    }
    s.record(command([0], { nexus: nexus(1), dataInLength: 0 }), { status: ScsiStatus.Good }, 0);
    assert.equal(s.initiators.size, MAX_INITIATORS_PER_LU + 1);
    assert.equal(s.initiators.get(nexus(1).initiatorName)!.commands[OpKind.Other], 2);
    assert.equal(s.initiators.get(OTHER_INITIATORS)!.commands[OpKind.Other], 10);
    assert.equal(s.total.commands[OpKind.Other], MAX_INITIATORS_PER_LU + 11);
  });

  it('a logical unit counts what it executes: WRITE(10) bytes, READ(10) bytes, errors', async () => {
    const f = await fixture({ blocks: 2048 });
    const lu = f.target.logicalUnit(0)!;
    const before = ioStatsJson(lu.stats.total);
    assertGood(await f.run(cdb10(WRITE10, 8, 16), { dataOut: pattern(16 * 512) }));
    assertGood(await f.run(cdb10(READ10, 8, 4), { dataInLength: 4 * 512 }));
    const oob = await f.run(cdb10(WRITE10, 4096, 1), { dataOut: pattern(512) });
    assert.equal(oob.status, ScsiStatus.CheckCondition);
    const after = ioStatsJson(lu.stats.total);
    assert.equal(after.write_bytes - before.write_bytes, 16 * 512);
    assert.equal(after.read_bytes - before.read_bytes, 4 * 512);
    assert.equal(after.commands.write - before.commands.write, 2);
    assert.equal(after.errors - before.errors, 1);
    assert.equal(after.latency_seconds.write.count - before.latency_seconds.write.count, 2);
    assert.equal(lu.stats.initiators.get(f.nexus.initiatorName)!.writeBytes, 16 * 512);
  });
});

describe('SessionStats', () => {
  it('counts commands, Data-In and the Data-Out of successful commands', () => {
    const s = new SessionStats();
    s.record(ScsiStatus.Good, 4096, 0);
    s.record(ScsiStatus.Good, 0, 8192);
    s.record(ScsiStatus.CheckCondition, 0, 8192);
    assert.deepEqual({ c: s.commands, i: s.dataInBytes, o: s.dataOutBytes, e: s.errors }, { c: 3, i: 4096, o: 8192, e: 1 });
    assert.ok(s.loginTime <= Date.now());
  });
});

describe('login failures', () => {
  it('names RFC 7143 login status details', () => {
    assert.equal(loginFailureReason(0x0201), 'authentication_failure');
    assert.equal(loginFailureReason(0x0202), 'authorization_failure');
    assert.equal(loginFailureReason(0x0203), 'not_found');
    assert.equal(loginFailureReason(0x0300), 'target_error');
    assert.equal(loginFailureReason(0x02ff), 'other');
  });

  it('counts by reason', () => {
    const before = loginFailures().get('authentication_failure') ?? 0;
    countLoginFailure('authentication_failure');
    countLoginFailure('authentication_failure');
    assert.equal(loginFailures().get('authentication_failure'), before + 2);
  });
});
