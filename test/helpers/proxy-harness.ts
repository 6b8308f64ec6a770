// An in-process mesh over loopback for proxy tests: "nodes" are ProxyNode instances, "pods"
// are loopback addresses (127.77.x.y) with their own app (an echo server that records the
// source address it saw), their own :15008 listener and real certificates from a test CA.
// The HBONE dialer maps <pod IP>:15008 to that pod's real listener port, so the wire protocol
// is exactly the production one: real TLS 1.3, real HTTP/2, real TCP.
import net from 'node:net';
import { once } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { WorkloadSchema, ServiceSchema, TunnelProtocol, WorkloadStatus, type Workload, type Service } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, Action, Scope, type Authorization } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import { ProxyNode, TlsContexts, MemoryMeshView, type PodProxy, type ProxyNodeOptions } from '../../agent/src/proxy/index.js';
import { Telemetry } from '../../agent/src/telemetry/telemetry.js';
import { createTestCa, type TestCa } from './certs.js';

let subnet = 1 + (process.pid % 200);
let host = 10;
/** A fresh loopback address per pod (per process, so parallel test files do not collide). */
export function nextIp(): string {
  if (host > 250) {
    host = 10;
    subnet = (subnet % 250) + 1;
  }
  return `127.77.${subnet}.${host++}`;
}

export function ipBytes(ip: string): Uint8Array {
  return new Uint8Array(ip.split('.').map(Number));
}

export interface EchoApp {
  server: net.Server;
  port: number;
  /** source addresses of accepted connections, in order */
  sources: string[];
  close(): void;
}

/** Echoes bytes back and half-closes after the client does (so half-close is observable). */
export async function echoApp(ip: string, port = 0): Promise<EchoApp> {
  const sources: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sources.push(s.remoteAddress ?? '');
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(port, ip);
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, sources, close: () => server.close() };
}

export interface TestPod {
  uid: string;
  ip: string;
  identity: string;
  workload: Workload;
  node: TestNode;
  proxy: PodProxy;
  hbonePort: number;
  app?: EchoApp;
}

export interface TestNode {
  name: string;
  proxy: ProxyNode;
  tls: TlsContexts;
  telemetry: Telemetry;
}

export interface PodSpec {
  namespace?: string;
  serviceAccount?: string;
  name?: string;
  trustDomain?: string;
  /** default true: the pod has an echo app */
  app?: boolean;
  /** default HBONE (enrolled) */
  enrolled?: boolean;
  services?: Record<string, { servicePort: number; targetPort: number }[]>;
  status?: WorkloadStatus;
}

export class Mesh {
  readonly view = new MemoryMeshView();
  readonly pods: TestPod[] = [];
  readonly nodes: TestNode[] = [];
  readonly hbonePorts = new Map<string, number>();
  private cleanups: (() => unknown)[] = [];

  private constructor(readonly ca: TestCa) {}

  static async create(): Promise<Mesh> {
    return new Mesh(await createTestCa());
  }

  node(name: string, opts: Partial<ProxyNodeOptions> = {}): TestNode {
    const tls = new TlsContexts(this.ca.rootPem);
    const telemetry = new Telemetry({ processMetrics: false });
    const proxy = new ProxyNode({ nodeName: name, mesh: this.view, tls, telemetry, ready: true, ...opts });
    const n = { name, proxy, tls, telemetry };
    this.nodes.push(n);
    this.cleanups.push(() => proxy.close());
    return n;
  }

  /**
   * The pod's outbound dialer: from the pod's own IP (as a socket made in its netns would be),
   * with <ip>:15008 mapped to that pod's real HBONE listener; anything else as asked.
   */
  dialOutFrom(srcIp: string) {
    return async (dst: { ip: string; port: number }): Promise<net.Socket> => {
      const port = dst.port === 15008 ? this.hbonePorts.get(dst.ip) ?? 1 : dst.port;
      return net.connect({ host: dst.ip, port, localAddress: srcIp, allowHalfOpen: true, noDelay: true });
    };
  }

  /** Connects to the app from the client's IP (loopback addresses are all local). */
  readonly dialApp = async (dst: { ip: string; port: number }, src: { ip: string; port: number }): Promise<net.Socket> =>
    net.connect({ host: dst.ip, port: dst.port, localAddress: src.ip, allowHalfOpen: true, noDelay: true });

