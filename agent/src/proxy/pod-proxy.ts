// The proxy of one enrolled pod: its three listeners (:15001 outbound, :15006 inbound
// plaintext, :15008 inbound HBONE), all opened inside the pod's netns by the agent (fds from
// listenInNetns) or on plain addresses in tests. Connections that arrive before the node is
// ready (state and this pod's certificate) wait, bounded, and never bypass mTLS or policy.
import net from 'node:net';
import { once } from 'node:events';
import { logger } from '../common/log.js';
import type { Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { tryParseSpiffeId } from '../identity/spiffe.js';
import { HboneServer, refuseStream, type ConnectRequest } from './hbone-server.js';
import { handleInbound, serviceFromHost, type AppDialer, type InboundAttempt } from './inbound.js';
import { handleOutbound, type SourcePod } from './outbound.js';
import type { TcpDialer } from './hbone-pool.js';
import { normalizeIp, type SocketAddr } from './addresses.js';
import { peerInfo } from './mesh-view.js';
import { resetStream } from './relay.js';
import { NotReadyError } from './errors.js';
import type { ProxyNode } from './proxy-node.js';

const log = logger('pod-proxy');

export type ListenTarget = { fd: number } | { host: string; port: number };

/** How the pod's sockets are made; the agent wires these to the native netns helpers. */
export interface PodNetHooks {
  /** outbound TCP from the pod's netns with SO_MARK (HBONE to peers, passthrough) */
  dialOut?: TcpDialer;
  /** to the pod's app, from the client's IP (IP_TRANSPARENT), with SO_MARK */
  dialApp?: AppDialer;
  /** the original destination of a connection accepted on :15001 (from the redirect maps) */
  originalDst?: (s: net.Socket) => SocketAddr | undefined | Promise<SocketAddr | undefined>;
}

export interface PodProxyOptions {
  /** the workload's uid (xDS resource name) */
  uid: string;
  /** the pod's IPs; the first is its primary address */
  ips: string[];
  /** the pod's SPIFFE ID */
  identity: string;
  hooks?: PodNetHooks;
}

export interface ListenOptions {
  outbound?: ListenTarget;
  inboundPlaintext?: ListenTarget;
  hbone?: ListenTarget;
}

export const plainTcpDialer: TcpDialer = async (dst) => net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true, noDelay: true });
export const plainAppDialer: AppDialer = async (dst) => net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true, noDelay: true });

export class PodProxy {
  readonly uid: string;
  readonly ips: readonly string[];
  readonly identity: string;
  readonly hbone: HboneServer;
  private readonly servers: net.Server[] = [];
  /** resolve when a closed listener's last connection is gone */
  private readonly serversClosed: Promise<unknown>[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly tlsSockets = new WeakSet<net.Socket>();
  private readonly hooks: Required<Pick<PodNetHooks, 'dialOut' | 'dialApp'>> & PodNetHooks;
  private readonly source: SourcePod;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly node: ProxyNode,
    opts: PodProxyOptions,
  ) {
    this.uid = opts.uid;
    this.ips = [...opts.ips];
    this.identity = opts.identity;
    this.hooks = { dialOut: plainTcpDialer, dialApp: plainAppDialer, ...opts.hooks };
    this.source = {
      ips: this.ips,
      identity: this.identity,
      workload: () => this.workload(),
      dialOut: this.hooks.dialOut,
    };
    const td = tryParseSpiffeId(this.identity)?.trustDomain ?? node.trustDomain;
    this.hbone = new HboneServer({
      // Until the certificate arrives the server has none; accept() waits for readiness first.
      tls: node.tls.has(this.identity) ? node.tls.serverOptions(this.identity) : {},
      trustDomain: td,
      isLocalIp: (ip) => this.ips.includes(normalizeIp(ip)),
      onConnect: (req) => this.onHboneConnect(req),
      telemetry: node.telemetry,
      local: () => peerInfo(this.workload(), this.identity),
      handshakeTimeoutMs: node.options.handshakeTimeoutMs,
    });
    const onRotate = (id: string) => {
      if (id === this.identity && node.tls.has(id)) this.hbone.setSecureContext(node.tls.serverOptions(id));
    };
    node.tls.on('rotated', onRotate);
    this.unsubscribe = () => node.tls.off('rotated', onRotate);
  }

  workload(): Workload | undefined {
    return this.node.mesh.workloadByIp(this.ips[0]!);
  }

