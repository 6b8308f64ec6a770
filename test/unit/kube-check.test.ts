// `weft check --kube` against the Kubernetes API double, through the real client and the CLI.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { main } from '../../agent/src/cli/main.js';
import { NODE_CHECKS_ANNOTATION } from '../../agent/src/deploy/objects.js';
import { loadKubeConfig, WEFT_CRDS } from '../../agent/src/deploy/kube-check.js';
import { nodeChecksAnnotation, publishNodeChecks } from '../../agent/src/deploy/node-checks-annotation.js';
import { kubeConnectionFromConfig } from '../../agent/src/common/kube-api.js';
import { checkBpfFeatures, checkKernel, type CheckResult } from '../../agent/src/preflight/node-checks.js';
import { KubeApiDouble, crd, daemonset, deployment, node, pod } from '../helpers/kube-api-double.js';

const NS = 'weft-system';
const AGENT_LABELS = { 'app.kubernetes.io/name': 'weft-agent' };

// What an agent publishes: the node preflight's own results, serialized as the agent does.
// (BTF as an agent on a BTF kernel reports it; this machine's own BTF must not matter here.)
const btfOk: CheckResult = { name: 'btf', ok: true, required: true, detail: '/sys/kernel/btf/vmlinux present' };
const allProbes = { probeProgType: () => true, probeHelper: () => true };
const report = (checks: CheckResult[]): string => nodeChecksAnnotation(checks, '0.1.0');
const healthyReport = () => report([checkKernel('6.8.0-45-generic'), btfOk, ...checkBpfFeatures(allProbes)]);

async function run(api: KubeApiDouble, ...extra: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['check', '--kube', '--kubeconfig', api.kubeconfigFile(), ...extra], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}
const line = (out: string, name: string) => out.split('\n').find((l) => new RegExp(`^(ok  |FAIL|warn)  ${name}\\s`).test(l));

