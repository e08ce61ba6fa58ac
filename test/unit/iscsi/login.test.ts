import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginError, LoginStateMachine } from '../../../src/iscsi/login';
import { LoginRequestPdu } from '../../../src/pdu/requests';
import { InitiatorOpcode, LoginStatus } from '../../../src/pdu/opcodes';
import { encodeText } from '../../../src/pdu/text';
import { AuthMethodHandler, AuthPolicy, NO_AUTHENTICATION, OPEN_POLICY } from '../../../src/iscsi/auth';
import { DEFAULT_TARGET_SETTINGS, IscsiTargetNode, TargetCatalog } from '../../../src/iscsi/target-node';
import { ScsiTargetDevice } from '../../../src/scsi/sam';

const TARGET = 'iqn.2003-01.org.example:t1';
const INITIATOR = 'iqn.2007-10.com.example:init';

function catalog(policy: AuthPolicy = OPEN_POLICY, allow = true): TargetCatalog {
  const node: IscsiTargetNode = {
    name: TARGET,
    alias: 'disk-target',
    portalGroupTag: 7,
    device: {} as ScsiTargetDevice, // not used by the login phase
    settings: () => DEFAULT_TARGET_SETTINGS,
    allows: () => allow,
  };
  return {
    find: (n) => (n === TARGET ? node : undefined),
    list: () => [node],
    auth: policy,
    discoverySettings: () => DEFAULT_TARGET_SETTINGS,
    portalsFor: () => [],
  };
}

function req(fields: Partial<LoginRequestPdu>, keys: Array<[string, string]>): LoginRequestPdu {
  return {
    opcode: InitiatorOpcode.LoginRequest,
    transit: true,
    continue: false,
    csg: 0,
    nsg: 1,
    versionMax: 0,
    versionMin: 0,
    isid: Buffer.from('80123456789a', 'hex'),
    tsih: 0,
    itt: 1,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
    data: encodeText(keys),
    ...fields,
  };
}

function expectLoginError(fn: () => unknown, status: LoginStatus) {
  assert.throws(fn, (e: unknown) => e instanceof LoginError && e.status === status);
}

describe('login state machine', () => {
  it('goes security -> operational -> full feature', () => {
    const m = new LoginStateMachine(catalog());
    const r1 = m.handle(req({}, [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['SessionType', 'Normal'], ['AuthMethod', 'None']]));
    assert.deepEqual([r1.transit, r1.csg, r1.nsg, r1.complete], [true, 0, 1, false]);
    const keys1 = Object.fromEntries(r1.keys);
    assert.equal(keys1.AuthMethod, 'None');
    assert.equal(keys1.TargetPortalGroupTag, '7');
    assert.equal(keys1.TargetAlias, 'disk-target');
    const r2 = m.handle(req({ csg: 1, nsg: 3 }, [['HeaderDigest', 'None'], ['MaxBurstLength', '262144'], ['FirstBurstLength', '65536'], ['DefaultTime2Retain', '0']]));
    // ImmediateData etc. are defaults; MaxBurstLength was mentioned: no offers left.
    const keys2 = Object.fromEntries(r2.keys);
    assert.equal(keys2.MaxRecvDataSegmentLength, '262144');
    assert.deepEqual([r2.transit, r2.csg, r2.nsg, r2.complete], [true, 1, 3, true]);
    const result = m.result(5);
    assert.equal(result.session.initiatorName, INITIATOR);
    assert.equal(result.session.maxBurstLength, 262144);
  });

  it('raises its own offers before leaving the operational stage', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', INITIATOR], ['TargetName', TARGET]]).valueOf() as LoginRequestPdu);
    // That first reply carried our offers with T=0; now the initiator answers them.
    const r = m.handle(req({ csg: 1, nsg: 3 }, [['MaxBurstLength', '262144'], ['FirstBurstLength', '65536'], ['DefaultTime2Retain', '0']]));
    assert.equal(r.complete, true);
  });

  it('acknowledges a continued (C bit) request with an empty reply', () => {
    const m = new LoginStateMachine(catalog());
    const whole = encodeText([['InitiatorName', INITIATOR], ['TargetName', TARGET], ['AuthMethod', 'None']]);
    const r1 = m.handle(req({ transit: false, continue: true, data: whole.subarray(0, 20) }, []));
    assert.deepEqual([r1.transit, r1.keys.length], [false, 0]);
    const r2 = m.handle(req({ data: whole.subarray(20) }, []));
    assert.equal(Object.fromEntries(r2.keys).AuthMethod, 'None');
  });

  it('fails with the right status for each bad first request', () => {
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({}, [['TargetName', TARGET]])), LoginStatus.MissingParameter);
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({}, [['InitiatorName', INITIATOR]])), LoginStatus.MissingParameter);
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({}, [['InitiatorName', 'not a name'], ['TargetName', TARGET]])), LoginStatus.InitiatorError);
    expectLoginError(
      () => new LoginStateMachine(catalog()).handle(req({}, [['InitiatorName', INITIATOR], ['TargetName', 'iqn.2000-01.com.example:nope']])),
      LoginStatus.NotFound,
    );
    expectLoginError(
      () => new LoginStateMachine(catalog(OPEN_POLICY, false)).handle(req({}, [['InitiatorName', INITIATOR], ['TargetName', TARGET]])),
      LoginStatus.AuthorizationFailure,
    );
    expectLoginError(
      () => new LoginStateMachine(catalog()).handle(req({}, [['InitiatorName', INITIATOR], ['SessionType', 'Bogus']])),
      LoginStatus.SessionTypeNotSupported,
    );
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({ versionMin: 2 }, [])), LoginStatus.UnsupportedVersion);
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({ csg: 3 }, [])), LoginStatus.InitiatorError);
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({ nsg: 2 }, [])), LoginStatus.InitiatorError);
    expectLoginError(
      () => new LoginStateMachine(catalog()).handle(req({ data: Buffer.from('garbage-without-equals\0') }, [])),
      LoginStatus.InitiatorError,
    );
  });

  it('detects a changed ISID during login', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({ transit: false }, [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['AuthMethod', 'None']]));
    expectLoginError(() => m.handle(req({ isid: Buffer.alloc(6) }, [])), LoginStatus.InitiatorError);
  });

  it('requires authentication when the policy does not allow None', () => {
    const chapOnly: AuthMethodHandler = { name: 'CHAP', start: () => ({ step: () => ({ response: [], done: false }) }) };
    const policy: AuthPolicy = { methodsFor: () => [chapOnly] };
    // Skipping security negotiation is refused.
    expectLoginError(
      () => new LoginStateMachine(catalog(policy)).handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', INITIATOR], ['TargetName', TARGET]])),
      LoginStatus.AuthenticationFailure,
    );
    // Offering only None is refused.
    expectLoginError(
      () => new LoginStateMachine(catalog(policy)).handle(req({}, [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['AuthMethod', 'None']])),
      LoginStatus.AuthenticationFailure,
    );
    // Offering CHAP selects it and the stage is not left before the exchange is done.
    const m = new LoginStateMachine(catalog(policy));
    const r = m.handle(req({}, [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['AuthMethod', 'CHAP,None']]));
    assert.equal(Object.fromEntries(r.keys).AuthMethod, 'CHAP');
    assert.equal(r.transit, false);
  });

  it('lets a discovery session in without a TargetName', () => {
    const m = new LoginStateMachine({ ...catalog(), auth: { methodsFor: () => [NO_AUTHENTICATION] } });
    const r = m.handle(req({ nsg: 3 }, [['InitiatorName', INITIATOR], ['SessionType', 'Discovery'], ['AuthMethod', 'None']]));
    assert.equal(r.complete, true);
    assert.equal(Object.fromEntries(r.keys).TargetPortalGroupTag, undefined);
  });
});

