// `weft check --kube`: is Weft installed and healthy on this cluster? Reads the API only (no
// port access to nodes): server version, the CRDs, the controller Deployment, the agent
// DaemonSet, a ready agent pod on every node it should run on, and each node's kernel checks
// as its agent published them in the node annotation weft.io/node-checks.
//
// The annotation (written by the agent at start and when a result changes) is JSON:
//   { "version": "0.1.0", "time": "<RFC 3339>", "ok": true,
//     "checks": [ { "name": "kernel", "ok": true, "required": true, "detail": "…", "hint": "…" }, … ] }
// where checks are exactly what `weft check -o json` prints on that node (CheckResult[]).
import type { KubeConfig, V1DaemonSet, V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import { kubeClient } from '../common/kube-client.js';
import { kubeErrorReason } from '../common/kube-api-error.js';
import type { CheckResult } from '../preflight/node-checks.js';
import { KubeUnreachableError } from './errors.js';
import { AGENT, CONTROLLER, NODE_CHECKS_ANNOTATION } from './objects.js';
import { DEFAULT_NAMESPACE } from './render.js';

export const MIN_KUBERNETES: [number, number] = [1, 27];
export const WEFT_CRDS = ['authorizationpolicies.security.weft.io', 'peerauthentications.security.weft.io'];

export interface NodeChecksReport { version?: string; time?: string; ok?: boolean; checks: CheckResult[] }

export interface KubeCheckOptions {
  kubeconfig?: string;
  /** namespace Weft was installed in */
  namespace?: string;
  /** a ready KubeConfig (tests); otherwise loaded from kubeconfig / $KUBECONFIG / in-cluster */
  kubeConfig?: KubeConfig;
  /** per API request; a server that does not answer fails the check instead of hanging it */
  timeoutMs?: number;
}

export const DEFAULT_KUBE_TIMEOUT_MS = 15_000;

class TimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function loadKubeConfig(path?: string): Promise<KubeConfig> {
  const { KubeConfig } = await kubeClient();
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new KubeUnreachableError(`cannot load the kubeconfig${path ? ` ${path}` : ''}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!kc.getCurrentCluster()) throw new KubeUnreachableError(`no current cluster in the kubeconfig${path ? ` ${path}` : ''}`);
  return kc;
}

const reason = (err: unknown): string => {
  if (err instanceof TimeoutError) return err.message;
  return kubeErrorReason(err);
};
const isNotFound = (err: unknown) => ((err as { code?: number }).code ?? (err as { statusCode?: number }).statusCode) === 404;

function parseVersion(git: string): [number, number] | null {
  const m = /^v?(\d+)\.(\d+)/.exec(git);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

const podReady = (p: V1Pod) => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Does a node match the DaemonSet's nodeSelector and tolerate... (we check nodeSelector only: tolerations default to all). */
function selectedBy(ds: V1DaemonSet | undefined, node: V1Node): boolean {
  const sel = ds?.spec?.template.spec?.nodeSelector ?? {};
  const labels = node.metadata?.labels ?? {};
  return Object.entries(sel).every(([k, v]) => labels[k] === v);
}

export function parseNodeChecks(text: string | undefined): NodeChecksReport | Error | undefined {
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as NodeChecksReport;
    if (!Array.isArray(r.checks) || !r.checks.every((c) => typeof c?.name === 'string' && typeof c.ok === 'boolean')) {
      return new Error('no "checks" list of {name, ok, required, detail}');
    }
    return r;
  } catch (err) {
    return new Error(`not JSON: ${(err as Error).message}`);
  }
}

/** Runs every cluster check; never throws for an unhealthy cluster, only when the API is unreachable. */
export async function runKubeChecks(opts: KubeCheckOptions = {}): Promise<CheckResult[]> {
  const kc = opts.kubeConfig ?? (await loadKubeConfig(opts.kubeconfig));
  const { ApiextensionsV1Api, AppsV1Api, CoreV1Api, VersionApi } = await kubeClient();
  const ns = opts.namespace ?? DEFAULT_NAMESPACE;
  const ms = opts.timeoutMs ?? DEFAULT_KUBE_TIMEOUT_MS;
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const results: CheckResult[] = [];

  // 1. The API server, and its version.
  let git: string;
  try {
    git = (await withTimeout(kc.makeApiClient(VersionApi).getCode(), ms, 'GET /version')).gitVersion;
  } catch (err) {
    throw new KubeUnreachableError(`${kc.getCurrentCluster()?.server ?? 'the API server'}: ${reason(err)}`);
  }
  const v = parseVersion(git);
  const vOk = v !== null && (v[0] > MIN_KUBERNETES[0] || (v[0] === MIN_KUBERNETES[0] && v[1] >= MIN_KUBERNETES[1]));
  results.push({
    name: 'kubernetes', ok: vOk, required: true, detail: `server ${git} (need >= ${MIN_KUBERNETES.join('.')})`,
    ...(vOk ? {} : { hint: `Weft needs Kubernetes ${MIN_KUBERNETES.join('.')}+ (bound service-account tokens with pod binding, CRD v1); upgrade the control plane` }),
  });

  // 2. The CRDs: present and established.
  for (const name of WEFT_CRDS) {
    let detail: string;
    let ok = false;
    try {
      const crd = await withTimeout(ext.readCustomResourceDefinition({ name }), ms, `GET crd ${name}`);
      const established = (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
      const served = (crd.spec.versions ?? []).some((x) => x.name === 'v1' && x.served);
      ok = established && served;
      detail = ok ? 'established, serves v1' : !served ? 'present but does not serve v1' : 'present but not established yet';
    } catch (err) {
      detail = isNotFound(err) ? 'missing' : `cannot read: ${reason(err)}`;
    }
    results.push({
      name: `crd ${name}`, ok, required: true, detail,
      ...(ok ? {} : { hint: 'install the CRDs: helm install (they are in the chart\'s crds/) or weft manifest | kubectl apply -f -' }),
    });
  }

  // 3. The controller.
  let dep: V1Deployment | undefined;
  try {
    dep = await withTimeout(apps.readNamespacedDeployment({ name: CONTROLLER, namespace: ns }), ms, 'GET deployment');
  } catch (err) {
    results.push({
      name: 'controller', ok: false, required: true,
      detail: isNotFound(err) ? `no Deployment ${ns}/${CONTROLLER}` : `cannot read Deployment ${ns}/${CONTROLLER}: ${reason(err)}`,
      hint: isNotFound(err) ? `install Weft (helm install weft deploy/helm/weft -n ${ns} --create-namespace), or pass --namespace` : 'check your RBAC: reading Deployments in that namespace',
    });
  }
  if (dep) {
    const want = dep.spec?.replicas ?? 1;
    const ready = dep.status?.readyReplicas ?? 0;
    const ok = ready >= 1;
    results.push({
      name: 'controller', ok, required: true, detail: `${ready}/${want} replicas ready (${ns}/${CONTROLLER})`,
      ...(ok ? {} : { hint: `kubectl -n ${ns} describe deployment ${CONTROLLER}; kubectl -n ${ns} logs deployment/${CONTROLLER}` }),
    });
  }

  // 4. The agents: the DaemonSet, then one ready agent pod per node it selects.
  let ds: V1DaemonSet | undefined;
  try {
    ds = await withTimeout(apps.readNamespacedDaemonSet({ name: AGENT, namespace: ns }), ms, 'GET daemonset');
    const s = ds.status;
    results.push({ name: 'agent daemonset', ok: true, required: true, detail: `${s?.numberReady ?? 0}/${s?.desiredNumberScheduled ?? 0} agents ready (${ns}/${AGENT})` });
  } catch (err) {
    results.push({
      name: 'agent daemonset', ok: false, required: true,
      detail: isNotFound(err) ? `no DaemonSet ${ns}/${AGENT}` : `cannot read DaemonSet ${ns}/${AGENT}: ${reason(err)}`,
      hint: `install Weft (helm install weft deploy/helm/weft -n ${ns} --create-namespace), or pass --namespace`,
    });
  }
  let nodes: V1Node[] = [];
  let pods: V1Pod[] = [];
  try {
    nodes = (await withTimeout(core.listNode(), ms, 'list nodes')).items;
    pods = (await withTimeout(core.listNamespacedPod({ namespace: ns, labelSelector: `app.kubernetes.io/name=${AGENT}` }), ms, 'list agent pods')).items;
  } catch (err) {
    results.push({ name: 'nodes', ok: false, required: true, detail: `cannot list nodes or agent pods: ${reason(err)}`, hint: 'check your RBAC: list nodes, list pods in the Weft namespace' });
    return results;
  }
  if (nodes.length === 0) results.push({ name: 'nodes', ok: false, required: true, detail: 'the cluster has no nodes', hint: 'add nodes to the cluster' });
  for (const node of [...nodes].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))) {
    const name = node.metadata?.name ?? '?';
    if (ds && !selectedBy(ds, node)) {
      results.push({ name: `node ${name}`, ok: true, required: false, detail: 'not selected by the agent DaemonSet\'s nodeSelector: its pods are outside the mesh' });
      continue;
    }
    const mine = pods.filter((p) => p.spec?.nodeName === name);
    const ready = mine.find(podReady);
    if (!ready) {
      const why = mine.length === 0 ? 'no agent pod' : `agent ${mine.map((p) => `${p.metadata?.name} ${p.status?.phase ?? 'Unknown'}${podReady(p) ? '' : ', not ready'}`).join('; ')}`;
      results.push({
        name: `node ${name}`, ok: false, required: true, detail: `${why}: enrolled pods on this node get no mesh`,
        hint: mine.length === 0
          ? `the DaemonSet did not schedule an agent there: kubectl -n ${ns} describe daemonset ${AGENT} (taints, nodeSelector, priority)`
          : `kubectl -n ${ns} logs ${mine[0]!.metadata?.name}; kubectl -n ${ns} describe pod ${mine[0]!.metadata?.name}`,
      });
      continue;
    }
    const kernel = node.status?.nodeInfo?.kernelVersion ?? '?';
    results.push({ name: `node ${name}`, ok: true, required: true, detail: `agent ${ready.metadata?.name} ready (kernel ${kernel})` });

    // 5. What the agent found about its node's kernel.
    const report = parseNodeChecks(node.metadata?.annotations?.[NODE_CHECKS_ANNOTATION]);
    if (report === undefined || report instanceof Error) {
      results.push({
        name: `node ${name} checks`, ok: false, required: true,
        detail: report === undefined ? `the agent has not published ${NODE_CHECKS_ANNOTATION}` : `${NODE_CHECKS_ANNOTATION} is unreadable: ${report.message}`,
        hint: 'the agent publishes its node checks at start; an agent older than this CLI does not: upgrade it',
      });
      continue;
    }
    const failed = report.checks.filter((c) => !c.ok);
    if (failed.length === 0) {
      results.push({ name: `node ${name} checks`, ok: true, required: true, detail: `${report.checks.length} kernel checks pass (${report.checks.map((c) => c.name).slice(0, 4).join(', ')}${report.checks.length > 4 ? ', …' : ''})` });
    }
    for (const c of failed) {
      results.push({ name: `node ${name} ${c.name}`, ok: false, required: c.required !== false, detail: c.detail, ...(c.hint ? { hint: c.hint } : {}) });
    }
  }
  return results;
}
