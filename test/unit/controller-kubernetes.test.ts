// The Kubernetes source (client-node informers) against a Kubernetes API test double that
// speaks list/watch with resourceVersions, bookmarks and 410 Gone.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { KubernetesSource } from '../../agent/src/controller/source-kubernetes.js';
import { translateSnapshot } from '../../agent/src/controller/translate.js';
import type { ClusterSnapshot } from '../../agent/src/controller/objects.js';
import { TunnelProtocol, type Workload } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { KubeApiDouble } from './controller-kube-api-double.js';
import { until } from '../helpers/until.js';

const NS = '/api/v1/namespaces';
const PODS = '/api/v1/pods';
const SVC = '/api/v1/services';
const AP = '/apis/security.weft.io/v1/authorizationpolicies';

const pod = (name: string, ip: string, node = 'node1') => ({
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, labels: { app: 'web' } },
  spec: { nodeName: node, serviceAccountName: 'web', containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});

function kubeconfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'double', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'c', cluster: 'double', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}


describe('Kubernetes source against a Kubernetes API test double', () => {
  const api = new KubeApiDouble(100);
  let source: KubernetesSource;
  let latest: ClusterSnapshot | undefined;
  const workloads = () => {
    const t = translateSnapshot(latest!);
    return new Map([...t.addresses.values()].filter((a) => a.type.case === 'workload').map((a) => [(a.type.value as Workload).uid, a.type.value as Workload]));
  };

  before(async () => {
    await api.start();
    api.put(NS, { metadata: { name: 'shop', labels: { 'weft.io/mesh': 'enabled' } } });
    api.put(PODS, pod('web-1', '198.18.1.10'));
    api.put(SVC, { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '198.19.0.10', selector: { app: 'web' }, ports: [{ port: 80 }] } });
    api.put(AP, { metadata: { name: 'allow-shop', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] } });
    // the first two pod lists fail: the source must back off and retry
    api.failNext(PODS, 500, 2);
    source = new KubernetesSource(kubeconfig(api.port), { debounceMs: 10, backoff: { initialMs: 50, maxMs: 200 }, initialSyncTimeoutMs: 8000 });
    await source.start((s) => (latest = s));
    await until(() => latest !== undefined, 'the first snapshot');
  });
  after(async () => {
    await source.stop();
    await api.stop();
  });

  it('lists every kind (retrying failed lists with backoff) and translates them', () => {
    const podLists = api.requests.filter((r) => r.path === PODS && !r.watch);
    assert.equal(podLists.length, 3, 'two failures then success');
    const w = workloads().get('uid-web-1');
    assert.equal(w?.tunnelProtocol, TunnelProtocol.HBONE);
    assert.deepEqual(w?.authorizationPolicies, ['shop/allow-shop']);
    assert.deepEqual(Object.keys(w!.services), ['shop/web.shop.svc.cluster.local']);
    assert.equal(latest!.objects.find((o) => o.object.kind === 'AuthorizationPolicy')?.object.apiVersion, 'security.weft.io/v1');
  });

  it('watches from the list resourceVersion and asks for bookmarks', async () => {
    await until(() => api.requests.some((r) => r.path === NS && r.watch), 'a namespace watch');
    const w = api.requests.find((r) => r.path === NS && r.watch)!;
    assert.equal(w.allowWatchBookmarks, 'true');
    assert.ok(Number(w.resourceVersion) >= 104, `watch from the list's resourceVersion, got ${w.resourceVersion}`);
  });

  it('follows live changes: a new pod, a label change, a deletion', async () => {
    api.put(PODS, pod('web-2', '198.18.1.11'));
    await until(() => workloads().has('uid-web-2'), 'the new pod');
    api.put(NS, { metadata: { name: 'shop', labels: {} } });
    await until(() => workloads().get('uid-web-1')?.tunnelProtocol === TunnelProtocol.NONE, 'the namespace release');
    api.delete(PODS, 'shop', 'web-2');
    await until(() => !workloads().has('uid-web-2'), 'the deletion');
  });

  it('resumes a dropped watch from the bookmarked resourceVersion, without relisting', async () => {
    // unrelated writes advance the global resourceVersion; pods only learn it from bookmarks
    for (let i = 0; i < 3; i++) api.put(NS, { metadata: { name: `other-${i}` } });
    const rvAfter = api.resourceVersion;
    await new Promise((r) => setTimeout(r, 350)); // a few bookmark intervals
    const listsBefore = api.requests.filter((r) => r.path === PODS && !r.watch).length;
    const watchesBefore = api.requests.filter((r) => r.path === PODS && r.watch).length;
    api.disconnectWatches();
    await until(() => api.requests.filter((r) => r.path === PODS && r.watch).length > watchesBefore, 'the pod re-watch');
    const rewatch = api.requests.filter((r) => r.path === PODS && r.watch).at(-1)!;
    assert.ok(Number(rewatch.resourceVersion) >= rvAfter, `re-watch from the bookmark (${rvAfter}), got ${rewatch.resourceVersion}`);
    assert.equal(api.requests.filter((r) => r.path === PODS && !r.watch).length, listsBefore, 'no relist');
  });

  it('relists after 410 Gone and catches up on what happened meanwhile', async () => {
    const listsBefore = api.requests.filter((r) => r.path === PODS && !r.watch).length;
    // synchronously: drop the watches, change things, compact history — the client's
    // resourceVersion is now too old and the API answers its re-watch with 410
    api.disconnectWatches();
    api.put(PODS, pod('web-3', '198.18.1.12', 'node2'));
    api.delete(PODS, 'shop', 'web-1');
    api.compact();
    await until(() => workloads().has('uid-web-3') && !workloads().has('uid-web-1'), 'catch-up after 410');
    assert.ok(api.requests.filter((r) => r.path === PODS && !r.watch).length > listsBefore, 'the pods were relisted');
    const t = translateSnapshot(latest!);
    assert.ok(t.identitiesByNode.get('node2')?.has('shop/web'));
    assert.ok(!t.identitiesByNode.get('node1')?.has('shop/web'));
  });

  it('serves without a policy CRD that is not installed, and picks it up once it is', async () => {
    const api2 = new KubeApiDouble(100);
    await api2.start();
    const PA = '/apis/security.weft.io/v1/peerauthentications';
    api2.missing.add(PA);
    api2.put(NS, { metadata: { name: 'shop' } });
    api2.put(PODS, pod('web-9', '198.18.1.90'));
    let snap: ClusterSnapshot | undefined;
    const src = new KubernetesSource(kubeconfig(api2.port), { debounceMs: 10, backoff: { initialMs: 50, maxMs: 200 }, initialSyncTimeoutMs: 5000 });
    try {
      await src.start((s) => (snap = s));
      await until(() => snap?.objects.some((o) => o.object.metadata?.name === 'web-9') ?? false, 'a snapshot without the CRD');
      api2.missing.delete(PA);
      api2.put(PA, { metadata: { name: 'strict', namespace: 'shop' }, spec: { mtls: { mode: 'STRICT' } } });
      await until(() => snap?.objects.some((o) => o.object.kind === 'PeerAuthentication') ?? false, 'the PeerAuthentication after the CRD appears');
    } finally {
      await src.stop();
      await api2.stop();
    }
  });
});