describe('login validation: versions and repeated keys (RFC 7143 §6.2, §11.12.4)', () => {
  const first: Array<[string, string]> = [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['AuthMethod', 'None']];

  it('Version-min above 0x00, or Version-max below Version-min: UNSUPPORTED VERSION (0x0205)', () => {
    expectLoginError(() => new LoginStateMachine(catalog()).handle(req({ versionMin: 1, versionMax: 1 }, first)), LoginStatus.UnsupportedVersion);
    assert.equal(LoginStatus.UnsupportedVersion, 0x0205);
    const ok = new LoginStateMachine(catalog()).handle(req({ versionMin: 0, versionMax: 7 }, first));
    assert.equal(ok.transit, true, 'a higher Version-max is fine: we answer with version 0');
  });

  it('Version-max or Version-min changed in a later request: INITIATOR ERROR', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({ transit: false }, first));
    expectLoginError(() => m.handle(req({ versionMax: 1 }, [])), LoginStatus.InitiatorError);
  });

  it('a key twice in one request (operational or security): INITIATOR ERROR', () => {
    expectLoginError(
      () => new LoginStateMachine(catalog()).handle(req({}, [...first, ['AuthMethod', 'None']])),
      LoginStatus.InitiatorError,
    );
    expectLoginError(
      () => new LoginStateMachine(catalog()).handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', INITIATOR], ['TargetName', TARGET], ['MaxBurstLength', '262144'], ['MaxBurstLength', '65536']])),
      LoginStatus.InitiatorError,
    );
  });

  it('TargetName re-declared with another value, or an operational key offered again, in a later request: INITIATOR ERROR', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({}, first));
    expectLoginError(() => m.handle(req({ csg: 1, nsg: 3 }, [['TargetName', `${TARGET}x`]])), LoginStatus.InitiatorError);
    const m2 = new LoginStateMachine(catalog());
    m2.handle(req({}, first));
    m2.handle(req({ csg: 1, nsg: 3, transit: false }, [['MaxBurstLength', '262144']]));
    expectLoginError(() => m2.handle(req({ csg: 1, nsg: 3 }, [['MaxBurstLength', '65536']])), LoginStatus.InitiatorError);
  });

  it('an identical repeat of InitiatorName (libiscsi does so after CHAP) is accepted', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({}, first));
    assert.doesNotThrow(() => m.handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', INITIATOR]])));
    expectLoginError(() => m.handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', `${INITIATOR}x`]])), LoginStatus.InitiatorError);
  });

  it('answering the target\'s own offers in a later request is no repeat', () => {
    const m = new LoginStateMachine(catalog());
    m.handle(req({ csg: 1, nsg: 3 }, [['InitiatorName', INITIATOR], ['TargetName', TARGET]]));
    const r = m.handle(req({ csg: 1, nsg: 3 }, [['MaxBurstLength', '262144'], ['FirstBurstLength', '65536'], ['DefaultTime2Retain', '0']]));
    assert.equal(r.complete, true);
  });
});
