import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginStatus } from '../../../src/pdu/opcodes';
import { AuthError } from '../../../src/iscsi/auth';
import {
  CHALLENGE_LENGTH, ChallengeMemory, ChapCredentials, chapMethod, chapResponse, decodeBinary, decodeIdentifier, selectAlgorithm,
} from '../../../src/iscsi/chap';

const CONTEXT = { initiatorName: 'iqn.1996-04.de.suse:01:e6ca28cc9f20', targetName: 'iqn.2003-01.org.example:t', sessionType: 'Normal' as const };
const SEED: ChapCredentials = { username: 'common12', password: 'pass12345678' };
const MUTUAL: ChapCredentials = { ...SEED, mutualUsername: 'target12', mutualPassword: 'mutualpass12' };

// RFC 1994 §4.1: Response = H(Identifier || secret || Challenge). Vectors computed independently
// (Python hashlib) for identifier 0x2a, secret "pass12345678", challenge 00 01 .. 0f.
const CHALLENGE = Buffer.from([...Array(16).keys()]);
const VECTORS: Array<[number, string]> = [
  [5, 'e6115b3de8f64c039fe62625bdf2e15f'],
  [6, '431b59e69a988e3923815c479ac968159f22bfcb'],
  [7, '7b9f820492260b996d7d1e429fca78d19ea84967cd2590bc56660c0eca6acdab'],
  [8, 'f8154c49f3c1bcaa4471909ce255348d2b666456d57ce0b12577f193b21ba583'],
];

function expectAuth(fn: () => unknown, status: LoginStatus, message?: RegExp): AuthError {
  let caught: unknown;
  assert.throws(fn, (e: unknown) => {
    caught = e;
    return e instanceof AuthError && e.status === status && (!message || message.test(e.message));
  });
  return caught as AuthError;
}

/** Start an exchange and return the target's challenge. */
function begin(credentials: ChapCredentials = SEED, offer = '5', memory = new ChallengeMemory()) {
  const exchange = chapMethod(credentials, { memory }).start(CONTEXT);
  const r = exchange.step(new Map([['CHAP_A', offer]]));
  const keys = new Map(r.response);
  return {
    exchange,
    algorithm: Number(keys.get('CHAP_A')),
    id: Number(keys.get('CHAP_I')),
    challenge: decodeBinary(keys.get('CHAP_C')!, 'CHAP_C'),
    memory,
  };
}

function answer(b: ReturnType<typeof begin>, secret = SEED.password): string {
  return `0x${chapResponse(b.algorithm, b.id, secret, b.challenge).toString('hex')}`;
}

describe('CHAP digests (RFC 1994 §4.1)', () => {
  for (const [a, hex] of VECTORS) {
    it(`CHAP_A=${a}`, () => assert.equal(chapResponse(a, 0x2a, 'pass12345678', CHALLENGE).toString('hex'), hex));
  }
  it('mutual vector (MD5, id 7, 16 x AAh)', () => {
    assert.equal(chapResponse(5, 7, 'mutualpass12', Buffer.alloc(16, 0xaa)).toString('hex'), '9f4a089a1ef532b4501e2f4cec90608a');
  });
});

