// The destination side of a connection, shared by the three ways one arrives: an HBONE CONNECT
// on :15008, plaintext steered to :15006, and a same-node connection handed over in process.
// Order (ztunnel's): the local workload must be known (else 503), L4 policy against the peer
// identity (deny → 401 / reset), connect to the app keeping the client's IP (fail → 503), then
// relay. The decision is re-evaluated when policies change for as long as the connection lives.
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { authorize, type Connection } from '../policy/evaluate.js';
import { formatSpiffeId, type Identity } from '../identity/spiffe.js';
import type { ConnectionInfo, ServiceInfo } from '../telemetry/connection-info.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { type MeshView, peerInfo, workloadIdentity } from './mesh-view.js';
import { formatAddr, type SocketAddr } from './addresses.js';
import { resetStream } from './relay.js';

export interface InboundAttempt {
  /** the client: its pod IP and port */
  srcAddr: SocketAddr;
  /** the authenticated peer identity; undefined for plaintext */
  peer?: Identity | undefined;
  /** the app address inside this pod */
  target: SocketAddr;
  /** the HBONE :authority, when tunnelled */
  hboneAddr?: string | undefined;
  security: 'mutual_tls' | 'unknown';
  /** the side the client is on: watched so a client that leaves aborts the dial */
  source: Duplex;
  /** the client side is ready for bytes (HBONE: answer 200); returns the duplex to relay */
  accept(): Duplex;
  /** refuse: HBONE answers the status, plaintext and same-node reset the client */
  refuse(status: 401 | 503): void;
  /** the service the source meant (HBONE forwarded host=, or known in process) */
  service?: ServiceInfo | undefined;
  /** same node: the source side's outbound view, reported with this one */
  mirror?: ConnectionInfo | undefined;
}

export interface AppDialer {
  /** A socket connecting (connect() already called) from `src` to the app at `dst`. */
  (dst: SocketAddr, src: SocketAddr): Promise<Socket>;
}

export interface InboundEnv {
  mesh: MeshView;
  tracker: ConnectionTracker;
  dialApp: AppDialer;
  connectTimeoutMs: number;
}

/** Why the connection is denied now, or undefined while it is allowed. */
export function inboundDenial(mesh: MeshView, conn: Connection): string | undefined {
  const w = mesh.workloadByIp(conn.dstIp);
  if (!w) return `no workload with address ${conn.dstIp} is known`;
  const d = authorize(mesh.policiesFor(w), conn);
  if (d.allowed) return undefined;
  return d.reason === 'explicitly-denied' ? `denied by ${d.policy}` : 'no ALLOW policy matches';
}

async function connectApp(env: InboundEnv, dst: SocketAddr, src: SocketAddr, source: Duplex): Promise<Socket> {
  const sock = await env.dialApp(dst, src);
  return new Promise<Socket>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.off('connect', onConnect);
      sock.off('error', done);
      source.off('close', onSourceGone);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(sock);
    };
    const onConnect = () => done();
    const onSourceGone = () => done(new Error('the client went away while connecting to the app'));
    const timer = setTimeout(() => done(new Error(`connecting to ${formatAddr(dst)} timed out after ${env.connectTimeoutMs} ms`)), env.connectTimeoutMs);
    sock.once('connect', onConnect);
    sock.once('error', done);
    source.once('close', onSourceGone);
  });
}

export function handleInbound(a: InboundAttempt, env: InboundEnv): void {
  const local = env.mesh.workloadByIp(a.target.ip);
  const peerId = a.peer ? formatSpiffeId(a.peer) : undefined;
  const srcWorkload = env.mesh.workloadByIp(a.srcAddr.ip);
  const info: ConnectionInfo = {
    direction: 'inbound',
    srcAddr: formatAddr(a.srcAddr),
    dstAddr: formatAddr(a.target),
    hboneAddr: a.hboneAddr,
    src: peerInfo(srcWorkload, peerId),
    dst: peerInfo(local, local ? workloadIdentity(local) : undefined),
    service: a.service,
    security: a.security,
  };
  const conn: Connection = { srcIp: a.srcAddr.ip, dstIp: a.target.ip, dstPort: a.target.port, peer: a.peer };
  const record = env.tracker.open(info, () => inboundDenial(env.mesh, conn), a.mirror);
  if (!local) {
    a.refuse(503);
    return record.fail('CONNECT', `no workload with address ${a.target.ip} is known`);
  }
  const denial = inboundDenial(env.mesh, conn);
  if (denial) {
    a.refuse(401);
    return record.fail('DENY', denial);
  }
  let aborted: Error | undefined;
  record.onAbort((err) => {
    aborted = err;
    resetStream(a.source);
  });
  connectApp(env, a.target, a.srcAddr, a.source).then(
    (app) => {
      if (aborted || a.source.destroyed) {
        app.destroy();
        a.refuse(aborted ? 401 : 503);
        return record.fail(aborted ? 'DENY' : 'CONNECT', aborted ?? 'the client went away');
      }
      record.relay(a.accept(), app);
    },
    (err: Error) => {
      a.refuse(503);
      record.fail('CONNECT', err);
    },
  );
}

/** A service FQDN (`name.namespace.svc.…`) as metrics labels; undefined for anything else. */
export function serviceFromHost(host: string | undefined): ServiceInfo | undefined {
  const m = host ? /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.|$)/.exec(host) : null;
  return m ? { hostname: host!, name: m[1]!, namespace: m[2]! } : undefined;
}