  workload(ip: string, node: string, spec: PodSpec): Workload {
    const ns = spec.namespace ?? 'default';
    const name = spec.name ?? `pod-${ip.replace(/\./g, '-')}`;
    const services: Record<string, { ports: { servicePort: number; targetPort: number }[] }> = {};
    for (const [k, ports] of Object.entries(spec.services ?? {})) services[k] = { ports };
    return create(WorkloadSchema, {
      uid: `uid-${name}`,
      name,
      namespace: ns,
      addresses: [ipBytes(ip)],
      tunnelProtocol: spec.enrolled === false ? TunnelProtocol.NONE : TunnelProtocol.HBONE,
      trustDomain: spec.trustDomain ?? 'cluster.local',
      serviceAccount: spec.serviceAccount ?? 'default',
      node,
      workloadName: spec.name ?? name,
      canonicalName: spec.name ?? name,
      canonicalRevision: 'v1',
      clusterId: 'Kubernetes',
      services: services as never,
      status: spec.status ?? WorkloadStatus.HEALTHY,
    });
  }

  /** An enrolled pod on `node` with its certificate, HBONE listener and (by default) an app. */
  async pod(node: TestNode, spec: PodSpec = {}): Promise<TestPod> {
    const ip = nextIp();
    const w = this.workload(ip, node.name, spec);
    const identity = `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
    if (!node.tls.has(identity)) node.tls.set(identity, await this.ca.issue(identity));
    this.view.putWorkload(w);
    const proxy = node.proxy.addPod({ uid: w.uid, ips: [ip], identity, hooks: { dialOut: this.dialOutFrom(ip), dialApp: this.dialApp } });
    const addrs = await proxy.listen({ hbone: { host: ip, port: 0 } });
    this.hbonePorts.set(ip, addrs.hbone!.port);
    const pod: TestPod = { uid: w.uid, ip, identity, workload: w, node, proxy, hbonePort: addrs.hbone!.port };
    if (spec.app ?? true) {
      pod.app = await echoApp(ip);
      this.cleanups.push(() => pod.app!.close());
    }
    this.pods.push(pod);
    return pod;
  }

  /** A pod outside the mesh: just an app on its own address. */
  async outsider(spec: PodSpec = {}): Promise<{ ip: string; app: EchoApp; workload?: Workload }> {
    const ip = nextIp();
    const app = await echoApp(ip);
    this.cleanups.push(() => app.close());
    return { ip, app };
  }

  service(name: string, namespace: string, vip: string, ports: { servicePort: number; targetPort: number }[]): Service {
    const s = create(ServiceSchema, {
      name,
      namespace,
      hostname: `${name}.${namespace}.svc.cluster.local`,
      addresses: [{ network: '', address: ipBytes(vip) }],
      ports,
    });
    this.view.putService(s);
    return s;
  }

  /** A stand-in for the :15001 capture: a listener whose connections go to `dst` from `pod`. */
  async outboundListener(pod: TestPod, dst: { ip: string; port: number }): Promise<number> {
    const srv = net.createServer({ allowHalfOpen: true }, (s) => pod.proxy.handleOutbound(s, dst));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    this.cleanups.push(() => srv.close());
    return (srv.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const c of this.cleanups.reverse()) await c();
    this.cleanups = [];
  }
}

export function policy(name: string, namespace: string, action: 'ALLOW' | 'DENY', principals: string[], opts: { ports?: number[] } = {}): Authorization {
  return create(AuthorizationSchema, {
    name,
    namespace,
    scope: Scope.NAMESPACE,
    action: action === 'ALLOW' ? Action.ALLOW : Action.DENY,
    rules: [
      {
        clauses: [
          ...(principals.length ? [{ matches: [{ principals: principals.map((p) => ({ matchType: { case: 'exact' as const, value: p } })) }] }] : []),
          ...(opts.ports ? [{ matches: [{ destinationPorts: opts.ports }] }] : []),
        ],
      },
    ],
  });
}

/** istiod's STRICT conversion: deny any source without an authenticated principal. */
export function strictPolicy(namespace: string): Authorization {
  return create(AuthorizationSchema, {
    name: 'converted_peer_authentication_strict',
    namespace,
    scope: Scope.NAMESPACE,
    action: Action.DENY,
    rules: [{ clauses: [{ matches: [{ notPrincipals: [{ matchType: { case: 'presence', value: {} } }] }] }] }],
  });
}

/** Sends `data`, half-closes, and collects the echo until the peer's FIN (or an error). */
export async function roundTrip(port: number, data: Buffer | string, host = '127.0.0.1'): Promise<{ reply: Buffer; error?: NodeJS.ErrnoException }> {
  const c = net.connect({ host, port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => {
    c.once('connect', () => c.end(data));
    c.once('end', () => {
      c.destroy();
      resolve({ reply: Buffer.concat(chunks) });
    });
    c.once('error', (error: NodeJS.ErrnoException) => resolve({ reply: Buffer.concat(chunks), error }));
    c.once('close', () => resolve({ reply: Buffer.concat(chunks), error: Object.assign(new Error('closed without FIN'), { code: 'ECLOSED' }) }));
  });
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
