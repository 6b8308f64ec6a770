// Address helpers: xDS carries IPs as bytes; HBONE carries them in :authority and forwarded.
import { isIP, isIPv4 } from 'node:net';
import { BadRequestError } from './errors.js';

export interface SocketAddr {
  ip: string;
  port: number;
}

export function ipFromBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
    return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
  }
  throw new RangeError(`an IP address is 4 or 16 bytes, not ${b.length}`);
}

/** Strips the IPv4-mapped prefix Node puts on dual-stack peers. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

export function formatAddr(a: SocketAddr): string {
  return isIP(a.ip) === 6 ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/** Parses `ip:port` / `[ip6]:port` (an HBONE :authority); throws BadRequestError. */
export function parseAuthority(authority: string | undefined): SocketAddr {
  if (!authority) throw new BadRequestError('CONNECT without :authority');
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(authority) ?? /^([0-9.]+):(\d{1,5})$/.exec(authority);
  if (!m) throw new BadRequestError(`:authority '${authority.slice(0, 100)}' is not ip:port`);
  const ip = m[1]!;
  const port = Number(m[2]);
  if (!isIP(ip)) throw new BadRequestError(`:authority '${authority.slice(0, 100)}' has no valid IP`);
  if (port < 1 || port > 65535) throw new BadRequestError(`:authority '${authority}' has port ${port} outside 1-65535`);
  return { ip, port };
}

/** `forwarded: for="ip:port"` as ztunnel sends it (RFC 7239; IPv6 in brackets). */
export function forwardedHeader(src: SocketAddr, host?: string): string {
  return `for="${formatAddr(src)}"${host ? `;host=${host}` : ''}`;
}

/** The `for=` address of a forwarded header, when it parses. */
export function parseForwardedFor(header: string | string[] | undefined): SocketAddr | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  const m = /(?:^|[;,\s])for="?([^";,]+)"?/i.exec(h);
  if (!m) return undefined;
  try {
    return parseAuthority(m[1]);
  } catch {
    return undefined;
  }
}

/** The `host=` of a forwarded header: the service the source meant (ztunnel's inbound guess). */
export function parseForwardedHost(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const m = h ? /(?:^|[;,\s])host="?([A-Za-z0-9.-]{1,253})"?/i.exec(h) : null;
  return m?.[1];
}
