// The controller as the Kubernetes install (agent/src/deploy) expects it, against the
// Kubernetes API test double: TokenReview with the agents' audience and trusted accounts, the
// CA in the Secret weft-ca with its root published in the ConfigMap weft-ca-root-cert, TLS
// for weft-controller.<ns>.svc, and /healthz/ready — started with the env of the rendered
// Deployment and under the rendered RBAC (the double refuses whatever the Role does not allow).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiDouble, type ResourceAttributes } from './controller-kube-api-double.js';
import { TokenReviewAuthenticator, parseTrustedNodeAccounts } from '../../agent/src/identity/token-review.js';
import { loadOrCreateCaInSecrets, publishRootCertificate } from '../../agent/src/identity/ca-secret.js';
import { createRootMaterial } from '../../agent/src/identity/ca.js';
import { CaClient } from '../../agent/src/identity/ca-client.js';
import { createCsr } from '../../agent/src/identity/csr.js';
import { generateP256 } from '../../agent/src/identity/keys.js';
import { Controller } from '../../agent/src/controller/controller.js';
import { KubernetesSource } from '../../agent/src/controller/source-kubernetes.js';
import { kubernetesCaLoader, kubernetesControllerOptions, kubernetesSettings } from '../../agent/src/controller/kubernetes-setup.js';
import { createServer as createNetServer } from 'node:net';
import { parseObjects, renderManifest } from '../../agent/src/deploy/render.js';
import { DeltaAdsClient } from '../../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../agent/src/xds/types.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { until } from '../helpers/until.js';

const PODS = '/api/v1/pods';
const NS = '/api/v1/namespaces';
const AGENT = 'system:serviceaccount:weft-system:weft-agent';
const NODE_NAME = 'authentication.kubernetes.io/node-name';
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';

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


describe('TokenReview against the Kubernetes API test double', () => {
  const api = new KubeApiDouble(100);
  let auth: TokenReviewAuthenticator;
  before(async () => {
    await api.start();
    auth = new TokenReviewAuthenticator(kubeconfig(api.port), { cacheMs: 0 });
    api.tokens.set('agent-node1', { username: AGENT, audiences: ['weft'], extra: { [NODE_NAME]: ['node1'], [POD_NAME]: ['weft-agent-a'] } });
    api.put(PODS, { metadata: { name: 'weft-agent-x', namespace: 'weft-system', uid: 'uid-x' }, spec: { nodeName: 'node7' }, status: {} });
    api.tokens.set('agent-by-pod', { username: AGENT, audiences: ['weft'], extra: { [POD_NAME]: ['weft-agent-x'], [POD_UID]: ['uid-x'] } });
    api.tokens.set('agent-stale-pod', { username: AGENT, audiences: ['weft'], extra: { [POD_NAME]: ['weft-agent-x'], [POD_UID]: ['uid-old'] } });
    api.tokens.set('agent-apiserver-aud', { username: AGENT, extra: { [NODE_NAME]: ['node1'] } });
    api.tokens.set('agent-unbound', { username: AGENT, audiences: ['weft'] });
    api.tokens.set('other-sa', { username: 'system:serviceaccount:shop:web', audiences: ['weft'], extra: { [NODE_NAME]: ['node1'] } });
  });
  after(() => api.stop());

  it('sends spec.audiences [weft] and takes the node from the token\'s node-name, else from its bound pod (same uid)', async () => {
    assert.deepEqual(await auth.authenticate('agent-node1'), { node: 'node1', subject: AGENT });
    assert.equal((await auth.authenticate('agent-by-pod')).node, 'node7');
    await assert.rejects(auth.authenticate('agent-stale-pod'), /not bound to a pod on a node/);
    await assert.rejects(auth.authenticate('agent-unbound'), /not bound to a pod on a node/);
  });

  it('refuses a token for another audience: a service-account token for the API server is not an agent token', async () => {
    await assert.rejects(auth.authenticate('agent-apiserver-aud'), /did not accept the token for audience 'weft' \(.*token audiences \["https:\/\/kubernetes\.default\.svc\.cluster\.local"\] is invalid for the target audiences \["weft"\]/);
    // and a review for another audience refuses the agent's token
    const other = new TokenReviewAuthenticator(kubeconfig(api.port), { cacheMs: 0, audience: 'vault' });
    await assert.rejects(other.authenticate('agent-node1'), /for audience 'vault'/);
  });

  it('refuses when the reviewer ignores audiences (no status.audiences), untrusted accounts and unknown tokens', async () => {
    api.audienceAware = false;
    try {
      await assert.rejects(auth.authenticate('agent-node1'), /not valid for audience 'weft' \(the review answered audiences \[\]\)/);
    } finally {
      api.audienceAware = true;
    }
    await assert.rejects(auth.authenticate('other-sa'), /system:serviceaccount:shop:web is not a trusted node agent account \(weft-system\/weft-agent\)/);
    await assert.rejects(auth.authenticate('forged'), (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, 'WEFT_E_UNAUTHENTICATED');
      assert.match(e.message, /did not accept the token for audience 'weft' \(invalid bearer token\)/);
      assert.match(e.hint ?? '', /projected service-account token for audience 'weft'.*weft-system\/weft-agent/);
      return true;
    });
    const custom = new TokenReviewAuthenticator(kubeconfig(api.port), { cacheMs: 0, trustedNodeAccounts: parseTrustedNodeAccounts('mesh/agent, shop/web') });
    assert.equal((await custom.authenticate('other-sa')).node, 'node1');
    await assert.rejects(custom.authenticate('agent-node1'), /not a trusted node agent account \(mesh\/agent, shop\/web\)/);
  });

  it('parses WEFT_TRUSTED_NODE_ACCOUNTS and refuses malformed entries', () => {
    assert.deepEqual(parseTrustedNodeAccounts(undefined), ['weft-system/weft-agent']);
    assert.deepEqual(parseTrustedNodeAccounts('a/b,c/d'), ['a/b', 'c/d']);
    assert.throws(() => parseTrustedNodeAccounts('weft-agent'), /'weft-agent' is not namespace\/serviceaccount/);
  });
});