describe('CHAP value encodings (RFC 7143 §6.1)', () => {
  it('decodes hex, odd-length hex, upper-case prefix and base64', () => {
    assert.deepEqual(decodeBinary('0x0a0B', 'v'), Buffer.from([0x0a, 0x0b]));
    assert.deepEqual(decodeBinary('0xabc', 'v'), Buffer.from([0x0a, 0xbc]));
    assert.deepEqual(decodeBinary('0XFF', 'v'), Buffer.from([0xff]));
    assert.deepEqual(decodeBinary('0bAAECAw==', 'v'), Buffer.from([0, 1, 2, 3]));
  });
  for (const bad of ['abcd', '0x', '0xzz', '0x12 34', '0b', '0b!!!!', '0bAAE', `0x${'00'.repeat(1025)}`]) {
    it(`rejects ${bad.slice(0, 16)}${bad.length > 16 ? '…' : ''}`, () => {
      expectAuth(() => decodeBinary(bad, 'CHAP_R'), LoginStatus.InitiatorError);
    });
  }
  it('CHAP_I is 0..255, decimal or hex', () => {
    assert.equal(decodeIdentifier('0'), 0);
    assert.equal(decodeIdentifier('255'), 255);
    assert.equal(decodeIdentifier('0x1f'), 31);
    for (const bad of ['256', '-1', '01', 'x', '', '0x100']) expectAuth(() => decodeIdentifier(bad), LoginStatus.InitiatorError);
  });
  it("honours the initiator's preference order", () => {
    assert.equal(selectAlgorithm('7,5', [5, 6, 7, 8]), 7);
    assert.equal(selectAlgorithm('99,8,5', [5, 6, 7, 8]), 8);
    assert.equal(selectAlgorithm('5', [7]), undefined);
  });
});

