// The sockets of one enrolled pod, all made inside its netns by the native helpers: its three
// listeners (SO_REUSEPORT so a new agent can listen beside the old one during a restart), the
// proxy's outbound dials (bypass mark: never captured) and its dials to the pod's own app from
// the client's IP (IP_TRANSPARENT + APP_MARK, see pod-routing.ts).
import net from 'node:net';
import { closeFd, listenInNetns, netnsCookie, socketInNetns } from '../native/index.js';
import type { AppDialer, ListenOptions, PodNetHooks, TcpDialer } from '../proxy/index.js';
import type { OrigDst } from '../redirect/index.js';
import { APP_MARK } from './pod-routing.js';

export const OUTBOUND_PORT = 15001;
export const INBOUND_PLAINTEXT_PORT = 15006;
export const HBONE_PORT = 15008;

export interface PodListenerFds {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
}

export async function openPodListeners(netns: string, mark: number): Promise<PodListenerFds> {
  const opened: number[] = [];
  try {
    const l = async (host: string, port: number) => {
      const fd = await listenInNetns({ netns, host, port, reusePort: true, mark, backlog: 4096 });
      opened.push(fd);
      return fd;
    };
    return { outbound: await l('127.0.0.1', OUTBOUND_PORT), inboundPlaintext: await l('0.0.0.0', INBOUND_PLAINTEXT_PORT), hbone: await l('0.0.0.0', HBONE_PORT) };
  } catch (err) {
    for (const fd of opened) closeFd(fd);
    throw err;
  }
}

/** The fds as a pod proxy's listen() takes them. */
export function listenTargets(fds: PodListenerFds): ListenOptions {
  return { outbound: { fd: fds.outbound }, inboundPlaintext: { fd: fds.inboundPlaintext }, hbone: { fd: fds.hbone } };
}

/** Closes the fd targets of `l` (listeners nobody took). */
export function closeListenTargets(l: ListenOptions): void {
  for (const t of Object.values(l)) if (t && 'fd' in t) closeFd(t.fd);
}

function connecting(fd: number, host: string, port: number): net.Socket {
  const s = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
  s.setNoDelay(true);
  s.connect({ host, port });
  return s;
}

/** HBONE to peers and passthrough, leaving from the pod's netns (the network sees the pod's IP). */
export function outboundDialer(netns: string, mark: number): TcpDialer {
  return async (dst) => connecting(await socketInNetns({ netns, mark }), dst.ip, dst.port);
}

/** To the pod's app, from the client's address, so the app sees who called. */
export function appDialer(netns: string): AppDialer {
  return async (dst, src) => {
    const fd = src.ip && net.isIPv4(src.ip)
      ? await socketInNetns({ netns, transparent: true, mark: APP_MARK, bind: { host: src.ip }, destination: { host: dst.ip, port: dst.port } })
      : await socketInNetns({ netns, mark: APP_MARK });
    return connecting(fd, dst.ip, dst.port);
  };
}

/** Finds the original destination of a :15001 connection (the redirect maps, deleted on read). */
export type OrigDstReader = (netnsCookie: bigint, peerPort: number) => Promise<OrigDst | undefined>;

/** Every socket hook of one pod's proxy: the same on the agent's main thread and in its workers. */
export function podNetHooks(netns: string, bypassMark: number, takeOrigDst: OrigDstReader): PodNetHooks {
  return {
    dialOut: outboundDialer(netns, bypassMark),
    dialApp: appDialer(netns),
    originalDst: async (s) => {
      const d = await takeOrigDst(netnsCookie(s), s.remotePort ?? 0);
      return d ? { ip: d.address, port: d.port } : undefined;
    },
  };
}
