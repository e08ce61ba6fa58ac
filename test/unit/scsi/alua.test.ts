import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AluaAccess, AluaChange, AluaMode, AluaState, aluaChangeAnnounced, aluaRefusal, supportedStates, tpgsBits } from '../../../src/scsi/alua';
import { parseSetTargetPortGroups, reportTargetPortGroupsData } from '../../../src/scsi/target-port-groups';
import { Asc, SenseError } from '../../../src/scsi/sense';

/** A fixed ALUA view: group 1 (ports 1, 3) and group 2 (port 2). */
function access(mode: AluaMode, states: Record<number, AluaState>, preferred = 1): AluaAccess {
  return {
    mode,
    groups: () => [{ id: 1, ports: [1, 3] }, { id: 2, ports: [2] }],
    state: (id) => states[id] ?? 'unavailable',
    preferred: (id) => id === preferred,
    implicitTransitionSeconds: 10,
    onChange: () => () => undefined,
    activate: () => Promise.resolve(),
  };
}

describe('ALUA state table (SPC-4 §5.15.2.4)', () => {
  const cdb = (...b: number[]) => Buffer.from(b);
  it('active states allow everything', () => {
    for (const s of ['active/optimized', 'active/non-optimized'] as const) {
      assert.equal(aluaRefusal(s, cdb(0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0)), undefined);
    }
  });
  it('standby: media access NOT READY 04/0B, INQUIRY/TUR/READ CAPACITY/PR/RTPG/STPG allowed', () => {
    assert.equal(aluaRefusal('standby', cdb(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)), Asc.LogicalUnitNotAccessibleTargetPortInStandbyState);
    assert.equal(aluaRefusal('standby', cdb(0x9e, 0x12)), Asc.LogicalUnitNotAccessibleTargetPortInStandbyState, 'GET LBA STATUS');
    for (const ok of [[0x12], [0x00], [0x25], [0x9e, 0x10], [0x5e, 0], [0x5f, 0], [0xa3, 0x0a], [0xa4, 0x0a], [0xa0], [0x1a]]) {
      assert.equal(aluaRefusal('standby', cdb(...ok, 0, 0, 0, 0)), undefined, ok.map((x) => x.toString(16)).join('/'));
    }
  });
  it('unavailable 04/0C and transitioning 04/0A refuse TUR but answer INQUIRY and RTPG', () => {
    assert.equal(aluaRefusal('unavailable', cdb(0, 0, 0, 0, 0, 0)), Asc.LogicalUnitNotAccessibleTargetPortInUnavailableState);
    assert.equal(aluaRefusal('transitioning', cdb(0, 0, 0, 0, 0, 0)), Asc.LogicalUnitNotAccessibleAsymmetricAccessStateTransition);
    assert.equal(aluaRefusal('transitioning', cdb(0x12, 0, 0, 0, 96, 0)), undefined);
    assert.equal(aluaRefusal('unavailable', cdb(0xa3, 0x0a)), undefined);
    assert.equal(aluaRefusal('transitioning', cdb(0xa3, 0x0c)), undefined, 'REPORT SUPPORTED OPERATION CODES');
  });
  it('TPGS bits and supported states per mode', () => {
    assert.deepEqual([tpgsBits('implicit'), tpgsBits('explicit'), tpgsBits('active/active')], [1, 3, 1]);
    assert.deepEqual([supportedStates('implicit'), supportedStates('explicit'), supportedStates('active/active')], [0x8b, 0x8d, 0x09]);
  });
  it('implicit transitions are not announced, explicit and administrative ones are', () => {
    const c = (reason: AluaChange['reason']): AluaChange => ({ reason });
    assert.deepEqual([aluaChangeAnnounced(c('implicit')), aluaChangeAnnounced(c('explicit')), aluaChangeAnnounced(c('config'))], [false, true, true]);
  });
});

describe('REPORT TARGET PORT GROUPS data', () => {
  it('extended header, one descriptor per group with its ports, PREF and supported states', () => {
    const data = reportTargetPortGroupsData(access('implicit', { 1: 'active/optimized', 2: 'active/non-optimized' }), true);
    assert.equal(data.toString('hex'), [
      '00000020', '10', '0a', '0000', // RETURN DATA LENGTH 32, FORMAT TYPE 001b, IMPLICIT TRANSITION TIME 10
      '80', '8b', '0001', '00', '00', '00', '02', '00000001', '00000003', // PREF + AO, T/U/AN/AO, TPG 1, 2 ports
      '01', '8b', '0002', '00', '00', '00', '01', '00000002', // ANO, TPG 2, 1 port
    ].join(''));
  });
  it('length-only format has the 4-byte header', () => {
    const data = reportTargetPortGroupsData(access('explicit', { 1: 'active/optimized', 2: 'standby' }), false);
    assert.equal(data.readUInt32BE(0), data.length - 4);
    assert.equal(data.subarray(4, 8).toString('hex'), '808d0001');
    assert.equal(data[20], 0x02, 'standby (second descriptor: 4 + 8 + 2 ports × 4)');
  });
});

describe('SET TARGET PORT GROUPS parameter list', () => {
  const a = access('explicit', { 1: 'active/optimized', 2: 'standby' });
  const list = (...descs: number[][]) => Buffer.concat([Buffer.alloc(4), ...descs.map((d) => Buffer.from(d))]);
  const senseOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof SenseError);
      return [e.asc, e.field?.byte];
    }
    assert.fail('no error');
  };
  it('accepts a group made active/optimized', () => {
    assert.deepEqual(parseSetTargetPortGroups(a, list([0x00, 0, 0, 2])), [{ id: 2, state: 'active/optimized' }]);
    assert.deepEqual(parseSetTargetPortGroups(a, list([0x00, 0, 0, 2], [0x02, 0, 0, 1])).map((r) => r.state), ['active/optimized', 'standby']);
  });
  it('rejects bad input with INVALID FIELD IN PARAMETER LIST / PARAMETER LIST LENGTH ERROR', () => {
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x00, 0, 0, 7]))), [Asc.InvalidFieldInParameterList, 6], 'unknown group');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x01, 0, 0, 2]))), [Asc.InvalidFieldInParameterList, 4], 'ANO unsupported in explicit mode');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x0f, 0, 0, 2]))), [Asc.InvalidFieldInParameterList, 4], 'transitioning is never requested');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x00, 0, 0, 2], [0x03, 0, 0, 1]))), [Asc.InvalidFieldInParameterList, 8], 'unavailable is never requested (a gateway\'s stop sets it)');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x00, 0, 0, 2], [0x00, 0, 0, 1]))), [Asc.InvalidFieldInParameterList, 8], 'two owners');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x00, 0, 0, 2], [0x02, 0, 0, 2]))), [Asc.InvalidFieldInParameterList, 10], 'a group twice');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, list([0x02, 0, 0, 1]))), [Asc.InvalidFieldInParameterList, 4], 'the owner to standby without a new owner');
    assert.deepEqual(senseOf(() => parseSetTargetPortGroups(a, Buffer.alloc(6))), [Asc.ParameterListLengthError, undefined]);
  });
});