describe('CA in Secrets and the published root against the Kubernetes API test double', () => {
  const api = new KubeApiDouble(100);
  before(() => api.start());
  after(() => api.stop());
  const enc = (t: string) => Buffer.from(t).toString('base64');

  it('keeps the CA in the Secret weft-ca: created once, reused by the next start and by a racing replica', async () => {
    const kc = kubeconfig(api.port);
    const [a, b] = await Promise.all([loadOrCreateCaInSecrets(kc, 'weft-system'), loadOrCreateCaInSecrets(kc, 'weft-system')]);
    assert.equal(a.rootsPem, b.rootsPem, 'both replicas use the same root');
    const again = await loadOrCreateCaInSecrets(kc, 'weft-system');
    assert.equal(again.rootsPem, a.rootsPem);
    const stored = api.secrets.get('weft-system/weft-ca') as unknown as { data: Record<string, string> };
    assert.ok(stored.data['ca-key.pem'] && stored.data['ca-cert.pem']);
    assert.equal([...api.secrets.keys()].filter((k) => k.startsWith('weft-system/')).length, 1, 'one Secret');
  });

  it('uses an operator CA put in the Secret beforehand (cacerts layout) and refuses an incomplete one', async () => {
    const m = await createRootMaterial({ trustDomain: 'example.org' });
    api.secrets.set('ops/weft-ca', { metadata: { name: 'weft-ca', namespace: 'ops' }, data: { 'ca-key.pem': enc(m.keyPem), 'ca-cert.pem': enc(m.certPem) } });
    const ca = await loadOrCreateCaInSecrets(kubeconfig(api.port), 'ops');
    assert.equal(ca.rootsPem, m.certPem);
    api.secrets.set('bad/weft-ca', { metadata: { name: 'weft-ca', namespace: 'bad' }, data: { 'ca-cert.pem': enc(m.certPem) } });
    await assert.rejects(loadOrCreateCaInSecrets(kubeconfig(api.port), 'bad'), /Secret bad\/weft-ca lacks ca-key\.pem/);
  });

  it('publishes the root as root-cert.pem in the ConfigMap weft-ca-root-cert: created, unchanged, updated when stale', async () => {
    const kc = kubeconfig(api.port);
    const r1 = (await createRootMaterial()).certPem;
    const r2 = (await createRootMaterial()).certPem;
    assert.equal(await publishRootCertificate(kc, 'weft-system', r1), 'created');
    assert.equal((api.configMaps.get('weft-system/weft-ca-root-cert')?.data as Record<string, string>)['root-cert.pem'], r1);
    assert.equal(await publishRootCertificate(kc, 'weft-system', r1), 'unchanged');
    const rv = api.configMaps.get('weft-system/weft-ca-root-cert')!.metadata.resourceVersion;
    assert.equal(await publishRootCertificate(kc, 'weft-system', r2), 'updated');
    const cm = api.configMaps.get('weft-system/weft-ca-root-cert')!;
    assert.equal((cm.data as Record<string, string>)['root-cert.pem'], r2);
    assert.notEqual(cm.metadata.resourceVersion, rv);
    // two replicas at once: both succeed, one creates
    const [a, b] = await Promise.all([publishRootCertificate(kc, 'race', r1), publishRootCertificate(kc, 'race', r1)]);
    assert.deepEqual([a, b].sort(), ['created', 'unchanged']);
  });

  it('names the Secret and the RBAC when the API refuses (403)', async () => {
    const kc = kubeconfig(api.port);
    api.authorize = (a) => !(a.resource === 'secrets');
    try {
      await assert.rejects(loadOrCreateCaInSecrets(kc, 'locked'), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'WEFT_E_CA_STATE');
        assert.match(e.message, /cannot read Secret locked\/weft-ca: forbidden by RBAC/);
        assert.match((e as Error & { hint?: string }).hint ?? '', /controller's Role/);
        return true;
      });
    } finally {
      api.authorize = undefined;
    }
  });
});

