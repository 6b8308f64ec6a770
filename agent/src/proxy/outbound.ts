// The source side (:15001): a connection accepted in the source pod's netns plus its original
// destination. The destination decides the path:
//   enrolled workload (HBONE)  → same node: in process, the destination's policy still enforced;
//                                 else HBONE CONNECT over the pool with the source's certificate
//   Service VIP                → one healthy endpoint per connection, spread across nodes, then
//                                 as above; no endpoint → the client sees its connection refused
//   anything else              → plain TCP passthrough, from the source pod's netns
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WorkloadType, type Service, type Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { tryParseSpiffeId } from '../identity/spiffe.js';
import type { ConnectionInfo, ResponseFlag } from '../telemetry/connection-info.js';
import { logger } from '../common/log.js';
import type { ConnectionTracker } from './connection-tracker.js';
import type { HbonePool, TcpDialer } from './hbone-pool.js';
import { type MeshView, isHbone, isHealthy, peerInfo, serviceInfo, serviceKey, workloadIdentity, workloadIps } from './mesh-view.js';
import { formatAddr, forwardedHeader, normalizeIp, type SocketAddr } from './addresses.js';
import { HboneStatusError, NoHealthyEndpointError } from './errors.js';
import type { InboundAttempt } from './inbound.js';
import { resetStream } from './relay.js';

const log = logger('outbound');

export const HBONE_PORT = 15008;

/** The pod a connection comes from. */
export interface SourcePod {
  ips: readonly string[];
  identity: string;
  workload(): Workload | undefined;
  /** TCP sockets leaving from the pod's netns (HBONE and passthrough) */
  dialOut: TcpDialer;
}

export interface OutboundEnv {
  mesh: MeshView;
  tracker: ConnectionTracker;
  pool: HbonePool;
  nodeName: string;
  hbonePort: number;
  connectTimeoutMs: number;
  /** the same-node shortcut: a pod proxied by this agent that owns `ip` */
  localPod(ip: string): { acceptLocal(a: InboundAttempt): void } | undefined;
}

interface Target {
  ip: string;
  port: number;
  workload?: Workload | undefined;
  service?: Service | undefined;
}

const roundRobin = new Map<string, number>();

/** One healthy endpoint of `svc` for `port`, rotating across nodes first, then pods. */
export function pickEndpoint(mesh: MeshView, svc: Service, port: number): Target | undefined {
  const key = serviceKey(svc);
  const eps = mesh.endpointsOf(svc).filter((w) => isHealthy(w) && w.addresses.length > 0);
  if (eps.length === 0) return undefined;
  const byNode = new Map<string, Workload[]>();
  for (const w of eps.sort((a, b) => a.uid.localeCompare(b.uid))) {
    const l = byNode.get(w.node) ?? [];
    l.push(w);
    byNode.set(w.node, l);
  }
  const nodes = [...byNode.keys()].sort();
  const n = roundRobin.get(key) ?? 0;
  roundRobin.set(key, n + 1);
  const pods = byNode.get(nodes[n % nodes.length]!)!;
  const w = pods[Math.floor(n / nodes.length) % pods.length]!;
  const targetPort =
    w.services[key]?.ports.find((p) => p.servicePort === port)?.targetPort ||
    svc.ports.find((p) => p.servicePort === port)?.targetPort ||
    port;
  return { ip: workloadIps(w)[0]!, port: targetPort, workload: w, service: svc };
}

const BAGGAGE_KIND: Record<number, string> = {
  [WorkloadType.DEPLOYMENT]: 'deployment',
  [WorkloadType.CRONJOB]: 'cronjob',
  [WorkloadType.POD]: 'pod',
  [WorkloadType.JOB]: 'job',
};

/** ztunnel's baggage: source metadata for the destination's telemetry (informational only). */
export function baggageHeader(w: Workload | undefined): string | undefined {
  if (!w) return undefined;
  const parts: string[] = [];
  if (w.clusterId) parts.push(`k8s.cluster.name=${w.clusterId}`);
  if (w.namespace) parts.push(`k8s.namespace.name=${w.namespace}`);
  const name = w.workloadName || w.name;
  if (name) parts.push(`k8s.${BAGGAGE_KIND[w.workloadType] ?? 'pod'}.name=${name}`);
  if (w.canonicalName) parts.push(`service.name=${w.canonicalName}`);
  if (w.canonicalRevision) parts.push(`service.version=${w.canonicalRevision}`);
  return parts.length ? parts.join(',') : undefined;
}

function statusFlag(err: unknown): ResponseFlag {
  if (err instanceof HboneStatusError) return err.status === 401 ? 'DENY' : 'CONNECT';
  const msg = (err as Error)?.message ?? '';
  if (/certificate|identity|TLS|SSL|alert/i.test(msg)) return 'TLS_FAILURE';
  return 'CONNECT';
}

