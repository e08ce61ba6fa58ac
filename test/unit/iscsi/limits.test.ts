import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, DataOutBudget, LimitsError, limitsFromEnv } from '../../../src/iscsi/limits';
import { SessionRegistry, TsihExhaustedError } from '../../../src/iscsi/session-registry';

const MIB = 1024 * 1024;

describe('data path limits', () => {
  it('takes overrides from the environment and refuses malformed ones', () => {
    assert.deepEqual(limitsFromEnv({}), DEFAULT_LIMITS);
    assert.equal(limitsFromEnv({ ISCSI_GATEWAY_CONNECTIONS_PER_ADDRESS: '8' }).connectionsPerAddress, 8);
    assert.throws(() => limitsFromEnv({ ISCSI_GATEWAY_CONNECTIONS_PER_ADDRESS: 'many' }), LimitsError);
    assert.throws(() => limitsFromEnv({ ISCSI_GATEWAY_TRANSMIT_QUEUE_BYTES: '0' }), /positive integer/);
  });

  it('Data-Out budget: a session may always hold one reservation; past that its own and the gateway total bound it', () => {
    const budget = new DataOutBudget({ ...DEFAULT_LIMITS, sessionDataOutBytes: 16 * MIB, gatewayDataOutBytes: 24 * MIB });
    // Session A: its first 8 MiB, then 8 more (16 = its limit), then no more.
    assert.ok(budget.tryReserve(8 * MIB, 0));
    assert.ok(budget.tryReserve(8 * MIB, 8 * MIB));
    assert.equal(budget.tryReserve(1, 16 * MIB), false);
    // Session B: its first command is admitted whatever the gateway holds (no starvation)...
    assert.ok(budget.tryReserve(12 * MIB, 0));
    // ...but its second is over the gateway's total.
    assert.equal(budget.tryReserve(1 * MIB, 12 * MIB), false);
    let retried = 0;
    budget.onRelease.add(() => retried++);
    budget.release(8 * MIB);
    assert.equal(retried, 1, 'waiting sessions are told when budget comes free');
    assert.ok(budget.tryReserve(1 * MIB, 12 * MIB));
  });

  it('TSIH allocation ends with Out of resources when all 65535 are in use, and reuses freed ones', () => {
    const r = new SessionRegistry();
    for (let t = 1; t <= 0xffff; t++) r.reserveTsih(t);
    assert.throws(() => r.allocateTsih(), TsihExhaustedError);
    r.releaseTsih(4242);
    assert.equal(r.allocateTsih(), 4242);
  });
});
