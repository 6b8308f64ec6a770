// The Kubernetes install against a REAL kube-apiserver (and etcd), not the API test double:
// `weft manifest` applied by server-side apply with strict field validation, `weft check --kube`
// on an empty, a half-installed and a ready cluster, and `weft controller --source kubernetes`
// run with the controller service account's own token (so the rendered RBAC is enforced by the
// API server), serving agents that present real projected tokens checked by real TokenReview.
// There is no kubelet, scheduler or controller-manager: the test creates Nodes, binds Pods with
// spec.nodeName and writes the statuses a kubelet and the workload controllers would write.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import { controlPlaneBinaries, RealKubeApiServer } from '../helpers/kube-real-apiserver.js';
import { parseObjects } from '../../agent/src/deploy/render.js';
import { publishNodeChecks } from '../../agent/src/deploy/node-checks-annotation.js';
import { DaemonSetWatch, decideFromDaemonSet } from '../../agent/src/agent/exit-policy.js';
import { kubeConnectionFromConfig } from '../../agent/src/common/kube-api.js';
import { CaClient } from '../../agent/src/identity/ca-client.js';
import { createCsr } from '../../agent/src/identity/csr.js';
import { generateP256 } from '../../agent/src/identity/keys.js';
import { DeltaAdsClient } from '../../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../agent/src/xds/types.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';
import { TunnelProtocol } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';

const BIN = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
const NS = 'weft-system';
const tools = controlPlaneBinaries();

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

