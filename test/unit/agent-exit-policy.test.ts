// What a stopping agent does with its pods (uninstall vs restart), decided against the
// Kubernetes API double through the real client, with only what the rendered RBAC allows.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../agent/src/deploy/kube-check.js';
import { decideFromDaemonSet, decideOnExit } from '../../agent/src/agent/exit-policy.js';
import { inClusterConnection, kubeConnectionFromConfig, type KubeConnection } from '../../agent/src/common/kube-api.js';
import { agentOptionsFromFlags } from '../../agent/src/agent/options.js';
import { renderManifest } from '../../agent/src/deploy/render.js';
import { KubeApiDouble, daemonset } from '../helpers/kube-api-double.js';
import { resourceAttributes } from './controller-kube-api-double.js';

const NS = 'mesh';
const DS = { namespace: NS, name: 'weft-agent' };
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

/** The rules the rendered install gives the agent's service account in namespace NS. */
function agentRules(): { cluster: Rule[]; namespaced: Rule[] } {
  const objs = parseAllDocuments(renderManifest({ namespace: NS })).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[] }).filter(Boolean);
  const find = (kind: string) => objs.find((o) => o.kind === kind && o.metadata.name === 'weft-agent')?.rules ?? [];
  return { cluster: find('ClusterRole'), namespaced: find('Role') };
}

function allowed(rules: Rule[], a: { verb: string; group: string; resource: string; name?: string }): boolean {
  return rules.some((r) => r.apiGroups.includes(a.group) && r.resources.includes(a.resource) && r.verbs.includes(a.verb) && (!r.resourceNames || (a.name !== undefined && r.resourceNames.includes(a.name))));
}

