// Delta ADS over real gRPC and real TLS on 127.0.0.1: initial sync, incremental updates, NACK
// of a malformed resource, reconnect and resume with initial_resource_versions, and refusal of
// unauthenticated clients.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { CertificateAuthority } from '../../agent/src/identity/ca.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { startGrpcServer, type RunningServer } from '../../agent/src/controller/grpc-server.js';
import { aggregatedDiscoveryService } from '../../agent/src/xds/grpc-services.js';
import { ResourceStore } from '../../agent/src/xds/resource-store.js';
import { DeltaAdsServer, type NackEvent } from '../../agent/src/xds/server.js';
import { DeltaAdsClient, backoffDelay, type XdsUpdate } from '../../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, packAddress, packAuthorization } from '../../agent/src/xds/types.js';
import { AddressSchema, TunnelProtocol } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, Scope, Action } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';
import { ipToBytes } from '../../agent/src/policy/cidr.js';
import { addressAliases } from '../../agent/src/controller/translate.js';
import { credentials, makeGenericClientConstructor, Metadata } from '@grpc/grpc-js';
import { DeltaDiscoveryRequestSchema, type DeltaDiscoveryResponse } from '../../agent/src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { until } from '../helpers/until.js';

const wl = (uid: string, ip: string, extra: Record<string, unknown> = {}) =>
  packAddress(create(AddressSchema, { type: { case: 'workload', value: { uid, name: uid, namespace: 'shop', node: 'node1', addresses: [ipToBytes(ip)!], tunnelProtocol: TunnelProtocol.HBONE, ...extra } } }));
const svc = (ns: string, host: string, vip: string) =>
  packAddress(create(AddressSchema, { type: { case: 'service', value: { name: host.split('.')[0], namespace: ns, hostname: host, addresses: [{ address: ipToBytes(vip)! }], ports: [{ servicePort: 80, targetPort: 8080 }] } } }));
const pol = (ns: string, name: string) =>
  packAuthorization(create(AuthorizationSchema, { name, namespace: ns, scope: Scope.NAMESPACE, action: Action.DENY, rules: [{ clauses: [] }] }));