  /** Opens the listeners; returns their bound addresses. */
  async listen(targets: ListenOptions): Promise<{ outbound?: net.AddressInfo; inboundPlaintext?: net.AddressInfo; hbone?: net.AddressInfo }> {
    const out: Record<string, net.AddressInfo> = {};
    const kinds = [
      ['outbound', (s: net.Socket) => this.acceptOutbound(s)],
      ['inboundPlaintext', (s: net.Socket) => this.acceptInboundPlaintext(s)],
      ['hbone', (s: net.Socket) => this.acceptHbone(s)],
    ] as const;
    for (const [kind, handler] of kinds) {
      const t = targets[kind];
      if (!t) continue;
      const srv = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: false }, (s) => {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s)); // fires once; on() keeps no once-wrapper per socket
        s.on('error', () => {
          /* handled per path */
        });
        handler(s);
      });
      srv.on('error', (err) => log.error({ uid: this.uid, listener: kind, err: err.message }, 'listener error'));
      srv.listen('fd' in t ? { fd: t.fd } : { host: t.host, port: t.port });
      await once(srv, 'listening');
      this.servers.push(srv);
      out[kind] = srv.address() as net.AddressInfo;
    }
    return out;
  }

  /** Waits (bounded) until the node is ready and this pod's certificate is in. */
  private whenReady(): Promise<void> | undefined {
    if (this.node.isReady && this.node.tls.has(this.identity)) return undefined;
    return this.node.waitReady(this.identity);
  }

  private gate(s: net.Socket, next: () => void): void {
    const wait = this.whenReady();
    if (!wait) return next();
    wait.then(
      () => (s.destroyed ? undefined : next()),
      (err: NotReadyError) => {
        log.warn({ uid: this.uid, err: err.message, 'src.addr': `${s.remoteAddress}:${s.remotePort}` }, 'connection refused: proxy not ready');
        resetStream(s);
      },
    );
  }

  private acceptOutbound(s: net.Socket): void {
    this.gate(s, () => {
      const lookup = this.hooks.originalDst;
      if (!lookup) {
        log.error({ uid: this.uid }, 'no original-destination lookup configured for :15001; refusing');
        return resetStream(s);
      }
      Promise.resolve(lookup(s)).then(
        (dst) => {
          if (!dst) {
            log.warn({ uid: this.uid, 'src.addr': `${s.remoteAddress}:${s.remotePort}` }, 'no original destination for an outbound connection; refusing');
            return resetStream(s);
          }
          this.handleOutbound(s, dst);
        },
        (err: Error) => {
          log.warn({ uid: this.uid, err: err.message }, 'original destination lookup failed; refusing');
          resetStream(s);
        },
      );
    });
  }

  /** Proxies a connection from this pod to `origDst` (the :15001 path without the lookup). */
  handleOutbound(s: net.Socket, origDst: SocketAddr): void {
    if (this.closed) return resetStream(s);
    handleOutbound(s, origDst, this.source, this.node.outboundEnv);
  }

  private acceptInboundPlaintext(s: net.Socket): void {
    this.gate(s, () => this.handleInboundPlaintext(s));
  }

  /** Plaintext to this pod (:15006): the original destination is the socket's local address. */
  handleInboundPlaintext(s: net.Socket, origDst?: SocketAddr): void {
    const target = origDst ?? { ip: normalizeIp(s.localAddress ?? ''), port: s.localPort ?? 0 };
    handleInbound(
      {
        srcAddr: { ip: normalizeIp(s.remoteAddress ?? ''), port: s.remotePort ?? 0 },
        target,
        security: 'unknown',
        source: s,
        accept: () => s,
        refuse: () => resetStream(s),
      },
      this.node.inboundEnv(this.hooks.dialApp),
    );
  }

  private acceptHbone(s: net.Socket): void {
    this.tlsSockets.add(s);
    this.gate(s, () => this.hbone.accept(s));
  }

  private onHboneConnect(req: ConnectRequest): void {
    const { stream } = req;
    // The tunnel's source is the TCP peer (the client pod's IP, as its socket left from its
    // netns); forwarded may only refine the port when it names the same IP.
    const fwd = req.forwardedFor;
    const srcAddr = fwd && fwd.ip === req.peerAddr.ip ? fwd : req.peerAddr;
    handleInbound(
      {
        srcAddr,
        peer: req.peer,
        target: req.target,
        hboneAddr: req.authority,
        service: serviceFromHost(req.forwardedHost),
        security: 'mutual_tls',
        source: stream,
        accept: () => {
          stream.respond({ ':status': 200 });
          return stream;
        },
        refuse: (status) => refuseStream(stream, status),
      },
      this.node.inboundEnv(this.hooks.dialApp),
    );
  }

  /** Same node: a connection from another local pod, handed over without TLS. */
  acceptLocal(a: InboundAttempt): void {
    handleInbound(a, this.node.inboundEnv(this.hooks.dialApp));
  }

  /** Closes the listeners (a SO_REUSEPORT peer takes new connections); connections go on. */
  async stopAccepting(): Promise<void> {
    // close()'s callback fires only once the server's connections are gone: not awaited here.
    for (const srv of this.servers.splice(0)) this.serversClosed.push(new Promise((r) => srv.close(r)));
  }

  /**
   * Stops accepting, sends HBONE peers the two-step GOAWAY, and waits up to `timeoutMs` for
   * this pod's connections to finish — a restart handing over via SO_REUSEPORT drops nothing.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.stopAccepting();
    await this.hbone.drain(Math.min(500, timeoutMs));
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  /** Closes listeners and resets every connection of this pod. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    // Listeners stop accepting; close() callbacks only fire once every connection is gone.
    await this.stopAccepting();
    const closing = this.serversClosed;
    this.hbone.close();
    // Sockets handed to TLS are only destroyed: an RST (resetAndDestroy) on a TCP handle that
    // a TLS/http2 wrap still consumes can leave the handle never finishing its close.
    for (const s of this.sockets) {
      if (this.tlsSockets.has(s)) s.destroy();
      else resetStream(s);
    }
    await Promise.all(closing);
    this.node.pool.closeWhere((k) => this.ips.includes(k.srcIp));
  }
}