/** The rendered install: the controller Deployment's env and what its RBAC allows. */
function renderedInstall(ns: string) {
  const objs = parseObjects(renderManifest({ namespace: ns })) as Array<{ kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown }>;
  const dep = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'weft-controller')!;
  const c = (dep.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>; ports: Array<{ containerPort: number }>; readinessProbe: { httpGet: { path: string; port: number } } }> } } }).template.spec.containers[0]!;
  const env: Record<string, string> = {};
  for (const e of c.env) env[e.name] = e.value ?? (e.valueFrom?.fieldRef.fieldPath === 'metadata.namespace' ? ns : '');
  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
  const rules = (kind: string) => (objs.find((o) => o.kind === kind && o.metadata.name === 'weft-controller')!.rules as Rule[]);
  const matches = (r: Rule, a: ResourceAttributes) => r.apiGroups.includes(a.group) && r.resources.includes(a.resource) && r.verbs.includes(a.verb)
    && (!r.resourceNames || (a.name !== undefined && r.resourceNames.includes(a.name)));
  const authorize = (a: ResourceAttributes) => rules('ClusterRole').some((r) => matches(r, a)) || (a.namespace === ns && rules('Role').some((r) => matches(r, a)));
  return { env, authorize, args: (c as unknown as { args: string[] }).args, probe: c.readinessProbe.httpGet, ports: c.ports.map((p) => p.containerPort) };
}

