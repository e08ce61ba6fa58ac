/**
 * Read-only facts about one iSCSI connection for management views (the dashboard's live
 * samples, the REST API's clientinfo, gwcli). Taken from the connection on demand; nothing in
 * the data path reads them.
 */
import type { PortalAddress } from '../transport/portal';

/** Digest names as negotiated in HeaderDigest/DataDigest (RFC 7143 §13.1). */
export type DigestName = 'CRC32C' | 'None';

export interface ConnectionInfo {
  /** Connection ID the initiator chose at login (RFC 7143 §10.12.4). */
  readonly cid: number;
  /** The initiator's IP address, IPv4-mapped IPv6 unwrapped ("::ffff:10.0.0.1" → "10.0.0.1"). */
  readonly initiatorAddress: string;
  readonly initiatorPort: number;
  /** The local address and port the initiator connected to. */
  readonly portal: PortalAddress;
  readonly headerDigest: DigestName;
  readonly dataDigest: DigestName;
}

export function digestName(crc32c: boolean): DigestName {
  return crc32c ? 'CRC32C' : 'None';
}

/** "::ffff:10.0.0.1" → "10.0.0.1"; every other address unchanged ("" when the socket has none). */
export function unmapAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** "10.0.0.1:3260", "[fd00::1]:3260" (brackets so the port is unambiguous, RFC 3986 style). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function connectionInfo(
  cid: number,
  remoteAddress: string | undefined,
  remotePort: number | undefined,
  portal: PortalAddress,
  headerDigest: boolean,
  dataDigest: boolean,
): ConnectionInfo {
  return {
    cid,
    initiatorAddress: unmapAddress(remoteAddress),
    initiatorPort: remotePort ?? 0,
    portal: { host: unmapAddress(portal.host), port: portal.port },
    headerDigest: digestName(headerDigest),
    dataDigest: digestName(dataDigest),
  };
}