describe('CHAP exchange', () => {
  it('answers CHAP_A with a fresh random challenge of at least 16 bytes per login', () => {
    const a = begin();
    const b = begin();
    assert.equal(a.algorithm, 5);
    assert.ok(a.challenge.length >= 16 && a.challenge.length === CHALLENGE_LENGTH);
    assert.ok(!a.challenge.equals(b.challenge));
    assert.ok(a.id >= 0 && a.id <= 255);
  });

  for (const [a] of VECTORS) {
    it(`authenticates with CHAP_A=${a}`, () => {
      const b = begin(SEED, `${a}`);
      assert.equal(b.algorithm, a);
      const r = b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', answer(b)]]));
      assert.deepEqual(r, { response: [], done: true });
    });
  }

  it('accepts a base64 CHAP_R', () => {
    const b = begin();
    const r = chapResponse(b.algorithm, b.id, SEED.password, b.challenge).toString('base64');
    assert.equal(b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', `0b${r}`]])).done, true);
  });

  it('a wrong password and a wrong user fail identically (0201, same message)', () => {
    const b1 = begin();
    const e1 = expectAuth(() => b1.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', answer(b1, 'wrongpass1234')]])), LoginStatus.AuthenticationFailure);
    const b2 = begin();
    const e2 = expectAuth(() => b2.exchange.step(new Map([['CHAP_N', 'someone12'], ['CHAP_R', answer(b2)]])), LoginStatus.AuthenticationFailure);
    assert.equal(e1.message, e2.message);
    assert.ok(!e1.message.includes('pass12345678') && !e1.message.includes('common12'));
  });

  it('a response of the wrong length fails as authentication failure', () => {
    const b = begin();
    expectAuth(() => b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', '0x00']])), LoginStatus.AuthenticationFailure);
  });

  it('refuses an unsupported algorithm list', () => {
    const exchange = chapMethod(SEED).start(CONTEXT);
    expectAuth(() => exchange.step(new Map([['CHAP_A', '3,99']])), LoginStatus.AuthenticationFailure);
  });

  it('refuses keys out of order', () => {
    expectAuth(() => chapMethod(SEED).start(CONTEXT).step(new Map([['CHAP_N', 'common12']])), LoginStatus.InitiatorError, /out of order/);
    const b = begin();
    expectAuth(() => b.exchange.step(new Map([['CHAP_A', '5']])), LoginStatus.InitiatorError, /out of order/);
  });

  it('refuses a missing CHAP_N or CHAP_R', () => {
    const b = begin();
    expectAuth(() => b.exchange.step(new Map([['CHAP_R', answer(b)]])), LoginStatus.MissingParameter, /CHAP_N/);
    const c = begin();
    expectAuth(() => c.exchange.step(new Map([['CHAP_N', 'common12']])), LoginStatus.MissingParameter, /CHAP_R/);
  });

  it('refuses a non-hex or oversized CHAP_R', () => {
    const b = begin();
    expectAuth(() => b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', '0xnothex']])), LoginStatus.InitiatorError);
    const c = begin();
    expectAuth(() => c.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', `0x${'ab'.repeat(5000)}`]])), LoginStatus.InitiatorError);
  });

  it('refuses keys after the exchange, unknown keys, and half a mutual request', () => {
    const b = begin();
    b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', answer(b)]]));
    assert.equal(b.exchange.step(new Map()).done, true);
    expectAuth(() => b.exchange.step(new Map([['CHAP_R', answer(b)]])), LoginStatus.InitiatorError);
    expectAuth(() => begin().exchange.step(new Map([['CHAP_X', '1']])), LoginStatus.InitiatorError);
    const c = begin(MUTUAL);
    expectAuth(() => c.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', answer(c)], ['CHAP_I', '1']])), LoginStatus.InitiatorError);
  });
});

describe('mutual CHAP', () => {
  const initiatorChallenge = Buffer.alloc(16, 0xaa);

  it('answers the initiator challenge with the mutual secret', () => {
    const b = begin(MUTUAL);
    const r = b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b)], ['CHAP_I', '7'], ['CHAP_C', `0x${initiatorChallenge.toString('hex')}`],
    ]));
    assert.equal(r.done, true);
    assert.deepEqual(r.response, [['CHAP_N', 'target12'], ['CHAP_R', '0x9f4a089a1ef532b4501e2f4cec90608a']]);
  });

  it('does not answer before the initiator proved itself', () => {
    const b = begin(MUTUAL);
    expectAuth(() => b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b, 'wrongpass1234')], ['CHAP_I', '7'], ['CHAP_C', `0x${initiatorChallenge.toString('hex')}`],
    ])), LoginStatus.AuthenticationFailure);
  });

  it('refuses a reflected challenge (ours, or one we sent on another login)', () => {
    const b = begin(MUTUAL);
    expectAuth(() => b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b)], ['CHAP_I', '7'], ['CHAP_C', `0x${b.challenge.toString('hex')}`],
    ])), LoginStatus.AuthenticationFailure, /reflect/);
    const memory = new ChallengeMemory();
    const other = begin(MUTUAL, '5', memory);
    const c = begin(MUTUAL, '5', memory);
    expectAuth(() => c.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(c)], ['CHAP_I', '7'], ['CHAP_C', `0x${other.challenge.toString('hex')}`],
    ])), LoginStatus.AuthenticationFailure, /reflect/);
  });

  it('refuses a mutual secret equal to the initiator secret', () => {
    const b = begin({ ...SEED, mutualUsername: 'target12', mutualPassword: SEED.password });
    expectAuth(() => b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b)], ['CHAP_I', '7'], ['CHAP_C', `0x${initiatorChallenge.toString('hex')}`],
    ])), LoginStatus.AuthenticationFailure, /equals/);
  });

  it('refuses mutual CHAP when the target has no mutual credentials', () => {
    const b = begin(SEED);
    expectAuth(() => b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b)], ['CHAP_I', '7'], ['CHAP_C', `0x${initiatorChallenge.toString('hex')}`],
    ])), LoginStatus.AuthenticationFailure);
  });

  it('refuses a short initiator challenge', () => {
    const b = begin(MUTUAL);
    expectAuth(() => b.exchange.step(new Map([
      ['CHAP_N', 'common12'], ['CHAP_R', answer(b)], ['CHAP_I', '7'], ['CHAP_C', '0x0102'],
    ])), LoginStatus.InitiatorError);
  });

  it('a response computed for another CHAP_I fails (replay)', () => {
    const b = begin();
    const replay = `0x${chapResponse(b.algorithm, (b.id + 1) % 256, SEED.password, b.challenge).toString('hex')}`;
    expectAuth(() => b.exchange.step(new Map([['CHAP_N', 'common12'], ['CHAP_R', replay]])), LoginStatus.AuthenticationFailure);
  });
});