describe('Controller in Kubernetes against the Kubernetes API test double (rendered Deployment env and RBAC)', () => {
  const NSNAME = 'mesh-ctl';
  const api = new KubeApiDouble(100);
  const install = renderedInstall(NSNAME);
  let controller: Controller;
  let dir: string;
  const clients: CaClient[] = [];
  const ready = async () => {
    const r = await fetch(`http://127.0.0.1:${controller.readinessPort}${install.probe.path}`);
    return { code: r.status, body: await r.text() };
  };
  const rootPem = () => (api.configMaps.get(`${NSNAME}/weft-ca-root-cert`)?.data as Record<string, string> | undefined)?.['root-cert.pem'];
  const caClient = (token: string, serverName = `weft-controller.${NSNAME}.svc`) => {
    const c = new CaClient({ address: `127.0.0.1:${controller.port}`, rootCertPem: rootPem()!, token: () => token, serverName });
    clients.push(c);
    return c;
  };
  const SHOP_WEB = 'spiffe://cluster.local/ns/shop/sa/web';
  const request = async (c: CaClient) => c.createCertificate(await createCsr(await generateP256(), SHOP_WEB), SHOP_WEB, 0, 5000);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-ctl-kube-'));
    await api.start();
    api.authorize = install.authorize;
    api.put(NS, { metadata: { name: 'shop', labels: { 'weft.io/mesh': 'enabled' } } });
    api.put(PODS, { metadata: { name: 'web-1', namespace: 'shop', uid: 'uid-web-1', labels: { app: 'web' } }, spec: { nodeName: 'node1', serviceAccountName: 'web', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: '198.18.1.10', podIPs: [{ ip: '198.18.1.10' }] } });
    api.tokens.set('agent-node1', { username: `system:serviceaccount:${NSNAME}:weft-agent`, audiences: ['weft'], extra: { [NODE_NAME]: ['node1'] } });
    api.tokens.set('agent-node1-apiserver', { username: `system:serviceaccount:${NSNAME}:weft-agent`, extra: { [NODE_NAME]: ['node1'] } });
    api.tokens.set('default-agent', { username: AGENT, audiences: ['weft'], extra: { [NODE_NAME]: ['node1'] } });
    // the pod list keeps failing for a while: the controller must start, but not be ready
    api.failNext(PODS, 500, 4);
    const kc = kubeconfig(api.port);
    const settings = kubernetesSettings(install.env);
    controller = await Controller.start({
      source: new KubernetesSource(kc, { debounceMs: 10, backoff: { initialMs: 300, maxMs: 300 }, initialSyncTimeoutMs: 50 }),
      stateDir: dir, listen: '127.0.0.1:0',
      ...kubernetesControllerOptions(kc, settings),
      readiness: '127.0.0.1:0',
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await controller?.stop();
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes its settings from the Deployment\'s env', () => {
    const s = kubernetesSettings(install.env);
    assert.equal(s.namespace, NSNAME);
    assert.deepEqual(s.trustedNodeAccounts, [`${NSNAME}/weft-agent`]);
    assert.equal(s.audience, 'weft');
    assert.equal(s.caSecret, 'weft-ca');
    assert.equal(s.readiness, `:${install.probe.port}`, 'readiness where the probe looks');
    assert.ok(install.ports.includes(install.probe.port));
  });

  it('answers /healthz/ready 503 (saying what it waits for) until the cluster state is listed, then 200', async () => {
    const first = await ready();
    assert.equal(first.code, 503);
    assert.match(first.body, /not ready: waiting for the cluster state \(not listed yet: Pod\)/);
    await until(async () => (await ready()).code === 200, 'readiness 200');
    assert.equal((await ready()).body, 'ready\n');
    assert.equal((await fetch(`http://127.0.0.1:${controller.readinessPort}/other`)).status, 404);
  });

  it('keeps its CA in the Secret weft-ca of its namespace and publishes the root in weft-ca-root-cert, all within the rendered RBAC', () => {
    assert.ok(api.secrets.has(`${NSNAME}/weft-ca`));
    assert.equal(rootPem(), controller.ca.rootsPem);
    assert.deepEqual(api.forbidden, [], 'no request outside the Role and ClusterRole');
    const made = new Set(api.requests.filter((r) => r.method !== 'GET' || /\/(secrets|configmaps)\//.test(r.path)).map((r) => `${r.method} ${r.path}`));
    assert.deepEqual([...made].sort(), [
      'GET /api/v1/namespaces/mesh-ctl/configmaps/weft-ca-root-cert',
      'GET /api/v1/namespaces/mesh-ctl/secrets/weft-ca',
      'POST /api/v1/namespaces/mesh-ctl/configmaps',
      'POST /api/v1/namespaces/mesh-ctl/secrets',
    ]);
  });

  it('serves TLS as weft-controller.<ns>.svc (and .svc.cluster.local) signed by the published root, and issues to a trusted agent', async () => {
    const chain = await request(caClient('agent-node1'));
    assert.equal(new X509Certificate(chain[0]!).subjectAltName, `URI:${SHOP_WEB}`);
    await request(caClient('agent-node1', `weft-controller.${NSNAME}.svc.cluster.local`));
    await assert.rejects(request(caClient('agent-node1', 'weft-controller.elsewhere.svc')), (e: ServiceError) => e.code === status.UNAVAILABLE);
  });

  it('serves xDS to a trusted agent dialling weft-controller.<ns>.svc, and refuses the stream of a token for another audience', async () => {
    const ads = (token: string, state: WorkloadState) => new DeltaAdsClient({
      address: `127.0.0.1:${controller.port}`, rootCertPem: rootPem()!, serverName: `weft-controller.${NSNAME}.svc`, token: () => token,
      node: { id: 'weft~198.18.0.1~agent.weft-system~weft-system.svc.cluster.local' },
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL], apply: (u) => state.apply(u), backoff: { initialMs: 50, maxMs: 400 },
    });
    const good = new WorkloadState();
    const c = ads('agent-node1', good);
    try {
      c.start();
      await c.waitSynced();
      assert.deepEqual(good.workloads().map((w) => w.uid), ['uid-web-1']);
    } finally {
      c.stop();
    }
    const bad = new WorkloadState();
    const b = ads('agent-node1-apiserver', bad);
    try {
      const [e] = await (b.start(), once(b, 'disconnected')) as [{ code: number; details: string }];
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.match(e.details, /not accept the token for audience 'weft'/);
      assert.equal(bad.workloads().length, 0);
    } finally {
      b.stop();
    }
  });

  it('refuses agents with UNAUTHENTICATED and the reason: wrong audience, untrusted account', async () => {
    await assert.rejects(request(caClient('agent-node1-apiserver')), (e: ServiceError) => {
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.match(e.details, /did not accept the token for audience 'weft'/);
      return true;
    });
    await assert.rejects(request(caClient('default-agent')), (e: ServiceError) => {
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.match(e.details, new RegExp(`${AGENT} is not a trusted node agent account \\(${NSNAME}/weft-agent\\)`));
      return true;
    });
  });
});

describe('weft controller (the CLI) against the Kubernetes API test double, with the rendered Deployment\'s args and env', () => {
  const NSNAME = 'weft-system';
  const api = new KubeApiDouble(100);
  const install = renderedInstall(NSNAME);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-ctl-cli-'));
    await api.start();
    api.authorize = install.authorize;
  });
  after(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts, publishes the root, answers /healthz/ready 200, and exits 0 on SIGTERM', async () => {
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'double', cluster: { server: `http://127.0.0.1:${api.port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'test-token' } }],
      contexts: [{ name: 'c', context: { cluster: 'double', user: 'u' } }],
    }));
    // the Deployment's args, with loopback ports and a temporary state directory for the test
    const args = [...install.args];
    args[args.indexOf('--listen') + 1] = '127.0.0.1:0';
    args[args.indexOf('--state-dir') + 1] = join(dir, 'state');
    args.push('--readiness', '127.0.0.1:0');
    assert.equal(args[0], 'controller');
    const bin = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? '', ...install.env, KUBECONFIG: kubeconfigPath, WEFT_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = once(child, 'exit');
    try {
      await until(() => /readiness :(\d+)/.test(err) || child.exitCode !== null, 'the controller to start', 15_000);
      const port = /readiness :(\d+)/.exec(err)?.[1];
      assert.ok(port, `controller did not start: ${err}`);
      assert.match(err, /root certificate Secret weft-system\/weft-ca \(published in ConfigMap weft-system\/weft-ca-root-cert\)/);
      await until(async () => (await fetch(`http://127.0.0.1:${port}/healthz/ready`)).status === 200, 'readiness', 10_000);
      const root = (api.configMaps.get('weft-system/weft-ca-root-cert')?.data as Record<string, string>)['root-cert.pem']!;
      assert.ok(new X509Certificate(root).ca);
      assert.deepEqual(api.forbidden, []);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await exited;
    assert.equal(code, 0, err);
  });
});

