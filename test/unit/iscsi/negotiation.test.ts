import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Negotiator, NegotiationError } from '../../../src/iscsi/negotiation';
import { DEFAULT_TARGET_OFFER, TargetOffer } from '../../../src/iscsi/parameters';

function negotiate(pairs: Array<[string, string]>, offer: Partial<TargetOffer> = {}, discovery = false) {
  const n = new Negotiator({ ...DEFAULT_TARGET_OFFER, ...offer });
  if (discovery) n.sessionType = 'Discovery';
  const response = n.respond(pairs);
  return { n, response: Object.fromEntries(response) as Record<string, string> };
}

describe('negotiation (RFC 7143 §6.2)', () => {
  // [offered key, offered value, target offer, expected answer]
  const table: Array<[string, string, Partial<TargetOffer>, string]> = [
    ['HeaderDigest', 'CRC32C,None', {}, 'CRC32C'],
    ['HeaderDigest', 'None,CRC32C', {}, 'None'],
    ['HeaderDigest', 'CRC32C', { headerDigest: ['None'] }, 'Reject'],
    ['DataDigest', 'MD5,CRC32C', {}, 'CRC32C'],
    ['MaxBurstLength', '1048576', {}, '524288'],
    ['MaxBurstLength', '65536', {}, '65536'],
    ['MaxBurstLength', '511', {}, 'Reject'],
    ['MaxBurstLength', '16777216', {}, 'Reject'],
    ['MaxBurstLength', '0x10000', {}, '65536'],
    ['MaxBurstLength', 'lots', {}, 'Reject'],
    ['FirstBurstLength', '65536', {}, '65536'],
    ['DefaultTime2Wait', '0', {}, '2'],
    ['DefaultTime2Wait', '10', {}, '10'],
    ['DefaultTime2Retain', '30', {}, '20'],
    ['MaxOutstandingR2T', '16', { maxOutstandingR2T: 4 }, '4'],
    ['ErrorRecoveryLevel', '2', {}, '0'],
    ['ErrorRecoveryLevel', '3', {}, 'Reject'],
    ['MaxConnections', '8', {}, '1'],
    ['InitialR2T', 'No', {}, 'Yes'],
    ['InitialR2T', 'No', { initialR2T: false }, 'No'],
    ['InitialR2T', 'Maybe', {}, 'Reject'],
    ['ImmediateData', 'Yes', {}, 'Yes'],
    ['ImmediateData', 'Yes', { immediateData: false }, 'No'],
    ['DataPDUInOrder', 'No', {}, 'Yes'],
    ['DataSequenceInOrder', 'No', {}, 'Yes'],
    ['iSCSIProtocolLevel', '1', {}, '1'],
    ['iSCSIProtocolLevel', '5', {}, '2'],
    ['IFMarker', 'Yes', {}, 'No'],
    ['OFMarkInt', '2048~8192', {}, 'Irrelevant'],
    ['X-com.example.Key', 'v', {}, 'NotUnderstood'],
    ['UnknownKey', 'v', {}, 'NotUnderstood'],
    ['TargetAlias', 'x', {}, 'Irrelevant'],
  ];
  for (const [key, value, offer, expected] of table) {
    it(`${key}=${value} -> ${expected}`, () => {
      assert.equal(negotiate([[key, value]], offer).response[key], expected);
    });
  }

  it('owes no answer to declarations but records the initiator MaxRecvDataSegmentLength', () => {
    const { n, response } = negotiate([
      ['InitiatorName', 'iqn.2000-01.com.example:i'],
      ['MaxRecvDataSegmentLength', '65536'],
    ]);
    assert.equal(response.InitiatorName, undefined);
    assert.equal(response.MaxRecvDataSegmentLength, undefined);
    assert.equal(n.connectionParameters().maxXmitDataSegmentLength, 65536);
    assert.equal(n.sessionParameters().initiatorName, 'iqn.2000-01.com.example:i');
    assert.deepEqual(n.declarations(), [['MaxRecvDataSegmentLength', '262144']]);
    assert.deepEqual(n.declarations(), []);
  });

  it('caps our data segments by max_xmit_data_segment_length', () => {
    const { n } = negotiate([['MaxRecvDataSegmentLength', '1048576']], { maxXmitDataSegmentLength: 131072 });
    assert.equal(n.connectionParameters().maxXmitDataSegmentLength, 131072);
  });

  it('rejects an invalid MaxRecvDataSegmentLength', () => {
    assert.equal(negotiate([['MaxRecvDataSegmentLength', '100']]).response.MaxRecvDataSegmentLength, 'Reject');
  });

  it('keeps FirstBurstLength <= MaxBurstLength', () => {
    const { n, response } = negotiate([
      ['MaxBurstLength', '65536'],
      ['FirstBurstLength', '262144'],
    ]);
    assert.equal(response.FirstBurstLength, '65536');
    assert.equal(n.sessionParameters().firstBurstLength, 65536);
  });

  it('answers Irrelevant for session keys in a discovery session', () => {
    const { response } = negotiate([['MaxBurstLength', '1024'], ['HeaderDigest', 'None']], {}, true);
    assert.equal(response.MaxBurstLength, 'Irrelevant');
    assert.equal(response.HeaderDigest, 'None');
  });

  it('fails a key offered twice in one request', () => {
    assert.throws(() => negotiate([['MaxBurstLength', '1024'], ['MaxBurstLength', '2048']]), NegotiationError);
  });

  it('offers keys the initiator did not mention when ours differ from the default', () => {
    const n = new Negotiator({ ...DEFAULT_TARGET_OFFER, immediateData: false });
    n.respond([['HeaderDigest', 'None']]);
    const offers = Object.fromEntries(n.targetOffers());
    assert.equal(offers.ImmediateData, 'No');
    assert.equal(offers.MaxBurstLength, '524288');
    assert.equal(offers.HeaderDigest, undefined);
    assert.equal(n.awaitingAnswers(), true);
    n.respond([['ImmediateData', 'No'], ['MaxBurstLength', '262144'], ['FirstBurstLength', '65536'], ['DefaultTime2Retain', '0']]);
    assert.equal(n.awaitingAnswers(), false);
    const p = n.sessionParameters();
    assert.equal(p.immediateData, false);
    assert.equal(p.maxBurstLength, 262144);
  });

  it('refuses an answer that breaks the negotiation rule', () => {
    const n = new Negotiator(DEFAULT_TARGET_OFFER);
    n.respond([]);
    n.targetOffers();
    assert.throws(() => n.respond([['MaxBurstLength', '1048576']]), NegotiationError);
  });

  it('rejects login-only keys in a Text request', () => {
    const n = new Negotiator(DEFAULT_TARGET_OFFER);
    assert.deepEqual(n.respond([['MaxBurstLength', '4096']], false), [['MaxBurstLength', 'Reject']]);
  });
});