describe('weft check --kube', () => {
  const api = new KubeApiDouble();
  before(() => api.start());
  after(() => api.stop());

  // A healthy two-node cluster with a Windows node the agent does not select.
  beforeEach(() => {
    for (const t of [api.nodes, api.crds, api.deployments, api.daemonsets, api.pods]) t.clear();
    api.failures.clear();
    api.hang.clear();
    api.gitVersion = 'v1.31.2';
    for (const name of WEFT_CRDS) api.put(api.crds, crd(name));
    api.put(api.deployments, deployment(NS, 'weft-controller', 1, 1));
    api.put(api.daemonsets, daemonset(NS, 'weft-agent', { 'kubernetes.io/os': 'linux' }, 2, 2));
    for (const n of ['node-a', 'node-b']) {
      api.put(api.nodes, node(n, { annotations: { [NODE_CHECKS_ANNOTATION]: healthyReport() } }));
      api.put(api.pods, pod(NS, `weft-agent-${n}`, n, AGENT_LABELS, true));
    }
    api.put(api.nodes, node('win-1', { labels: { 'kubernetes.io/os': 'windows' } }));
  });

  it('passes on a healthy cluster, one line per check, exit 0', async () => {
    const r = await run(api);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(line(r.out, 'kubernetes')!, /^ok .*v1\.31\.2/);
    for (const name of WEFT_CRDS) assert.match(line(r.out, `crd ${name}`)!, /^ok .*established/);
    assert.match(line(r.out, 'controller')!, /^ok .*1\/1 replicas ready/);
    assert.match(line(r.out, 'node node-a')!, /^ok .*weft-agent-node-a ready \(kernel 6\.8\.0-45-generic\)/);
    assert.match(line(r.out, 'node node-b checks')!, /^ok .*kernel checks pass/);
    assert.match(line(r.out, 'node win-1')!, /^warn|^ok .*not selected/);
    assert.match(r.out, /Weft is installed and ready on every node\./);
    assert.doesNotMatch(r.out, /FAIL/);
    // It found the agents by label, in Weft's namespace only.
    const podList = api.requests.find((q) => q.path === `/api/v1/namespaces/${NS}/pods`);
    assert.ok(podList && decodeURIComponent(podList.query).includes('labelSelector=app.kubernetes.io/name=weft-agent'), JSON.stringify(api.requests));
  });

  it('JSON output carries the same checks and the verdict', async () => {
    const r = await run(api, '-o', 'json');
    const doc = JSON.parse(r.out) as { ok: boolean; checks: CheckResult[] };
    assert.equal(doc.ok, true);
    assert.ok(doc.checks.some((c) => c.name === 'node node-a' && c.ok));
    api.crds.delete(WEFT_CRDS[1]!);
    const bad = JSON.parse((await run(api, '-o', 'json')).out) as { ok: boolean; checks: CheckResult[] };
    assert.equal(bad.ok, false);
  });

  it('fails on a missing CRD and on one that is not established, with a hint', async () => {
    api.crds.delete(WEFT_CRDS[0]!);
    api.put(api.crds, crd(WEFT_CRDS[1]!, { established: false }));
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, `crd ${WEFT_CRDS[0]}`)!, /^FAIL .*missing/);
    assert.match(line(r.out, `crd ${WEFT_CRDS[1]}`)!, /^FAIL .*not established/);
    assert.match(r.out, /hint: install the CRDs/);
    assert.match(r.out, /Weft is not ready on this cluster/);
  });

  it('fails when the controller is not ready, or not installed', async () => {
    api.put(api.deployments, deployment(NS, 'weft-controller', 1, 0));
    let r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'controller')!, /^FAIL .*0\/1 replicas ready/);
    assert.match(r.out, /hint: kubectl -n weft-system describe deployment weft-controller/);
    api.deployments.clear();
    r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'controller')!, /^FAIL .*no Deployment weft-system\/weft-controller/);
  });

  it('fails for a node without an agent and for a node whose agent is not ready', async () => {
    api.pods.delete(`${NS}/weft-agent-node-b`);
    api.put(api.nodes, node('node-c'));
    api.put(api.pods, pod(NS, 'weft-agent-node-c', 'node-c', AGENT_LABELS, false));
    // An unrelated ready pod on node-b must not count as its agent.
    api.put(api.pods, pod(NS, 'something-else', 'node-b', { 'app.kubernetes.io/name': 'other' }, true));
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'node node-a')!, /^ok /);
    assert.match(line(r.out, 'node node-b')!, /^FAIL .*no agent pod/);
    assert.match(line(r.out, 'node node-c')!, /^FAIL .*weft-agent-node-c Running, not ready/);
    assert.match(r.out, /hint: kubectl -n weft-system logs weft-agent-node-c/);
  });

  it('fails for a node whose kernel lacks a feature, as its agent reported it', async () => {
    const noSkAssign = { probeProgType: () => true, probeHelper: (_t: string, h: string) => h !== 'sk_assign' };
    api.put(api.nodes, node('node-b', { kernel: '5.10.0', annotations: { [NODE_CHECKS_ANNOTATION]: report([checkKernel('5.10.0'), btfOk, ...checkBpfFeatures(noSkAssign)]) } }));
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'node node-b kernel')!, /^FAIL .*5\.10\.0 \(need >= 5\.15\)/);
    assert.match(line(r.out, 'node node-b helpers sched_cls')!, /^FAIL .*not accepted: sk_assign/);
    assert.match(r.out, /hint: bpf_sk_assign is missing/);
    assert.match(line(r.out, 'node node-a checks')!, /^ok /);
  });

  it('fails when an agent has not published its checks, or published garbage', async () => {
    api.put(api.nodes, node('node-a'));
    api.put(api.nodes, node('node-b', { annotations: { [NODE_CHECKS_ANNOTATION]: '{"checks": 3}' } }));
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'node node-a checks')!, /^FAIL .*has not published weft\.io\/node-checks/);
    assert.match(line(r.out, 'node node-b checks')!, /^FAIL .*unreadable/);
  });

  it('what an agent publishes with publishNodeChecks is what weft check --kube reports', async () => {
    api.put(api.nodes, node('node-b', { labels: { team: 'x' }, annotations: { other: 'kept' } }));
    const kc = kubeConnectionFromConfig(await loadKubeConfig(api.kubeconfigFile()));
    await publishNodeChecks(kc, 'node-b', [checkKernel('5.4.0'), btfOk], '0.1.0');
    const patched = api.nodes.get('node-b')!;
    assert.equal(patched.metadata.annotations!.other, 'kept', 'other annotations are untouched');
    assert.equal(patched.metadata.labels!.team, 'x', 'labels are untouched');
    const payload = JSON.parse(patched.metadata.annotations![NODE_CHECKS_ANNOTATION]!) as { ok: boolean; version: string; checks: CheckResult[] };
    assert.equal(payload.ok, false);
    assert.equal(payload.version, '0.1.0');
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'node node-b kernel')!, /^FAIL .*5\.4\.0/);
    // Publishing again replaces the value: the node is healthy now.
    await publishNodeChecks(kc, 'node-b', [checkKernel('6.1.0'), btfOk], '0.1.0');
    assert.equal((await run(api)).code, 0);
    await assert.rejects(publishNodeChecks(kc, 'no-such-node', [], '0.1.0'), (e: Error & { code?: string }) => e.code === 'WEFT_E_NODE_CHECKS_PUBLISH' && /no-such-node: HTTP 404/.test(e.message));
  });

  it('fails on a server older than the minimum', async () => {
    api.gitVersion = 'v1.24.17';
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'kubernetes')!, /^FAIL .*v1\.24\.17 \(need >= 1\.27\)/);
  });

  it('reports RBAC refusals as failures instead of crashing', async () => {
    api.failures.set('/api/v1/nodes', 403);
    const r = await run(api);
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'nodes')!, /^FAIL .*HTTP 403/);
  });

  it('a request that never answers fails its check after --timeout instead of hanging', async () => {
    api.hang.add('/api/v1/nodes');
    const started = Date.now();
    const r = await run(api, '--timeout', '0.3');
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'nodes')!, /^FAIL .*list nodes: no answer within 300 ms/);
    assert.ok(Date.now() - started < 5000);
    api.hang.add('/version');
    let err = '';
    const code = await main(['check', '--kube', '--kubeconfig', api.kubeconfigFile(), '--timeout', '0.3'], { out: () => {}, err: (t) => (err += t) });
    assert.equal(code, 1);
    assert.match(err, /GET \/version: no answer within 300 ms.*WEFT_E_KUBE_UNREACHABLE/);
  });

  it('looks in the namespace given with --namespace', async () => {
    const r = await run(api, '--namespace', 'mesh');
    assert.equal(r.code, 1);
    assert.match(line(r.out, 'controller')!, /no Deployment mesh\/weft-controller/);
  });

  it('an unreachable API server is one clear error, exit 1', async () => {
    const dead = new KubeApiDouble();
    await dead.start();
    const text = readFileSync(dead.kubeconfigFile(), 'utf8');
    const port = dead.port;
    await dead.stop();
    const file = join(mkdtempSync(join(tmpdir(), 'weft-kube-check-')), 'kubeconfig');
    writeFileSync(file, text);
    after(() => rmSync(dirname(file), { recursive: true, force: true }));
    let out = '';
    let err = '';
    const code = await main(['check', '--kube', '--kubeconfig', file], { out: (t) => (out += t), err: (t) => (err += t) });
    assert.equal(code, 1);
    assert.match(err, new RegExp(`cannot reach the Kubernetes API: http://127\\.0\\.0\\.1:${port}.*\\[WEFT_E_KUBE_UNREACHABLE\\]`));
    assert.equal(out, '');
  });

  it('a missing kubeconfig file and kube-only flags without --kube are errors', async () => {
    let err = '';
    const code = await main(['check', '--kube', '--kubeconfig', '/nonexistent/weft-kubeconfig'], { out: () => {}, err: (t) => (err += t) });
    assert.equal(code, 1);
    assert.match(err, /cannot load the kubeconfig \/nonexistent\/weft-kubeconfig/);
    err = '';
    assert.equal(await main(['check', '--kubeconfig', 'x'], { out: () => {}, err: (t) => (err += t) }), 2);
    assert.match(err, /need --kube/);
    err = '';
    assert.equal(await main(['check', '--kube', '--timeout=-1'], { out: () => {}, err: (t) => (err += t) }), 2);
    assert.match(err, /--timeout must be a positive number/);
  });
});
