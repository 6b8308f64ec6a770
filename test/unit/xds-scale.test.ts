// Delta ADS at cluster scale, over real gRPC/TLS: 10,000 workloads and 1,000 services reach
// several agents whole (the first response is far above gRPC's default 4 MiB message limit),
// one change reaches all of them as a single-resource push, and a reconnect with 11,000
// initial_resource_versions re-sends nothing. (Timing is measured in bench/, not asserted.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { CertificateAuthority } from '../../agent/src/identity/ca.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { startGrpcServer, type RunningServer } from '../../agent/src/controller/grpc-server.js';
import { aggregatedDiscoveryService } from '../../agent/src/xds/grpc-services.js';
import { ResourceStore } from '../../agent/src/xds/resource-store.js';
import { DeltaAdsServer } from '../../agent/src/xds/server.js';
import { DeltaAdsClient, type XdsUpdate } from '../../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, packAddress } from '../../agent/src/xds/types.js';
import { AddressSchema, TunnelProtocol } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';

const WORKLOADS = 10_000;
const SERVICES = 1_000;
const AGENTS = 5;

const uid = (i: number) => `${(0x10000000 + i).toString(16)}-aaaa-4bbb-8ccc-${(0x100000000000 + i).toString(16)}`;

/** A workload shaped like a real pod's: UUID uid, generated pod name, two services, policies, locality. */
function workload(i: number, node = `node${i % 50}`): Any {
  const ip = new Uint8Array([198, 18, (i >> 8) & 0xff, i & 0xff]);
  const ns = `team-${i % 100}-production`;
  const app = `checkout-service-${i % 1000}`;
  const svc = (k: number) => `${ns}/${app}-${k}.${ns}.svc.cluster.local`;
  return packAddress(create(AddressSchema, { type: { case: 'workload', value: {
    uid: uid(i),
    name: `${app}-7d9f8b6c5d-${(i * 7919).toString(36).padStart(5, 'x')}`, namespace: ns, addresses: [ip], node,
    serviceAccount: `${app}-sa`, trustDomain: 'cluster.local', tunnelProtocol: TunnelProtocol.HBONE,
    canonicalName: app, canonicalRevision: 'v1-2-3', workloadName: app, clusterId: 'Kubernetes',
    locality: { region: 'europe-west1', zone: 'europe-west1-b' },
    authorizationPolicies: [`${ns}/allow-frontend`, 'weft-system/istio_converted_static_strict'],
    services: {
      [svc(0)]: { ports: [{ servicePort: 80, targetPort: 8080 }, { servicePort: 443, targetPort: 8443 }] },
      [svc(1)]: { ports: [{ servicePort: 9090, targetPort: 9090 }] },
    },
  } } }));
}

describe('delta ADS at 10,000 workloads over gRPC/TLS', () => {
  let dir: string;
  let server: RunningServer;
  const store = new ResourceStore();
  const agents: Array<{ client: DeltaAdsClient; state: WorkloadState; updates: XdsUpdate[] }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-xds-scale-'));
    const ca = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const tokens = await HmacNodeTokens.fromStateDir(dir);
    const addresses = new Map<string, Any>();
    for (let i = 0; i < WORKLOADS; i++) addresses.set(uid(i), workload(i));
    for (let s = 0; s < SERVICES; s++) {
      const ns = `ns-${s % 100}`;
      const host = `svc-${s}.${ns}.svc.cluster.local`;
      addresses.set(`${ns}/${host}`, packAddress(create(AddressSchema, { type: { case: 'service', value: {
        name: `svc-${s}`, namespace: ns, hostname: host, addresses: [{ address: new Uint8Array([198, 19, s >> 8, s & 0xff]) }], ports: [{ servicePort: 80, targetPort: 8080 }],
      } } })));
    }
    store.replace(ADDRESS_TYPE_URL, addresses);
    const ads = new DeltaAdsServer(store, tokens);
    server = await startGrpcServer(ca, '127.0.0.1:0', [{ definition: aggregatedDiscoveryService, implementation: ads.implementation() }]);
    for (let a = 0; a < AGENTS; a++) {
      const state = new WorkloadState();
      const updates: XdsUpdate[] = [];
      const client = new DeltaAdsClient({
        address: `127.0.0.1:${server.port}`, rootCertPem: ca.rootsPem, token: () => tokens.issue(`node${a}`),
        node: { id: `node${a}` }, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
        apply: (u) => { state.apply(u); updates.push(u); }, backoff: { initialMs: 50, maxMs: 500 },
      });
      agents.push({ client, state, updates });
    }
  });
  after(async () => {
    for (const a of agents) a.client.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the full state to every agent', async () => {
    let bytes = 0;
    for (const r of store.get(ADDRESS_TYPE_URL).values()) bytes += r.resource.value.length + r.name.length + r.version.length;
    assert.ok(bytes > 4 * 1024 * 1024, `the first response must exceed gRPC's default 4 MiB limit to test it; it is ${bytes} bytes`);
    for (const a of agents) a.client.start();
    await Promise.all(agents.map((a) => a.client.waitSynced(60_000)));
    for (const a of agents) {
      assert.equal(a.state.workloads().length, WORKLOADS);
      assert.equal(a.state.services().length, SERVICES);
      assert.equal(a.state.workloadByIp('198.18.39.15')?.uid, uid(39 * 256 + 15));
    }
  });

  it('pushes one change to every agent as a single resource', async () => {
    for (const a of agents) a.updates.length = 0;
    store.upsert(ADDRESS_TYPE_URL, new Map([[uid(42), workload(42, 'node-moved')]]));
    const end = Date.now() + 10_000;
    while (!agents.every((a) => a.state.workload(uid(42))?.node === 'node-moved')) {
      if (Date.now() > end) throw new Error('change did not reach every agent');
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const a of agents) assert.deepEqual(a.updates.map((u) => u.resources.map((r) => r.name)), [[uid(42)]]);
  });

  it('resumes with 11,000 initial_resource_versions and re-sends nothing unchanged', async () => {
    const a = agents[0]!;
    a.updates.length = 0;
    a.client.stop();
    const state = a.state;
    const client = new DeltaAdsClient({
      address: `127.0.0.1:${server.port}`, rootCertPem: (a.client as unknown as { opts: { rootCertPem: string } }).opts.rootCertPem,
      token: (a.client as unknown as { opts: { token: () => string } }).opts.token,
      node: { id: 'node0' }, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      apply: (u) => { state.apply(u); a.updates.push(u); },
    });
    for (const [t, v] of a.client.versions) client.versions.set(t, new Map(v));
    a.client = client;
    client.start();
    await client.waitSynced(30_000);
    assert.equal(a.updates.flatMap((u) => u.resources).length, 0, 'nothing re-sent');
    assert.equal(state.workloads().length, WORKLOADS);
  });
});
