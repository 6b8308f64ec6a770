// Data-plane worker threads in process, on loopback: each worker is a replica of the node
// proxy fed by the main thread. Real threads, real TLS 1.3 + HTTP/2 CONNECT to each worker's
// own :15008 listener: the workers know the workload, hold the certificate and are ready only
// through what the main thread forwarded; a policy applied on the main thread refuses new
// streams and closes open ones in every worker; metrics and connections add up over the
// threads; a worker that dies is restarted with everything replayed, its counters kept.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import { once } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { AddressSchema, TunnelProtocol, WorkloadStatus } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, Action, Scope } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, packAddress, packAuthorization } from '../../agent/src/xds/types.js';
import { ipToBytes } from '../../agent/src/policy/cidr.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';
import { TlsContexts } from '../../agent/src/proxy/index.js';
import { Registry } from '../../agent/src/telemetry/registry.js';
import { DataPlaneWorkers } from '../../agent/src/workers/data-plane-workers.js';
import { createTestCa, type TestCa, type TestCert } from '../helpers/certs.js';
import { echoApp, nextIp, type EchoApp } from '../helpers/proxy-harness.js';

const SERVER = 'spiffe://cluster.local/ns/shop/sa/server';
const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';

async function freePort(host: string): Promise<number> {
  const s = net.createServer().listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface Tunnel {
  status: number;
  stream?: http2.ClientHttp2Stream;
  session: http2.ClientHttp2Session;
}

/** HBONE CONNECT to `target` through the listener at ip:port, as a mesh client. */
async function connect(ip: string, port: number, target: string, cert: TestCert, roots: string): Promise<Tunnel> {
  const session = http2.connect(`https://${ip}:${port}`, {
    createConnection: () => tls.connect({ host: ip, port, key: cert.keyPem, cert: cert.certChainPem, ca: roots, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }),
  });
  session.on('error', () => {});
  await once(session, 'connect');
  const stream = session.request({ ':method': 'CONNECT', ':authority': target }, { endStream: false });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  const status = Number(headers[':status']);
  return status === 200 ? { status, stream, session } : (session.close(), { status, session });
}

async function echo(t: Tunnel, line: string): Promise<string> {
  t.stream!.write(line);
  const [d] = (await once(t.stream!, 'data')) as [Buffer];
  return d.toString();
}

function metricSum(text: string, name: string, labels: Record<string, string>): number {
  return text.split('\n')
    .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('data-plane worker threads, in process', () => {
  let ca: TestCa;
  let client: TestCert;
  let app: EchoApp;
  let workers: DataPlaneWorkers;
  const ip = nextIp();
  const state = new WorkloadState();
  const registry = new Registry();
  /** every listener port handed to a worker, in order */
  const ports: number[] = [];
  const target = () => `${ip}:${app.port}`;

  before(async () => {
    ca = await createTestCa();
    client = await ca.issue(CLIENT);
    app = await echoApp(ip);
    const contexts = new TlsContexts(ca.rootPem);
    workers = new DataPlaneWorkers({
      count: 2, nodeName: 'node1', trustDomain: 'cluster.local', state, tls: contexts, proxy: { readyWaitMs: 2000 }, registry,
      restartBackoff: { initialMs: 20, maxMs: 20 },
      openListeners: async () => {
        const port = await freePort(ip);
        ports.push(port);
        return { hbone: { host: ip, port } };
      },
    });
    await workers.start();
    // Everything below reaches the workers only by message.
    state.apply({
      typeUrl: ADDRESS_TYPE_URL,
      removed: [],
      resources: [{
        name: 'uid-server', version: '1',
        resource: packAddress(create(AddressSchema, { type: { case: 'workload', value: {
          uid: 'uid-server', name: 'server', namespace: 'shop', serviceAccount: 'server', node: 'node1', trustDomain: 'cluster.local',
          addresses: [ipToBytes(ip)!], tunnelProtocol: TunnelProtocol.HBONE, status: WorkloadStatus.HEALTHY,
        } } })),
      }],
    });
    contexts.set(SERVER, await ca.issue(SERVER));
    workers.setReady();
    await workers.addPod({ uid: 'uid-server', ips: [ip], identity: SERVER });
  });

  after(async () => {
    await workers?.close();
    app?.close();
  });

  it('refuses a state it did not see from the start', () => {
    assert.throws(() => new DataPlaneWorkers({ count: 1, nodeName: 'n', trustDomain: 'cluster.local', state, tls: new TlsContexts(ca.rootPem), proxy: {}, openListeners: async () => ({}) }), /state: already holds resources/);
  });

  it('each worker serves the pod on its own listener with the forwarded state, certificate and readiness; metrics and connections add up', async () => {
    assert.equal(ports.length, 2, 'one listener set per worker');
    const tunnels = await Promise.all(ports.map((p) => connect(ip, p, target(), client, ca.rootPem)));
    try {
      assert.deepEqual(tunnels.map((t) => t.status), [200, 200]);
      assert.deepEqual(await Promise.all(tunnels.map((t, i) => echo(t, `hello ${i}`))), ['hello 0', 'hello 1']);
      const conns = await workers.connections();
      assert.equal(conns.length, 2);
      assert.equal(new Set(conns.map((c) => c.thread)).size, 2, 'one connection per worker thread');
      assert.ok(conns.every((c) => c.security === 'mutual_tls' && c.src.identity === CLIENT && c.dst.identity === SERVER));
      const text = registry.render(await workers.metrics());
      assert.equal(metricSum(text, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: CLIENT }), 2, 'opened counted over both threads');
      assert.equal(text.split('\n').filter((l) => l === '# TYPE istio_tcp_connections_opened_total counter').length, 1, 'one metric, not one per thread');
    } finally {
      for (const t of tunnels) t.session.destroy();
    }
  });

  it('a worker that dies is restarted with state, certificate, readiness and pods replayed', async () => {
    const [dead] = workers.threads();
    const exited = once(dead!, 'exit');
    await dead!.terminate();
    await exited;
    const restarted = await (async () => {
      for (let i = 0; i < 200 && ports.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      return ports.length === 3;
    })();
    assert.ok(restarted, 'the restarted worker opened its own listener for the pod');
    const t = await (async () => {
      for (let i = 0; ; i++) {
        try {
          return await connect(ip, ports[2]!, target(), client, ca.rootPem);
        } catch (err) {
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
    try {
      assert.equal(t.status, 200);
      assert.equal(await echo(t, 'after restart'), 'after restart');
    } finally {
      t.session.destroy();
    }
    assert.match(registry.render(), /^weft_data_plane_worker_restarts_total 1$/m);
    assert.equal(workers.threads().length, 2);
    // The dead worker's count (read at the last scrape) stays in the sum: counters never go back.
    const text = registry.render(await workers.metrics());
    assert.equal(metricSum(text, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: CLIENT }), 3, 'two before the restart, one after');
  });

  it('a policy applied on the main thread closes open connections and refuses new ones in every worker', async () => {
    const live = [ports[1]!, ports[2]!]; // ports[0] belonged to the terminated worker
    const tunnels = await Promise.all(live.map((p) => connect(ip, p, target(), client, ca.rootPem)));
    assert.deepEqual(tunnels.map((t) => t.status), [200, 200]);
    const closed = tunnels.map((t) => new Promise((r) => t.stream!.on('close', r)));
    state.apply({
      typeUrl: AUTHORIZATION_TYPE_URL,
      removed: [],
      resources: [{ name: 'shop/deny-all', version: '1', resource: packAuthorization(create(AuthorizationSchema, { name: 'deny-all', namespace: 'shop', scope: Scope.NAMESPACE, action: Action.DENY, rules: [{ clauses: [] }] })) }],
    });
    await Promise.all(closed);
    for (const t of tunnels) t.session.destroy();
    const refused = await Promise.all(live.map((p) => connect(ip, p, target(), client, ca.rootPem)));
    assert.deepEqual(refused.map((t) => t.status), [401, 401]);
  });

  it('close ends every worker and its listeners', async () => {
    const threads = workers.threads();
    await workers.close();
    assert.equal(workers.threads().length, 0);
    for (const w of threads) assert.equal(w.threadId, -1, 'thread ended');
    for (const p of [ports[1]!, ports[2]!]) {
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        const s = net.connect({ host: ip, port: p }, () => {
          s.destroy();
          resolve(undefined);
        });
        s.on('error', resolve);
      });
      assert.equal(err?.code, 'ECONNREFUSED', `nothing listens on ${p} any more`);
    }
  });
});
