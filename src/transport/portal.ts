/**
 * TCP network portals (RFC 7143 §4.1): one listening socket per HOST:PORT. Knows nothing of
 * iSCSI; hands each accepted socket to the service.
 */
import * as net from 'node:net';

export interface PortalAddress {
  readonly host: string;
  readonly port: number;
}

export class PortalAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PortalAddressError';
  }
}

/**
 * Parse "HOST:PORT", "HOST" (port 3260), "[IPv6]:PORT" or "[IPv6]". Hosts must be IP
 * addresses: a portal is bound to an interface address, not a name.
 */
export function parsePortal(text: string, defaultPort = 3260): PortalAddress {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // bare IPv6 without port
  } else {
    const i = text.lastIndexOf(':');
    host = i >= 0 ? text.slice(0, i) : text;
    portText = i >= 0 ? text.slice(i + 1) : undefined;
  }
  if (net.isIP(host) === 0) throw new PortalAddressError(`invalid portal address "${text}": "${host}" is not an IPv4 or IPv6 address`);
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new PortalAddressError(`invalid portal address "${text}": port must be 1-65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

export function formatAddress(p: PortalAddress): string {
  return net.isIPv6(p.host) ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

export function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host) || host === '::ffff:127.0.0.1';
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** Listen on a portal; resolves once bound (rejects with EADDRINUSE etc.). */
export function listenPortal(address: PortalAddress, onSocket: (socket: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, onSocket);
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host: address.host, port: address.port, ipv6Only: net.isIPv6(address.host), backlog: 128 }, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}
