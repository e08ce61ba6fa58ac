import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginStatus } from '../../../src/pdu/opcodes';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, parseLoginThrottle } from '../../../src/iscsi/login-throttle';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('login throttle', () => {
  it('lets the first failures through, then doubles the wait up to the cap', () => {
    const c = clock();
    const th = new LoginThrottle({ ...DEFAULT_LOGIN_THROTTLE, freeFailures: 3, baseDelayMs: 100, maxDelayMs: 800 }, c.now);
    for (let k = 0; k < 3; k++) {
      assert.equal(th.admit('10.0.0.1'), 0);
      th.failed('10.0.0.1', LoginStatus.AuthenticationFailure);
    }
    assert.equal(th.admit('10.0.0.1'), 0, 'three free failures');
    const waits: number[] = [];
    for (let k = 0; k < 6; k++) {
      th.failed('10.0.0.1', LoginStatus.AuthenticationFailure);
      waits.push(th.pendingDelay('10.0.0.1'));
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 800, 800]);
  });

  it('does not touch other addresses', () => {
    const c = clock();
    const th = new LoginThrottle({ ...DEFAULT_LOGIN_THROTTLE, freeFailures: 0 }, c.now);
    th.failed('10.0.0.1', LoginStatus.AuthenticationFailure);
    assert.ok(th.pendingDelay('10.0.0.1') > 0);
    assert.equal(th.admit('10.0.0.2'), 0);
  });

  it('counts failures by class; only guessing failures throttle', () => {
    const c = clock();
    const th = new LoginThrottle({ ...DEFAULT_LOGIN_THROTTLE, freeFailures: 0 }, c.now);
    th.failed('a', LoginStatus.InitiatorError);
    th.failed('a', LoginStatus.MissingParameter);
    assert.equal(th.pendingDelay('a'), 0);
    th.failed('a', LoginStatus.AuthorizationFailure);
    th.failed('b', LoginStatus.NotFound);
    th.failed('c', LoginStatus.AuthenticationFailure);
    assert.deepEqual(th.counters, { authentication: 1, authorization: 1, notFound: 1, other: 2, delayed: 0, refused: 0 });
  });

  it('spaces out waiting logins and refuses beyond maxWaiting', () => {
    const c = clock();
    const th = new LoginThrottle({ ...DEFAULT_LOGIN_THROTTLE, freeFailures: 0, baseDelayMs: 100, maxWaiting: 2 }, c.now);
    th.failed('a', LoginStatus.AuthenticationFailure);
    const w1 = th.admit('a');
    const w2 = th.admit('a');
    assert.equal(w1, 100);
    assert.equal(w2, 200);
    assert.equal(th.admit('a'), 'refuse');
    th.waited('a');
    assert.notEqual(th.admit('a'), 'refuse');
    assert.equal(th.counters.refused, 1);
    assert.equal(th.counters.delayed, 3);
  });

  it('forgets a quiet address and bounds the table', () => {
    const c = clock();
    const th = new LoginThrottle({ ...DEFAULT_LOGIN_THROTTLE, freeFailures: 0, forgetAfterMs: 1000, maxAddresses: 3 }, c.now);
    th.failed('a', LoginStatus.AuthenticationFailure);
    c.advance(1001);
    assert.equal(th.pendingDelay('a'), 0);
    for (const addr of ['b', 'c', 'd', 'e']) th.failed(addr, LoginStatus.AuthenticationFailure);
    assert.ok(th.trackedAddresses <= 3);
  });

  it('parses its tuning text', () => {
    assert.deepEqual(parseLoginThrottle(undefined), DEFAULT_LOGIN_THROTTLE);
    assert.equal(parseLoginThrottle('free=1000').freeFailures, 1000);
    assert.equal(parseLoginThrottle('base=10, max=20').maxDelayMs, 20);
    assert.throws(() => parseLoginThrottle('free=-1'), /invalid login throttle setting/);
    assert.throws(() => parseLoginThrottle('speed=3'), /invalid login throttle setting/);
  });
});
