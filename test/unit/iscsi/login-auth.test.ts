import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginError, LoginStateMachine } from '../../../src/iscsi/login';
import { LoginRequestPdu } from '../../../src/pdu/requests';
import { InitiatorOpcode, LoginStatus } from '../../../src/pdu/opcodes';
import { encodeText } from '../../../src/pdu/text';
import { AuthPolicy } from '../../../src/iscsi/auth';
import { chapMethod, chapResponse } from '../../../src/iscsi/chap';
import { DEFAULT_TARGET_SETTINGS, IscsiTargetNode, TargetCatalog } from '../../../src/iscsi/target-node';
import { ScsiTargetDevice } from '../../../src/scsi/sam';

const TARGET = 'iqn.2003-01.org.example:t1';
const INITIATOR = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
const CHAP_POLICY: AuthPolicy = { methodsFor: () => [chapMethod({ username: 'common12', password: 'pass12345678' })] };

function catalog(policy: AuthPolicy): TargetCatalog {
  const node: IscsiTargetNode = {
    name: TARGET, alias: undefined, portalGroupTag: 1, device: {} as ScsiTargetDevice,
    settings: () => DEFAULT_TARGET_SETTINGS, allows: () => true,
  };
  return { find: (n) => (n === TARGET ? node : undefined), list: () => [node], auth: policy, discoverySettings: () => DEFAULT_TARGET_SETTINGS, portalsFor: () => [] };
}

function req(keys: Array<[string, string]>, fields: Partial<LoginRequestPdu> = {}): LoginRequestPdu {
  return {
    opcode: InitiatorOpcode.LoginRequest, transit: true, continue: false, csg: 0, nsg: 1, versionMax: 0, versionMin: 0,
    isid: Buffer.from('80123456789a', 'hex'), tsih: 0, itt: 1, cid: 0, cmdSN: 1, expStatSN: 0, data: encodeText(keys), ...fields,
  };
}

const FIRST: Array<[string, string]> = [['InitiatorName', INITIATOR], ['TargetName', TARGET]];

function expectStatus(fn: () => unknown, status: LoginStatus): void {
  assert.throws(fn, (e: unknown) => e instanceof LoginError && e.status === status);
}

describe('login with CHAP required', () => {
  it('runs AuthMethod -> CHAP_A -> CHAP_N/CHAP_R, then leaves the security stage', () => {
    const m = new LoginStateMachine(catalog(CHAP_POLICY));
    const r1 = m.handle(req([...FIRST, ['AuthMethod', 'None,CHAP']]));
    assert.deepEqual(r1.keys.find(([k]) => k === 'AuthMethod'), ['AuthMethod', 'CHAP']);
    assert.equal(r1.transit, false, 'stays in security until CHAP completes');
    const r2 = m.handle(req([['CHAP_A', '7,5']]));
    const k2 = Object.fromEntries(r2.keys);
    assert.equal(k2.CHAP_A, '7');
    assert.equal(r2.transit, false);
    const answer = chapResponse(7, Number(k2.CHAP_I), 'pass12345678', Buffer.from(k2.CHAP_C.slice(2), 'hex'));
    const r3 = m.handle(req([['CHAP_N', 'common12'], ['CHAP_R', `0x${answer.toString('hex')}`]]));
    assert.equal(r3.transit, true);
    assert.equal(r3.nsg, 1);
  });

  it('an offer without CHAP: authentication failure (0201)', () => {
    expectStatus(() => new LoginStateMachine(catalog(CHAP_POLICY)).handle(req([...FIRST, ['AuthMethod', 'None']])), LoginStatus.AuthenticationFailure);
  });

  it('no AuthMethod at all, or starting in the operational stage: 0201', () => {
    expectStatus(() => new LoginStateMachine(catalog(CHAP_POLICY)).handle(req(FIRST)), LoginStatus.AuthenticationFailure);
    expectStatus(() => new LoginStateMachine(catalog(CHAP_POLICY)).handle(req(FIRST, { csg: 1, nsg: 3 })), LoginStatus.AuthenticationFailure);
  });

  it('a security key repeated in one request: initiator error (0200)', () => {
    const m = new LoginStateMachine(catalog(CHAP_POLICY));
    m.handle(req([...FIRST, ['AuthMethod', 'CHAP']]));
    m.handle(req([['CHAP_A', '5']]));
    expectStatus(() => m.handle(req([['CHAP_N', 'common12'], ['CHAP_N', 'common12'], ['CHAP_R', '0x00']])), LoginStatus.InitiatorError);
  });

  it('CHAP keys outside the security stage are refused', () => {
    const m = new LoginStateMachine(catalog({ methodsFor: () => [chapMethod({ username: 'common12', password: 'pass12345678' })] }));
    m.handle(req([...FIRST, ['AuthMethod', 'CHAP']]));
    const r2 = m.handle(req([['CHAP_A', '5']]));
    const k2 = Object.fromEntries(r2.keys);
    const answer = chapResponse(5, Number(k2.CHAP_I), 'pass12345678', Buffer.from(k2.CHAP_C.slice(2), 'hex'));
    m.handle(req([['CHAP_N', 'common12'], ['CHAP_R', `0x${answer.toString('hex')}`]]));
    expectStatus(() => m.handle(req([['CHAP_A', '5']], { csg: 1, nsg: 3 })), LoginStatus.InitiatorError);
  });
});
