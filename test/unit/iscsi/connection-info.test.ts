/** Management view of a connection: address unwrapping, host:port formatting, digest names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionInfo, digestName, formatHostPort, unmapAddress } from '../../../src/iscsi/connection-info';
import { liveConnection } from '../../../src/web/live';

test('IPv4-mapped IPv6 addresses are unwrapped, others kept as they are', () => {
  assert.equal(unmapAddress('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(unmapAddress('::FFFF:10.1.2.3'), '10.1.2.3');
  assert.equal(unmapAddress('127.0.0.2'), '127.0.0.2');
  assert.equal(unmapAddress('::1'), '::1');
  assert.equal(unmapAddress('fd00::ffff:1'), 'fd00::ffff:1');
  // "::ffff:" followed by something that is not a dotted quad is a real IPv6 address.
  assert.equal(unmapAddress('::ffff:a00:1'), '::ffff:a00:1');
  assert.equal(unmapAddress(undefined), '');
});

test('host:port puts IPv6 hosts in brackets', () => {
  assert.equal(formatHostPort('127.0.0.1', 3260), '127.0.0.1:3260');
  assert.equal(formatHostPort('::1', 51000), '[::1]:51000');
  assert.equal(formatHostPort('fd00::10', 3260), '[fd00::10]:3260');
});

test('digests are named as negotiated (RFC 7143 HeaderDigest/DataDigest values)', () => {
  assert.equal(digestName(true), 'CRC32C');
  assert.equal(digestName(false), 'None');
});

test('connectionInfo and its live (dashboard) form', () => {
  const info = connectionInfo(3, '::ffff:127.0.0.1', 41234, { host: '::ffff:127.0.0.1', port: 3260 }, true, false);
  assert.deepEqual(info, {
    cid: 3, initiatorAddress: '127.0.0.1', initiatorPort: 41234, portal: { host: '127.0.0.1', port: 3260 }, headerDigest: 'CRC32C', dataDigest: 'None',
  });
  assert.deepEqual(liveConnection(info), {
    cid: 3, ip_address: '127.0.0.1', initiator: '127.0.0.1:41234', portal: '127.0.0.1:3260', header_digest: 'CRC32C', data_digest: 'None',
  });
  const v6 = liveConnection(connectionInfo(0, '::1', 50000, { host: '::1', port: 3261 }, false, true));
  assert.equal(v6.ip_address, '::1');
  assert.equal(v6.initiator, '[::1]:50000');
  assert.equal(v6.portal, '[::1]:3261');
  assert.equal(v6.header_digest, 'None');
  assert.equal(v6.data_digest, 'CRC32C');
  // A socket already torn down has no address or port: empty, never "undefined".
  const gone = connectionInfo(1, undefined, undefined, { host: '', port: 0 }, false, false);
  assert.equal(gone.initiatorAddress, '');
  assert.equal(gone.initiatorPort, 0);
});