describe('delta ADS over gRPC/TLS', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let tokens: HmacNodeTokens;
  let store: ResourceStore;
  let ads: DeltaAdsServer;
  let server: RunningServer;
  let port: number;
  const clients: DeltaAdsClient[] = [];

  const start = async (listen: string) => {
    ads = new DeltaAdsServer(store, tokens);
    server = await startGrpcServer(ca, listen, [{ definition: aggregatedDiscoveryService, implementation: ads.implementation() }]);
    port = server.port;
  };
  const newClient = (token: string, state: WorkloadState, log: XdsUpdate[] = []) => {
    const c = new DeltaAdsClient({
      address: `127.0.0.1:${port}`, rootCertPem: ca.rootsPem, token: () => token,
      node: { id: 'weft~198.18.0.1~agent.weft-system~weft-system.svc.cluster.local' },
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      apply: (u) => { state.apply(u); log.push(u); },
      backoff: { initialMs: 50, maxMs: 400 },
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-xds-'));
    ca = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    tokens = await HmacNodeTokens.fromStateDir(dir);
    store = new ResourceStore();
    store.setAliases(ADDRESS_TYPE_URL, addressAliases);
    store.replace(ADDRESS_TYPE_URL, new Map([
      ['uid-a', wl('uid-a', '198.18.10.1')],
      ['uid-b', wl('uid-b', '198.18.10.2')],
      ['shop/web.shop.svc.cluster.local', svc('shop', 'web.shop.svc.cluster.local', '198.19.0.10')],
    ]));
    store.replace(AUTHORIZATION_TYPE_URL, new Map([['shop/deny-all', pol('shop', 'deny-all')]]));
    await start('127.0.0.1:0');
  });
  after(async () => {
    for (const c of clients) c.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const state = new WorkloadState();
  const updates: XdsUpdate[] = [];
  let client: DeltaAdsClient;

  it('syncs every workload, service and policy on connect', async () => {
    client = newClient(tokens.issue('node1'), state, updates);
    client.start();
    await client.waitSynced();
    assert.deepEqual(state.workloads().map((w) => w.uid).sort(), ['uid-a', 'uid-b']);
    assert.equal(state.workloadByIp('198.18.10.2')?.uid, 'uid-b');
    assert.equal(state.serviceByVip('198.19.0.10')?.hostname, 'web.shop.svc.cluster.local');
    assert.equal(state.policy('shop/deny-all')?.action, Action.DENY);
    assert.equal(state.policiesByScope(Scope.NAMESPACE, 'shop').length, 1);
    assert.equal(client.versions.get(ADDRESS_TYPE_URL)?.get('uid-a'), store.get(ADDRESS_TYPE_URL).get('uid-a')?.version);
  });

  it('pushes only what changed, and removals', async () => {
    updates.length = 0;
    store.upsert(ADDRESS_TYPE_URL, new Map([['uid-a', wl('uid-a', '198.18.10.7')]]));
    await until(() => state.workloadByIp('198.18.10.7') !== undefined, 'the moved workload');
    assert.equal(state.workloadByIp('198.18.10.1'), undefined, 'the old IP is forgotten');
    assert.deepEqual(updates.map((u) => u.resources.map((r) => r.name)), [['uid-a']], 'exactly one resource was sent');
    store.remove(ADDRESS_TYPE_URL, ['uid-b']);
    await until(() => state.workload('uid-b') === undefined, 'the removal');
    assert.deepEqual(updates[1]?.removed, ['uid-b']);
    assert.equal(state.workloadByIp('198.18.10.2'), undefined);
  });

  it('NACKs a malformed resource, logs it on the server, and keeps the last good state', async () => {
    const nack = once(ads, 'nack') as Promise<[NackEvent]>;
    const clientNack = once(client, 'nack');
    // a 5-byte "IP address" in an otherwise valid workload
    const bad = packAddress(create(AddressSchema, { type: { case: 'workload', value: { uid: 'uid-a', addresses: [new Uint8Array(5)] } } }));
    store.upsert(ADDRESS_TYPE_URL, new Map([['uid-a', bad]]));
    const [ev] = await nack;
    await clientNack;
    assert.deepEqual(ev.resources, ['uid-a']);
    assert.equal(ev.node, 'node1');
    assert.match(ev.reason, /uid-a.*addresses\[0\] has 5 bytes/);
    assert.equal(state.workloadByIp('198.18.10.7')?.uid, 'uid-a', 'the last good version stays');
    // a fixed version is accepted again
    store.upsert(ADDRESS_TYPE_URL, new Map([['uid-a', wl('uid-a', '198.18.10.8')]]));
    await until(() => state.workloadByIp('198.18.10.8') !== undefined, 'the fixed workload');
  });

  it('NACKs an undecodable body', async () => {
    const nack = once(ads, 'nack') as Promise<[NackEvent]>;
    store.upsert(AUTHORIZATION_TYPE_URL, new Map([['shop/garbage', { $typeName: 'google.protobuf.Any', typeUrl: AUTHORIZATION_TYPE_URL, value: new Uint8Array([0x0a, 0xff]) } as never]]));
    const [ev] = await nack;
    assert.match(ev.reason, /shop\/garbage.*cannot decode/);
    assert.equal(state.policy('shop/garbage'), undefined);
    store.remove(AUTHORIZATION_TYPE_URL, ['shop/garbage']);
  });

  it('keeps its state while the controller is down, then resumes sending only the differences', async () => {
    const disconnected = once(client, 'disconnected');
    await server.close();
    await disconnected;
    assert.equal(state.workloads().length, 1, 'state kept while disconnected');
    // while down: one workload changes, one appears, the policy goes
    store.upsert(ADDRESS_TYPE_URL, new Map([['uid-c', wl('uid-c', '198.18.10.3')]]));
    store.remove(AUTHORIZATION_TYPE_URL, ['shop/deny-all']);
    updates.length = 0;
    await start(`127.0.0.1:${port}`);
    await until(() => state.workload('uid-c') !== undefined && state.policy('shop/deny-all') === undefined, 'resume', 10_000);
    const sent = updates.flatMap((u) => u.resources.map((r) => r.name));
    assert.deepEqual(sent, ['uid-c'], 'unchanged resources are not re-sent after reconnect');
    assert.deepEqual(updates.flatMap((u) => u.removed), ['shop/deny-all']);
    assert.equal(state.workload('uid-a')?.uid, 'uid-a');
  });

  it('a second agent gets the full current state', async () => {
    const s2 = new WorkloadState();
    const c2 = newClient(tokens.issue('node2'), s2);
    c2.start();
    await c2.waitSynced();
    assert.deepEqual(s2.workloads().map((w) => w.uid).sort(), ['uid-a', 'uid-c']);
    assert.equal(s2.services().length, 1);
    c2.stop();
  });

  it('answers on-demand subscriptions by network/IP alias, and unknown names as removed', async () => {
    const Ctor = makeGenericClientConstructor(aggregatedDiscoveryService as never, 'ads');
    const raw = new Ctor(`127.0.0.1:${port}`, credentials.createSsl(Buffer.from(ca.rootsPem))) as unknown as {
      DeltaAggregatedResources(md: Metadata): import('@grpc/grpc-js').ClientDuplexStream<unknown, DeltaDiscoveryResponse>; close(): void;
    };
    const md = new Metadata();
    md.set('authorization', `Bearer ${tokens.issue('node1')}`);
    const stream = raw.DeltaAggregatedResources(md);
    const responses: DeltaDiscoveryResponse[] = [];
    stream.on('data', (r: DeltaDiscoveryResponse) => responses.push(r));
    stream.on('error', () => {});
    try {
      stream.write(create(DeltaDiscoveryRequestSchema, { typeUrl: ADDRESS_TYPE_URL, resourceNamesSubscribe: ['/198.18.10.8', '/198.18.99.99'] }));
      await until(() => responses.length >= 1, 'the on-demand answer');
      assert.deepEqual(responses[0]!.resources.map((r) => [r.name, r.aliases]), [['uid-a', ['/198.18.10.8']]]);
      assert.deepEqual(responses[0]!.removedResources, ['/198.18.99.99']);
      stream.write(create(DeltaDiscoveryRequestSchema, { typeUrl: ADDRESS_TYPE_URL, responseNonce: responses[0]!.nonce, resourceNamesSubscribe: ['/198.19.0.10'] }));
      await until(() => responses.length >= 2, 'the service by VIP');
      assert.deepEqual(responses[1]!.resources.map((r) => r.name), ['shop/web.shop.svc.cluster.local']);
      // a change to a subscribed workload is pushed; one to an unsubscribed workload is not
      store.upsert(ADDRESS_TYPE_URL, new Map([['uid-c', wl('uid-c', '198.18.10.4')], ['uid-a', wl('uid-a', '198.18.10.8', { name: 'renamed' })]]));
      await until(() => responses.length >= 3, 'the push');
      assert.deepEqual(responses[2]!.resources.map((r) => r.name), ['uid-a']);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(responses.length, 3);
    } finally {
      stream.cancel();
      raw.close();
    }
  });

  it('redials on a new channel when a connection attempt hangs (no response): grpc-js has no connect timeout', async () => {
    // A TCP front whose first connection is accepted and then never answered (like a SYN to a
    // Service IP that nothing forwards yet); later connections reach the real server.
    let accepted = 0;
    const held: net.Socket[] = [];
    const front = net.createServer((c) => {
      held.push(c);
      if (accepted++ === 0) return; // blackhole
      const up = net.connect({ host: '127.0.0.1', port });
      held.push(up);
      c.pipe(up).pipe(c);
      up.on('error', () => c.destroy());
      c.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    const st = new WorkloadState();
    const c = new DeltaAdsClient({
      address: `127.0.0.1:${(front.address() as net.AddressInfo).port}`, rootCertPem: ca.rootsPem, token: () => tokens.issue('node-front', 600),
      node: { id: 'weft~198.18.0.9~agent.weft-system~weft-system.svc.cluster.local' },
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      apply: (u) => st.apply(u),
      backoff: { initialMs: 50, maxMs: 400 },
      firstResponseTimeoutMs: 400,
    });
    clients.push(c);
    try {
      c.start();
      await c.waitSynced(8000);
      assert.ok(accepted >= 2, 'the hung first attempt was abandoned and a new connection made');
      assert.ok(st.workload('uid-a'));
    } finally {
      c.stop();
      for (const s of held) s.destroy();
      front.close();
    }
  });

  it('refuses a client without a valid token (UNAUTHENTICATED)', async () => {
    const s3 = new WorkloadState();
    const c3 = newClient('weft1.bogus.token', s3);
    const [e] = await (c3.start(), once(c3, 'disconnected')) as [{ code: number; details: string }];
    c3.stop();
    assert.equal(e.code, status.UNAUTHENTICATED);
    assert.match(e.details, /not authenticated/);
    assert.equal(s3.workloads().length, 0);
  });
});

describe('xDS client backoff', () => {
  it('grows exponentially with jitter and is capped', () => {
    const b = { initialMs: 500, maxMs: 150_000 };
    assert.equal(backoffDelay(0, b, () => 0.5), 500);
    assert.equal(backoffDelay(3, b, () => 0.5), 4000);
    assert.equal(backoffDelay(40, b, () => 0.5), 150_000);
    assert.equal(backoffDelay(40, b, () => 1), 180_000);
    assert.equal(backoffDelay(0, b, () => 0), 400);
  });
});

describe('resource store', () => {
  it('versions by content: equal across stores (controller restarts), unchanged content emits nothing', () => {
    const a = new ResourceStore();
    const b = new ResourceStore();
    const events: string[][] = [];
    a.on('change', (c) => events.push([...c.changed, ...c.removed.map((r) => `-${r}`)]));
    const set = new Map([['uid-1', wl('uid-1', '198.18.0.1')], ['uid-2', wl('uid-2', '198.18.0.2')]]);
    a.replace(ADDRESS_TYPE_URL, set);
    b.replace(ADDRESS_TYPE_URL, new Map([['uid-1', wl('uid-1', '198.18.0.1')]]));
    assert.equal(a.get(ADDRESS_TYPE_URL).get('uid-1')!.version, b.get(ADDRESS_TYPE_URL).get('uid-1')!.version);
    a.replace(ADDRESS_TYPE_URL, new Map([['uid-1', wl('uid-1', '198.18.0.1')], ['uid-2', wl('uid-2', '198.18.0.2')]]));
    a.replace(ADDRESS_TYPE_URL, new Map([['uid-1', wl('uid-1', '198.18.0.9')]]));
    assert.deepEqual(events, [['uid-1', 'uid-2'], ['uid-1', '-uid-2']]);
    assert.notEqual(a.get(ADDRESS_TYPE_URL).get('uid-1')!.version, b.get(ADDRESS_TYPE_URL).get('uid-1')!.version);
  });
});