describe('agent exit policy: release the pods only when no successor will come', () => {
  const api = new KubeApiDouble();
  let kc: KubeConnection;
  before(async () => {
    await api.start();
    kc = kubeConnectionFromConfig(await loadKubeConfig(api.kubeconfigFile()));
  });
  after(() => api.stop());
  beforeEach(() => {
    api.daemonsets.clear();
    api.failures.clear();
    api.hang.clear();
    api.requests.length = 0;
  });

  it('DaemonSet present → keep (restart, upgrade, surge update)', async () => {
    api.put(api.daemonsets, daemonset(NS, 'weft-agent', {}, 3, 3));
    const d = await decideFromDaemonSet(kc, DS);
    assert.equal(d.release, false);
    assert.match(d.reason, /DaemonSet mesh\/weft-agent exists/);
  });

  it('DaemonSet being deleted (deletionTimestamp set, foreground deletion) → release', async () => {
    const o = daemonset(NS, 'weft-agent', {}, 3, 3);
    o.metadata.deletionTimestamp = '2026-11-25T23:00:00Z';
    api.put(api.daemonsets, o);
    const d = await decideFromDaemonSet(kc, DS);
    assert.equal(d.release, true);
    assert.match(d.reason, /being deleted/);
  });

  it('DaemonSet absent (helm uninstall, background deletion) → release; another namespace\'s weft-agent does not count', async () => {
    api.put(api.daemonsets, daemonset('other', 'weft-agent', {}, 3, 3));
    const d = await decideFromDaemonSet(kc, DS);
    assert.equal(d.release, true);
    assert.match(d.reason, /gone/);
  });

  it('API unreachable, refusing or hanging → keep (fail closed) and say why', async () => {
    api.failures.set('/apis/apps/v1/namespaces/mesh/daemonsets/weft-agent', 403);
    let d = await decideFromDaemonSet(kc, DS);
    assert.equal(d.release, false);
    assert.match(d.reason, /HTTP 403 \(RBAC/);
    api.failures.set('/apis/apps/v1/namespaces/mesh/daemonsets/weft-agent', 500);
    d = await decideFromDaemonSet(kc, DS);
    assert.deepEqual([d.release, /HTTP 500/.test(d.reason), /fail closed/.test(d.reason)], [false, true, true]);
    api.failures.clear();
    api.hang.add('/apis/apps/v1/namespaces/mesh/daemonsets/weft-agent');
    const t0 = Date.now();
    d = await decideFromDaemonSet(kc, DS, 300);
    assert.equal(d.release, false);
    assert.match(d.reason, /no answer within 300 ms/);
    assert.ok(Date.now() - t0 < 2000);
    const gone = new KubeConfig();
    gone.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }], users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
    });
    d = await decideFromDaemonSet(kubeConnectionFromConfig(gone), DS);
    assert.equal(d.release, false);
    assert.match(d.reason, /cannot read DaemonSet mesh\/weft-agent .*fail closed/);
  });

  it('API refusing at SIGTERM, but the agent\'s watch saw the DaemonSet deleted (uninstall removed its RBAC first) → release', async () => {
    api.failures.set('/apis/apps/v1/namespaces/mesh/daemonsets/weft-agent', 403);
    const d = await decideFromDaemonSet(kc, DS, 3000, 'DaemonSet mesh/weft-agent was deleted');
    assert.equal(d.release, true);
    assert.match(d.reason, /was deleted \(seen by the agent's watch; reading it now: HTTP 403/);
    const ctx = await decideOnExit({ mode: 'auto', kube: { conn: kc, daemonSet: DS, deletionSeen: 'DaemonSet mesh/weft-agent is being deleted' } });
    assert.equal(ctx.release, true);
    // what the API answers wins over what was seen: a DaemonSet there again means a successor
    api.failures.clear();
    api.put(api.daemonsets, daemonset(NS, 'weft-agent', {}, 1, 1));
    assert.equal((await decideFromDaemonSet(kc, DS, 3000, 'DaemonSet mesh/weft-agent was deleted')).release, false);
    // the watch (field selector on the name) is what the Role grants, and only for that name
    const rules = agentRules();
    assert.equal(allowed(rules.namespaced, { verb: 'watch', group: 'apps', resource: 'daemonsets', name: 'weft-agent' }), true);
    assert.equal(allowed(rules.namespaced, { verb: 'watch', group: 'apps', resource: 'daemonsets' }), false);
  });

  it('asks only what the rendered Role/ClusterRole of weft-agent allow', async () => {
    api.put(api.daemonsets, daemonset(NS, 'weft-agent', {}, 1, 1));
    await decideFromDaemonSet(kc, DS);
    const rules = agentRules();
    assert.ok(api.requests.length > 0);
    for (const r of api.requests) {
      const a = resourceAttributes(r.method, r.path, false);
      assert.ok(a, r.path);
      const ok = a.namespace === NS ? allowed([...rules.namespaced, ...rules.cluster], a) : allowed(rules.cluster, a);
      assert.ok(ok, `${r.method} ${r.path} is not allowed by the rendered RBAC`);
    }
    // and nothing broader than that one DaemonSet
    assert.equal(allowed(rules.namespaced, { verb: 'get', group: 'apps', resource: 'daemonsets', name: 'weft-controller' }), false);
    assert.equal(allowed(rules.namespaced, { verb: 'list', group: 'apps', resource: 'daemonsets' }), false);
  });

  it('modes: release and keep are unconditional; auto outside Kubernetes keeps (the lab starts the successor first)', async () => {
    assert.equal((await decideOnExit({ mode: 'release' })).release, true);
    api.put(api.daemonsets, daemonset(NS, 'weft-agent', {}, 1, 1));
    assert.equal((await decideOnExit({ mode: 'release', kube: { conn: kc, daemonSet: DS } })).release, true);
    assert.equal((await decideOnExit({ mode: 'keep', kube: { conn: kc, daemonSet: DS } })).release, false);
    const outside = await decideOnExit({ mode: 'auto' });
    assert.equal(outside.release, false);
    assert.match(outside.reason, /not running in Kubernetes/);
    assert.equal((await decideOnExit({ mode: 'auto', kube: { conn: kc, daemonSet: DS } })).release, false);
    api.daemonsets.clear();
    assert.equal((await decideOnExit({ mode: 'auto', kube: { conn: kc, daemonSet: DS } })).release, true);
    const noNs = await decideOnExit({ mode: 'auto', kube: { conn: kc, daemonSet: undefined } });
    assert.deepEqual([noNs.release, /WEFT_POD_NAMESPACE/.test(noNs.reason)], [false, true]);
  });

  it('--on-exit defaults to auto and refuses anything else with a usage error', () => {
    const base = { node: 'n1', controller: 'c:15012', 'token-file': '/t', 'ca-root': '/c' };
    assert.equal(agentOptionsFromFlags(base).onExit, 'auto');
    assert.equal(agentOptionsFromFlags({ ...base, 'on-exit': 'release' }).onExit, 'release');
    assert.equal(agentOptionsFromFlags(base).readyFile, undefined);
    assert.equal(agentOptionsFromFlags({ ...base, 'ready-file': 'run/a.ready' }).readyFile, join(process.cwd(), 'run/a.ready'));
    assert.throws(() => agentOptionsFromFlags({ ...base, 'on-exit': 'purge' }), (e: Error & { code?: string }) => e.code === 'WEFT_E_USAGE' && /--on-exit must be one of release, keep, auto/.test(e.message));
  });

  it('in-cluster connection only inside a pod (service env and service-account token); IPv6 hosts in brackets', async () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-incluster-'));
    try {
      const env = { KUBERNETES_SERVICE_HOST: '198.18.0.1', KUBERNETES_SERVICE_PORT: '443' };
      assert.equal(inClusterConnection({}, root), undefined);
      assert.equal(inClusterConnection(env, root), undefined, 'no token: not in a pod');
      const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      writeFileSync(join(sa, 'token'), 'tok');
      let got = inClusterConnection(env, root);
      assert.deepEqual(got, { server: 'https://198.18.0.1:443', tokenFile: join(sa, 'token') });
      writeFileSync(join(sa, 'ca.crt'), 'CA PEM');
      writeFileSync(join(sa, 'namespace'), 'mesh\n');
      got = inClusterConnection({ KUBERNETES_SERVICE_HOST: 'fd00:198:18::1', KUBERNETES_SERVICE_PORT: '6443' }, root);
      assert.deepEqual(got, { server: 'https://[fd00:198:18::1]:6443', tokenFile: join(sa, 'token'), caPem: 'CA PEM', namespace: 'mesh' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