describe('Controller readiness while the CA loads, against the Kubernetes API test double', () => {
  it('answers 503 "waiting for the CA" before the CA is loaded, and 200 after', async () => {
    const api = new KubeApiDouble(100);
    await api.start();
    const dir = await mkdtemp(join(tmpdir(), 'weft-ctl-ready-'));
    // a free loopback port, known before start() returns
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const kc = kubeconfig(api.port);
    const load = kubernetesCaLoader(kc, { namespace: 'weft-system', caSecret: 'weft-ca', rootConfigMap: 'weft-ca-root-cert' });
    const starting = Controller.start({
      source: new KubernetesSource(kc, { debounceMs: 10 }), stateDir: dir, listen: '127.0.0.1:0', readiness: `127.0.0.1:${port}`,
      loadCa: async (o) => { await gate; return load(o); },
    });
    let controller: Controller | undefined;
    try {
      let r: Response | undefined;
      await until(async () => (r = await fetch(`http://127.0.0.1:${port}/healthz/ready`).catch(() => undefined)) !== undefined, 'the readiness listener');
      assert.equal(r!.status, 503);
      assert.match(await r!.text(), /waiting for the CA/);
      assert.equal(api.configMaps.size, 0, 'nothing published before the CA is loaded');
      open();
      controller = await starting;
      await until(async () => (await fetch(`http://127.0.0.1:${port}/healthz/ready`)).status === 200, 'ready');
      assert.ok(api.configMaps.has('weft-system/weft-ca-root-cert'));
    } finally {
      open();
      await (controller ?? (await starting.catch(() => undefined)))?.stop();
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
