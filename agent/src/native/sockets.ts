// Sockets inside a network namespace, made natively (a thread enters the netns, creates the
// socket, leaves) and handed to Node as fds:
//   net.createServer(handler).listen({ fd: await listenInNetns({ netns, port: 15001 }) })
//   new net.Socket({ fd: await socketInNetns({ netns, bind: { host: clientIp }, transparent: true }) }).connect(port, host)
// plus socket queries (cookies, addresses, SO_MARK).
import type { Server, Socket } from 'node:net';
import { InvalidArgumentError } from '../common/errors.js';
import { addon, type SocketAddress } from './addon.js';
import { callNative, callNativeAsync } from './errors.js';
import { optional, requireBool, requireFd, requireInt, requireIp, requireObject, requirePath, requirePort } from './validate.js';

export interface ListenOptions {
  /** Network namespace file (/run/netns/NAME, /proc/PID/ns/net); omitted: this process's netns. */
  netns?: string;
  /** Default 0.0.0.0. An IPv6 address makes an IPv6 socket. */
  host?: string;
  port: number;
  reusePort?: boolean;
  /** Default true, as Node's own listeners. */
  reuseAddr?: boolean;
  /** IP_TRANSPARENT: accept connections to addresses that are not local (TPROXY). */
  transparent?: boolean;
  /** SO_MARK on the listener (accepted sockets take the SYN's mark with tcp_fwmark_accept). */
  mark?: number;
  backlog?: number;
}

export interface OutboundSocketOptions {
  netns?: string;
  /** Address family when not binding; default 4. */
  family?: 4 | 6;
  /** IP_TRANSPARENT: lets `bind` use an address that is not local (keeping a client's source IP). */
  transparent?: boolean;
  mark?: number;
  /** Source address (port 0 or omitted: a port is chosen by bind()). */
  bind?: { host: string; port?: number };
  /**
   * Where the socket will connect (IPv4). With `bind` on port 0, a source port whose 4-tuple a
   * socket in the netns already has (e.g. a connection the proxy accepted from this very
   * client) is skipped: the app's SYN would otherwise reach that socket.
   */
  destination?: { host: string; port: number };
}

function common(o: { netns?: string; transparent?: boolean; mark?: number }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const netns = optional(o.netns, (v) => requirePath(v, 'options.netns'));
  if (netns) out.netns = netns;
  out.transparent = optional(o.transparent, (v) => requireBool(v, 'options.transparent')) ?? false;
  const mark = optional(o.mark, (v) => requireInt(v, 'options.mark', 0, 0xffffffff));
  if (mark !== undefined) out.mark = mark;
  return out;
}

/** A listening TCP socket inside `netns`; give the fd to net.Server.listen({ fd }). */
export async function listenInNetns(options: ListenOptions): Promise<number> {
  requireObject(options, 'options');
  const o = common(options);
  o.host = optional(options.host, (v) => requireIp(v, 'options.host')) ?? '0.0.0.0';
  o.port = requirePort(options.port, 'options.port');
  o.reusePort = optional(options.reusePort, (v) => requireBool(v, 'options.reusePort')) ?? false;
  o.reuseAddr = optional(options.reuseAddr, (v) => requireBool(v, 'options.reuseAddr')) ?? true;
  o.backlog = optional(options.backlog, (v) => requireInt(v, 'options.backlog', 1, 65535)) ?? 511;
  return callNativeAsync(() => addon().listenInNetns(o));
}

/** An unconnected TCP socket inside `netns`; give the fd to new net.Socket({ fd }).connect(…). */
export async function socketInNetns(options: OutboundSocketOptions = {}): Promise<number> {
  requireObject(options, 'options');
  const o = common(options);
  const family = optional(options.family, (v) => requireInt(v, 'options.family', 4, 6));
  if (family !== undefined && family !== 4 && family !== 6) throw new InvalidArgumentError('options.family', 'must be 4 or 6');
  if (family !== undefined) o.family = family;
  if (options.bind !== undefined) {
    const b = requireObject(options.bind, 'options.bind');
    o.bind = { host: requireIp(b.host, 'options.bind.host'), port: optional(b.port, (v) => requirePort(v, 'options.bind.port')) ?? 0 };
  }
  if (options.destination !== undefined) {
    const d = requireObject(options.destination, 'options.destination');
    o.destination = { host: requireIp(d.host, 'options.destination.host'), port: requirePort(d.port, 'options.destination.port') };
  }
  return callNativeAsync(() => addon().socketInNetns(o));
}

type FdLike = number | Socket | Server;

/** The fd under a connected net.Socket or listening net.Server (Linux; libuv exposes it). */
export function socketFd(s: FdLike): number {
  if (typeof s === 'number') return requireFd(s, 'fd');
  const handle = (s as unknown as { _handle?: { fd?: unknown } } | null)?._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new InvalidArgumentError('socket', 'has no file descriptor (not connected or listening yet, or already closed)');
  return fd;
}

/** SO_COOKIE: the id BPF's bpf_get_socket_cookie() returns for this socket. */
export function socketCookie(s: FdLike): bigint {
  const fd = socketFd(s);
  return callNative(() => addon().socketCookie(fd));
}

/** SO_NETNS_COOKIE: the id of the socket's netns, as bpf_get_netns_cookie() sees it. */
export function netnsCookie(s: FdLike): bigint {
  const fd = socketFd(s);
  return callNative(() => addon().netnsCookie(fd));
}

/** The netns cookie of a netns file (/run/netns/NAME), read from a socket made inside it. */
export async function netnsCookieOfPath(netns: string): Promise<bigint> {
  requirePath(netns, 'netns');
  return callNativeAsync(() => addon().netnsCookieOfPath(netns));
}

export function localAddress(s: FdLike): SocketAddress {
  const fd = socketFd(s);
  return callNative(() => addon().localAddress(fd));
}

export function peerAddress(s: FdLike): SocketAddress {
  const fd = socketFd(s);
  return callNative(() => addon().peerAddress(fd));
}

export function setMark(s: FdLike, mark: number): void {
  const fd = socketFd(s);
  requireInt(mark, 'mark', 0, 0xffffffff);
  callNative(() => addon().setMark(fd, mark));
}

export function getMark(s: FdLike): number {
  const fd = socketFd(s);
  return callNative(() => addon().getMark(fd));
}

/** Closes an fd this module returned that was never handed to Node. */
export function closeFd(fd: number): void {
  requireFd(fd, 'fd');
  callNative(() => addon().closeFd(fd));
}