function weft(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

async function until<T>(f: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Check { name: string; ok: boolean; required: boolean; detail: string; hint?: string }

describe('the Kubernetes install against a real kube-apiserver', { skip: 'skip' in tools ? tools.skip : false, timeout: 10 * 60_000 }, () => {
  const api = new RealKubeApiServer('dir' in tools ? tools.dir : '');
  let adminKubeconfig = '';
  let objects: Obj[] = [];
  const check = () => {
    const r = weft(['check', '--kube', '--kubeconfig', adminKubeconfig, '-o', 'json', '--timeout', '10']);
    assert.ok(r.code === 0 || r.code === 1, `weft check --kube exited ${r.code}: ${r.err}`);
    const parsed = JSON.parse(r.out) as { ok: boolean; checks: Check[] };
    return { code: r.code, ...parsed, byName: new Map(parsed.checks.map((c) => [c.name, c])) };
  };
  const statusPatch = (path: string, status: unknown) => api.must('PATCH', `${path}/status`, { status }, { contentType: 'application/merge-patch+json' });

  before(async () => {
    await api.start();
    adminKubeconfig = api.writeKubeconfig('admin.kubeconfig');
  });
  after(async () => {
    await api.stop();
  });

  it('runs the Kubernetes version the tools built', async () => {
    const v = await api.must<{ gitVersion: string }>('GET', '/version');
    assert.match(v.gitVersion, /^v1\.34\.\d+$/);
  });

  it('weft check --kube on a cluster without Weft: every missing piece FAILs with a hint, and the exit code is 1', () => {
    const r = check();
    assert.equal(r.code, 1);
    assert.equal(r.ok, false);
    assert.equal(r.byName.get('kubernetes')?.ok, true);
    assert.match(r.byName.get('kubernetes')!.detail, /^server v1\.34\.\d+ \(need >= 1\.27\)$/);
    for (const crd of ['authorizationpolicies.security.weft.io', 'peerauthentications.security.weft.io']) {
      assert.deepEqual([r.byName.get(`crd ${crd}`)?.ok, r.byName.get(`crd ${crd}`)?.detail], [false, 'missing']);
    }
    assert.equal(r.byName.get('controller')?.detail, `no Deployment ${NS}/weft-controller`);
    assert.match(r.byName.get('controller')?.hint ?? '', /helm install weft/);
    assert.equal(r.byName.get('agent daemonset')?.detail, `no DaemonSet ${NS}/weft-agent`);
    assert.equal(r.byName.get('nodes')?.detail, 'the cluster has no nodes');
  });

  it('accepts every object of `weft manifest` by server-side apply with strict field validation (CRDs established first)', async () => {
    const r = weft(['manifest', '--namespace', NS]);
    assert.equal(r.code, 0, r.err);
    objects = parseObjects(r.out) as Obj[];
    const first = objects.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
    for (const o of first) {
      const a = await api.apply(o);
      assert.ok(a.status === 200 || a.status === 201, `${o.kind} ${o.metadata.name}: HTTP ${a.status} ${a.body?.message ?? a.text}`);
    }
    for (const o of first.filter((x) => x.kind === 'CustomResourceDefinition')) {
      await until(async () => {
        const crd = await api.must('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${o.metadata.name}`);
        return (crd.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True');
      }, `CRD ${o.metadata.name} established`);
    }
    const failures: string[] = [];
    for (const o of objects.filter((x) => !first.includes(x))) {
      const a = await api.apply(o);
      if (a.status !== 200 && a.status !== 201) failures.push(`${o.kind} ${o.metadata.name}: HTTP ${a.status} ${a.body?.message ?? a.text}`);
    }
    assert.deepEqual(failures, []);
    const kinds = new Set(objects.map((o) => o.kind));
    for (const k of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'Deployment', 'DaemonSet']) assert.ok(kinds.has(k), `the manifest has a ${k}`);
    // What the API server stored is what we sent: nothing was dropped or defaulted away.
    const ds = await api.must('GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/weft-agent`);
    const sent = objects.find((o) => o.kind === 'DaemonSet')!;
    assert.deepEqual(ds.spec.template.spec.containers[0].args, sent.spec.template.spec.containers[0].args);
    assert.equal(ds.spec.template.spec.priorityClassName, sent.spec.template.spec.priorityClassName);
  });

  it('accepts the manifest with non-default values too (ResourceQuota for critical pods, host network, another namespace; server-side dry run)', async () => {
    const r = weft(['manifest', '--namespace', 'mesh-alt', '--skip-crds', '--set', 'resourceQuota.enabled=true,agent.hostNetwork=true,controller.replicas=2,logLevel=debug']);
    assert.equal(r.code, 0, r.err);
    const failures: string[] = [];
    const objs = parseObjects(r.out) as Obj[];
    assert.ok(objs.some((o) => o.kind === 'ResourceQuota'));
    // Only the namespace is stored: the ClusterRoles and ClusterRoleBindings have the same names
    // as the install above (one mesh per cluster) and would take its bindings over.
    for (const o of objs) {
      const a = await api.apply(o, { dryRun: o.kind !== 'Namespace' });
      if (a.status !== 200 && a.status !== 201) failures.push(`${o.kind} ${o.metadata.name}: HTTP ${a.status} ${a.body?.message ?? a.text}`);
    }
    assert.deepEqual(failures, []);
  });

  it('weft check --kube after the install, before any node: CRDs and DaemonSet ok, the controller not ready, no nodes', () => {
    const r = check();
    assert.equal(r.code, 1);
    for (const crd of ['authorizationpolicies.security.weft.io', 'peerauthentications.security.weft.io']) {
      assert.deepEqual([r.byName.get(`crd ${crd}`)?.ok, r.byName.get(`crd ${crd}`)?.detail], [true, 'established, serves v1']);
    }
    assert.deepEqual([r.byName.get('controller')?.ok, r.byName.get('controller')?.detail], [false, `0/1 replicas ready (${NS}/weft-controller)`]);
    assert.deepEqual([r.byName.get('agent daemonset')?.ok, r.byName.get('agent daemonset')?.detail], [true, `0/0 agents ready (${NS}/weft-agent)`]);
    assert.equal(r.byName.get('nodes')?.ok, false);
  });

  let agentPod: { name: string; uid: string } = { name: '', uid: '' };
  /** a pod built from the agent DaemonSet's template (admission: service account, priority class) */
  async function createAgentPod(node: string): Promise<{ name: string; uid: string }> {
    const ds = objects.find((o) => o.kind === 'DaemonSet')!;
    const name = `weft-agent-${node}`;
    const pod = await api.must('POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: NS, labels: ds.spec.template.metadata.labels },
      spec: { ...ds.spec.template.spec, nodeName: node },
    });
    return { name, uid: pod.metadata.uid };
  }
  const node = async (name: string, kernel: string) => {
    await api.must('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/hostname': name } } });
    await statusPatch(`/api/v1/nodes/${name}`, { nodeInfo: { kernelVersion: kernel } });
  };

  it('weft check --kube passes once a node runs a ready agent that published its node checks (with the agent\'s own token and RBAC)', async () => {
    await node('node1', '6.1.0-test');
    agentPod = await createAgentPod('node1');
    let r = check();
    assert.deepEqual([r.byName.get('node node1')?.ok, r.byName.get('node node1')?.detail], [false, 'agent weft-agent-node1 Pending, not ready: enrolled pods on this node get no mesh']);
    await statusPatch(`/api/v1/namespaces/${NS}/pods/${agentPod.name}`, {
      phase: 'Running', podIP: '198.18.0.11', podIPs: [{ ip: '198.18.0.11' }],
      conditions: [{ type: 'Ready', status: 'True' }],
    });
    r = check();
    assert.equal(r.byName.get('node node1 checks')?.detail, 'the agent has not published weft.io/node-checks');
    // the agent's in-cluster token (audience: the API server), bound to its pod
    const agentKc = kubeConnectionFromConfig(api.kubeConfig(await api.token(NS, 'weft-agent', [api.apiAudience], agentPod)));
    await publishNodeChecks(agentKc, 'node1', [
      { name: 'kernel', ok: true, required: true, detail: '6.1.0-test' },
      { name: 'btf', ok: true, required: true, detail: '/sys/kernel/btf/vmlinux' },
    ], '0.0.0-test');
    await statusPatch(`/apis/apps/v1/namespaces/${NS}/deployments/weft-controller`, { replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 });
    await statusPatch(`/apis/apps/v1/namespaces/${NS}/daemonsets/weft-agent`, { currentNumberScheduled: 1, numberMisscheduled: 0, desiredNumberScheduled: 1, numberReady: 1 });
    r = check();
    assert.equal(r.code, 0, JSON.stringify(r.checks.filter((c) => !c.ok), null, 1));
    assert.equal(r.byName.get('node node1')?.detail, 'agent weft-agent-node1 ready (kernel 6.1.0-test)');
    assert.equal(r.byName.get('node node1 checks')?.detail, '2 kernel checks pass (kernel, btf)');
    assert.equal(r.byName.get('controller')?.detail, `1/1 replicas ready (${NS}/weft-controller)`);

    // another node without an agent, and a failed kernel check on node1: exit 1, each named
    await node('node2', '5.4.0-test');
    await publishNodeChecks(agentKc, 'node1', [{ name: 'btf', ok: false, required: true, detail: 'no /sys/kernel/btf/vmlinux', hint: 'a kernel with BTF' }], '0.0.0-test');
    r = check();
    assert.equal(r.code, 1);
    assert.match(r.byName.get('node node2')?.detail ?? '', /^no agent pod: /);
    assert.deepEqual([r.byName.get('node node1 btf')?.ok, r.byName.get('node node1 btf')?.detail], [false, 'no /sys/kernel/btf/vmlinux']);
    // the agent may patch nodes (its annotation) but not delete them
    const del = await api.request('DELETE', '/api/v1/nodes/node2', undefined, { token: await api.token(NS, 'weft-agent', [api.apiAudience], agentPod) });
    assert.equal(del.status, 403);
    // its Role: get on the DaemonSet weft-agent only (the exit policy reads it at SIGTERM)
    assert.deepEqual(await decideFromDaemonSet(agentKc, { namespace: NS, name: 'weft-agent' }), { release: false, reason: `DaemonSet ${NS}/weft-agent exists: a successor agent takes the pods over` });
    const other = await decideFromDaemonSet(agentKc, { namespace: NS, name: 'other' });
    assert.equal(other.release, false);
    assert.match(other.reason, /403/);
    // the agent's own client as it runs in a pod (the token read from a file for every request):
    // its Role lets it list and watch that DaemonSet by name, so it sees the DaemonSet and its changes
    const sa = mkdtempSync(join(tmpdir(), 'weft-sa-'));
    const watch = new DaemonSetWatch({ server: api.server, caPem: api.caPem, tokenFile: join(sa, 'token') }, { namespace: NS, name: 'weft-agent' }, { initialMs: 100, maxMs: 500 });
    try {
      writeFileSync(join(sa, 'token'), await api.token(NS, 'weft-agent', [api.apiAudience], agentPod));
      watch.start();
      await until(() => watch.observations >= 1, 'the agent\'s watch to list its DaemonSet');
      await api.must('PATCH', `/apis/apps/v1/namespaces/${NS}/daemonsets/weft-agent`, { metadata: { annotations: { 'test.weft.io/touched': '1' } } }, { contentType: 'application/merge-patch+json' });
      await until(() => watch.observations >= 2, 'the MODIFIED event of the DaemonSet');
      assert.equal(watch.deletionSeen, undefined);
    } finally {
      watch.stop();
      rmSync(sa, { recursive: true, force: true });
    }
    // an account without the agent's ClusterRole: the error carries the API's own reason
    await api.must('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { metadata: { name: 'not-the-agent' } });
    await assert.rejects(publishNodeChecks(kubeConnectionFromConfig(api.kubeConfig(await api.token(NS, 'not-the-agent', [api.apiAudience]))), 'node1', [], '0.0.0-test'), (e: Error) => {
      assert.match(e.message, /cannot publish weft\.io\/node-checks on node node1: HTTP 403: nodes "node1" is forbidden: User "system:serviceaccount:weft-system:not-the-agent" cannot patch resource "nodes"/);
      return true;
    });
  });

  describe('weft controller --source kubernetes with the Deployment\'s args and env, under its own service account', () => {
    let child: ChildProcess | undefined;
    let err = '';
    let grpcPort = 0;
    let readyPort = 0;
    const clients: Array<{ close?: () => void; stop?: () => void }> = [];
    let env: Record<string, string> = {};
    let args: string[] = [];

    async function startController(): Promise<void> {
      const token = await api.token(NS, 'weft-controller', [api.apiAudience]);
      const kubeconfig = api.writeKubeconfig('controller.kubeconfig', token);
      err = '';
      child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env, KUBECONFIG: kubeconfig, WEFT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
      api.track(child);
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const started = await until(() => /serving on [^:]+:(\d+), .*readiness :(\d+)/.exec(err) ?? (child!.exitCode !== null && ['exited']), 'the controller to start', 30_000)
        .catch((e: Error) => Promise.reject(new Error(`${e.message}; its output:\n${err}`)));
      assert.notEqual(started[0], 'exited', `the controller exited: ${err}`);
      [grpcPort, readyPort] = [Number(started[1]), Number(started[2])];
    }
    async function stopController(): Promise<number | null> {
      if (!child || child.exitCode !== null) return child?.exitCode ?? null;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      return code as number | null;
    }

    before(async () => {
      const dep = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'weft-controller')!;
      const c = dep.spec.template.spec.containers[0];
      env = {};
      for (const e of c.env as Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>) {
        env[e.name] = e.value ?? (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace' ? NS : '');
      }
      args = [...c.args];
      args[args.indexOf('--listen') + 1] = '127.0.0.1:0';
      args[args.indexOf('--state-dir') + 1] = join(api.dir, 'controller-state');
      args.push('--readiness', '127.0.0.1:0');
      // workloads: an enrolled namespace with a service account and a pod on node1
      await api.must('POST', '/api/v1/namespaces', { metadata: { name: 'shop', labels: { 'weft.io/mesh': 'enabled' } } });
      await api.must('POST', '/api/v1/namespaces/shop/serviceaccounts', { metadata: { name: 'web' } });
      await startController();
    });
    after(async () => {
      for (const c of clients) (c.close ?? c.stop)?.call(c);
      await stopController();
    });

    const root = async () => (await api.must('GET', `/api/v1/namespaces/${NS}/configmaps/weft-ca-root-cert`)).data['root-cert.pem'] as string;
    const ready = async () => {
      const r = await fetch(`http://127.0.0.1:${readyPort}/healthz/ready`);
      return r.status;
    };
    const agentToken = async (audience = 'weft') => api.token(NS, 'weft-agent', [audience], agentPod);
    /** an agent's xDS client, as the agent on node1 dials the controller */
    const adsClient = async (state: WorkloadState) => {
      const token = await agentToken();
      return new DeltaAdsClient({
        address: `127.0.0.1:${grpcPort}`, rootCertPem: await root(), serverName: `weft-controller.${NS}.svc`, token: () => token,
        node: { id: 'weft~198.18.0.11~weft-agent-node1.weft-system~weft-system.svc.cluster.local' },
        typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL], apply: (u) => state.apply(u), backoff: { initialMs: 100, maxMs: 1000 },
      });
    };
    const runningPod = async (name: string, ip: string) => {
      const pod = await api.must('POST', '/api/v1/namespaces/shop/pods', {
        metadata: { name, labels: { app: 'web' } },
        spec: { nodeName: 'node1', serviceAccountName: 'web', containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
      });
      await statusPatch(`/api/v1/namespaces/shop/pods/${name}`, { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] });
      return pod.metadata.uid as string;
    };

    it('becomes ready, creates its CA Secret and publishes the root ConfigMap, with no request refused by RBAC', async () => {
      await until(async () => (await ready()) === 200, '/healthz/ready 200', 20_000);
      const secret = await api.must('GET', `/api/v1/namespaces/${NS}/secrets/weft-ca`);
      assert.ok(secret.data['ca-key.pem'] && secret.data['ca-cert.pem']);
      const pem = await root();
      assert.ok(new X509Certificate(pem).ca);
      assert.equal(Buffer.from(secret.data['ca-cert.pem'], 'base64').toString(), pem);
      // (429 "storage is (re)initializing" right after start is retried like any list failure)
      assert.doesNotMatch(err, /forbidden|"status":403/i);
    });

    it('serves a pod to an agent over xDS, and follows its IP, its namespace\'s enrolment and its deletion', async () => {
      const state = new WorkloadState();
      const ads = await adsClient(state);
      clients.push(ads);
      ads.start();
      try {
        await followPod(ads, state);
      } finally {
        ads.stop();
      }
    });

    async function followPod(ads: DeltaAdsClient, state: WorkloadState): Promise<void> {
      await ads.waitSynced();
      const pod = await api.must('POST', '/api/v1/namespaces/shop/pods', {
        metadata: { name: 'web-1', labels: { app: 'web' } },
        spec: { nodeName: 'node1', serviceAccountName: 'web', containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
      });
      // no IP yet: nothing to serve
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(state.workload(pod.metadata.uid), undefined);
      await statusPatch('/api/v1/namespaces/shop/pods/web-1', { phase: 'Running', podIP: '198.18.1.10', podIPs: [{ ip: '198.18.1.10' }], conditions: [{ type: 'Ready', status: 'True' }] });
      const w = await until(() => state.workload(pod.metadata.uid), 'the workload over xDS');
      assert.deepEqual([w.name, w.namespace, w.serviceAccount, w.node, w.tunnelProtocol], ['web-1', 'shop', 'web', 'node1', TunnelProtocol.HBONE]);
      assert.equal(state.workloadByIp('198.18.1.10')?.uid, pod.metadata.uid);

      await api.must('PATCH', '/api/v1/namespaces/shop', { metadata: { labels: { 'weft.io/mesh': null } } }, { contentType: 'application/merge-patch+json' });
      await until(() => state.workload(pod.metadata.uid)?.tunnelProtocol === TunnelProtocol.NONE, 'the workload out of the mesh');
      await api.must('PATCH', '/api/v1/namespaces/shop', { metadata: { labels: { 'weft.io/mesh': 'enabled' } } }, { contentType: 'application/merge-patch+json' });
      await until(() => state.workload(pod.metadata.uid)?.tunnelProtocol === TunnelProtocol.HBONE, 'the workload back in the mesh');

      await api.must('POST', '/apis/security.weft.io/v1/namespaces/shop/authorizationpolicies', {
        apiVersion: 'security.weft.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-shop' },
        spec: { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] },
      });
      await until(() => state.policy('shop/allow-shop'), 'the policy over xDS');
      await until(() => state.workload(pod.metadata.uid)?.authorizationPolicies.includes('shop/allow-shop'), 'the workload naming its policy');

      // deleted: with no kubelet the pod stays terminating (deletionTimestamp), and is no longer served
      await api.must('DELETE', '/api/v1/namespaces/shop/pods/web-1');
      await until(() => state.workload(pod.metadata.uid) === undefined, 'the terminating workload removed');
      await api.must('DELETE', '/api/v1/namespaces/shop/pods/web-1?gracePeriodSeconds=0');
    }

    it('signs a certificate for an identity running on the agent\'s node, and refuses others and tokens for another audience', async () => {
      const pod = await api.must('POST', '/api/v1/namespaces/shop/pods', {
        metadata: { name: 'web-2', labels: { app: 'web' } },
        spec: { nodeName: 'node1', serviceAccountName: 'web', containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
      });
      assert.ok(pod.metadata.uid);
      const caClient = async (token: string) => {
        const c = new CaClient({ address: `127.0.0.1:${grpcPort}`, rootCertPem: await root(), token: () => token, serverName: `weft-controller.${NS}.svc` });
        clients.push(c);
        return c;
      };
      const web = 'spiffe://cluster.local/ns/shop/sa/web';
      const sign = async (c: CaClient, id: string) => c.createCertificate(await createCsr(await generateP256(), id), id, 0, 10_000);
      const c = await caClient(await agentToken());
      const chain = await until(() => sign(c, web).catch((e: ServiceError) => (e.code === status.PERMISSION_DENIED ? undefined : Promise.reject(e))), 'the pod on node1 seen by the CA');
      assert.equal(new X509Certificate(chain[0]!).subjectAltName, `URI:${web}`);
      assert.ok(new X509Certificate(chain[0]!).checkIssued(new X509Certificate(await root())), 'signed by the published root');
      await assert.rejects(sign(c, 'spiffe://cluster.local/ns/shop/sa/db'), (e: ServiceError) => e.code === status.PERMISSION_DENIED);
      // the agent's in-cluster token is for the API server, not for the controller
      await assert.rejects(sign(await caClient(await agentToken(api.apiAudience)), web), (e: ServiceError) => {
        assert.equal(e.code, status.UNAUTHENTICATED);
        assert.match(e.details, /did not accept the token for audience 'weft'/);
        return true;
      });
      // a token of another service account, for the right audience
      await api.must('POST', '/api/v1/namespaces/shop/serviceaccounts', { metadata: { name: 'intruder' } });
      await assert.rejects(sign(await caClient(await api.token('shop', 'intruder', ['weft'])), web), (e: ServiceError) => {
        assert.equal(e.code, status.UNAUTHENTICATED);
        assert.match(e.details, /system:serviceaccount:shop:intruder is not a trusted node agent account \(weft-system\/weft-agent\)/);
        return true;
      });
      await api.must('DELETE', '/api/v1/namespaces/shop/pods/web-2?gracePeriodSeconds=0');
    });

    it('follows the cluster across a restart of the API server: its watches come back and later changes are served', async () => {
      const state = new WorkloadState();
      const ads = await adsClient(state);
      clients.push(ads);
      ads.start();
      try {
        await ads.waitSynced();
        const before = await runningPod('web-before', '198.18.1.20');
        await until(() => state.workload(before), 'a pod created before the restart');
        await api.restartApiServer();
        const after = await runningPod('web-after', '198.18.1.21');
        await api.must('DELETE', '/api/v1/namespaces/shop/pods/web-before?gracePeriodSeconds=0');
        // the informers retry with capped backoff (up to 30 s) while the API server is away
        await until(() => state.workload(after) && !state.workload(before), 'the changes made after the restart', 60_000);
        // (while the API server starts its RBAC caches may refuse with 403 for a moment: retried)
        assert.equal(await ready(), 200);
      } finally {
        ads.stop();
      }
      await api.must('DELETE', '/api/v1/namespaces/shop/pods/web-after?gracePeriodSeconds=0');
    });

    it('keeps its root across a restart (reads the Secret, leaves the ConfigMap) and exits 0 on SIGTERM', async () => {
      const before = await root();
      const cm = await api.must('GET', `/api/v1/namespaces/${NS}/configmaps/weft-ca-root-cert`);
      assert.equal(await stopController(), 0, err);
      await startController();
      await until(async () => (await ready()) === 200, '/healthz/ready 200 after the restart', 20_000);
      assert.equal(await root(), before);
      assert.equal((await api.must('GET', `/api/v1/namespaces/${NS}/configmaps/weft-ca-root-cert`)).metadata.resourceVersion, cm.metadata.resourceVersion);
      assert.equal(await stopController(), 0, err);
    });

    it('publishes a new root in the ConfigMap (update, within its Role) when the CA Secret was replaced', async () => {
      const old = await root();
      await api.must('DELETE', `/api/v1/namespaces/${NS}/secrets/weft-ca`);
      await startController();
      await until(async () => (await ready()) === 200, '/healthz/ready 200 with a new CA', 20_000);
      const now = await root();
      assert.notEqual(now, old);
      assert.equal(Buffer.from((await api.must('GET', `/api/v1/namespaces/${NS}/secrets/weft-ca`)).data['ca-cert.pem'], 'base64').toString(), now);
      assert.match(err, /updated the published root certificate/);
      assert.doesNotMatch(err, /forbidden|"status":403/i);
      assert.equal(await stopController(), 0, err);
    });
  });
});