/** Proxies one connection accepted on :15001 towards its original destination. */
export function handleOutbound(client: Socket, origDst: SocketAddr, src: SourcePod, env: OutboundEnv): void {
  client.setNoDelay(true);
  client.on('error', () => {
    /* reported by the relay or the failure path */
  });
  const srcWorkload = src.workload();
  const srcAddr: SocketAddr = { ip: src.ips[0] ?? normalizeIp(client.remoteAddress ?? ''), port: client.remotePort ?? 0 };
  const srcInfo = peerInfo(srcWorkload, src.identity);

  let target: Target;
  const svc = env.mesh.serviceByVip(origDst.ip);
  if (svc) {
    const ep = pickEndpoint(env.mesh, svc, origDst.port);
    if (!ep) {
      const info: ConnectionInfo = { direction: 'outbound', srcAddr: formatAddr(srcAddr), dstAddr: formatAddr(origDst), src: srcInfo, dst: {}, service: serviceInfo(svc), security: 'unknown' };
      env.tracker.open(info).fail('CONNECT', new NoHealthyEndpointError(serviceKey(svc)));
      resetStream(client);
      return;
    }
    target = ep;
  } else {
    target = { ip: origDst.ip, port: origDst.port, workload: env.mesh.workloadByIp(origDst.ip) };
  }

  const dstW = target.workload;
  const appAddr: SocketAddr = { ip: target.ip, port: target.port };
  if (dstW && isHbone(dstW)) {
    const dstIdentity = workloadIdentity(dstW);
    const local = env.localPod(target.ip);
    if (local) {
      const info: ConnectionInfo = {
        direction: 'outbound',
        srcAddr: formatAddr(srcAddr),
        dstAddr: formatAddr(appAddr),
        src: srcInfo,
        dst: peerInfo(dstW, dstIdentity),
        service: serviceInfo(target.service),
        security: 'mutual_tls',
      };
      local.acceptLocal({
        srcAddr,
        peer: tryParseSpiffeId(src.identity),
        target: appAddr,
        security: 'mutual_tls',
        source: client,
        accept: () => client,
        refuse: () => resetStream(client),
        service: serviceInfo(target.service),
        mirror: info,
      });
      return;
    }
    return viaHbone(client, srcAddr, appAddr, dstW, dstIdentity, target.service, src, env);
  }
  return passthrough(client, srcAddr, appAddr, target, src, env);
}

function viaHbone(client: Socket, srcAddr: SocketAddr, appAddr: SocketAddr, dstW: Workload, dstIdentity: string, svc: Service | undefined, src: SourcePod, env: OutboundEnv): void {
  const hboneDst: SocketAddr = { ip: appAddr.ip, port: env.hbonePort };
  const authority = formatAddr(appAddr);
  const info: ConnectionInfo = {
    direction: 'outbound',
    srcAddr: formatAddr(srcAddr),
    dstAddr: formatAddr(hboneDst),
    hboneAddr: authority,
    src: peerInfo(src.workload(), src.identity),
    dst: peerInfo(dstW, dstIdentity),
    service: serviceInfo(svc),
    security: 'mutual_tls',
  };
  const record = env.tracker.open(info);
  let cancelled: Error | undefined;
  record.onAbort((err) => {
    cancelled = err;
    resetStream(client);
  });
  const headers: Record<string, string> = { forwarded: forwardedHeader(srcAddr, svc?.hostname) };
  const baggage = baggageHeader(src.workload());
  if (baggage) headers.baggage = baggage;
  env.pool
    .connect({ srcIdentity: src.identity, dstIdentity, dst: hboneDst, srcIp: srcAddr.ip }, { authority, headers }, src.dialOut)
    .then(
      (stream) => {
        if (cancelled || client.destroyed) {
          stream.close(0x8 /* CANCEL */);
          return record.fail('CONNECT', cancelled ?? 'the client went away');
        }
        record.relay(client, stream);
      },
      (err: Error) => {
        log.debug({ authority, err: err.message }, 'HBONE connect failed');
        resetStream(client);
        record.fail(statusFlag(err), err);
      },
    );
}

function passthrough(client: Socket, srcAddr: SocketAddr, dst: SocketAddr, target: Target, src: SourcePod, env: OutboundEnv): void {
  const info: ConnectionInfo = {
    direction: 'outbound',
    srcAddr: formatAddr(srcAddr),
    dstAddr: formatAddr(dst),
    src: peerInfo(src.workload(), src.identity),
    dst: peerInfo(target.workload),
    service: serviceInfo(target.service),
    security: 'unknown',
  };
  const record = env.tracker.open(info);
  let upstream: Socket | undefined;
  record.onAbort((err) => {
    upstream?.destroy();
    resetStream(client);
    record.fail('CONNECT', err);
  });
  src.dialOut(dst).then(
    (sock) => {
      upstream = sock;
      let connected = false;
      const timer = setTimeout(() => sock.destroy(new Error(`connecting to ${formatAddr(dst)} timed out`)), env.connectTimeoutMs);
      const onGone = () => sock.destroy();
      client.once('close', onGone);
      sock.once('connect', () => {
        connected = true;
        clearTimeout(timer);
        client.off('close', onGone);
        if (client.destroyed) return record.fail('CONNECT', 'the client went away');
        record.relay(client, sock as Duplex);
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        client.off('close', onGone);
        if (!connected) {
          resetStream(client);
          record.fail('CONNECT', err);
        }
      });
    },
    (err: Error) => {
      resetStream(client);
      record.fail('CONNECT', err);
    },
  );
}
