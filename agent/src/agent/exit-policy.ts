// What a stopping agent does with its pods: keep the redirection pinned (a successor takes
// over: restart, upgrade, surge update) or release every pod so the node is left as it was
// before Weft (uninstall). Releasing while a successor runs would let pods' new connections
// out in plaintext, so anything uncertain (API unreachable, refused, slow) means keep.
import { existsSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeClient } from '../common/kube-client.js';

export type OnExit = 'release' | 'keep' | 'auto';
export const ON_EXIT_MODES: readonly OnExit[] = ['release', 'keep', 'auto'];

export interface ExitDecision {
  release: boolean;
  /** why, for the log */
  reason: string;
}

/** Where the agent's own DaemonSet lives (Kubernetes only). */
export interface DaemonSetRef {
  namespace: string;
  name: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The in-cluster KubeConfig when running in a Kubernetes pod (service host env and the
 * service-account token present), else undefined. `root` prefixes the token path (tests).
 */
export async function inClusterKubeConfig(env: NodeJS.ProcessEnv = process.env, root = ''): Promise<KubeConfig | undefined> {
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) return undefined;
  if (!existsSync(`${root}${SA_DIR}/token`)) return undefined;
  const { KubeConfig } = await kubeClient();
  const kc = new KubeConfig();
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  // loadFromCluster reads process.env; let a passed env win.
  process.env.KUBERNETES_SERVICE_HOST = env.KUBERNETES_SERVICE_HOST;
  process.env.KUBERNETES_SERVICE_PORT = env.KUBERNETES_SERVICE_PORT;
  try {
    kc.loadFromCluster(root);
  } finally {
    if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST; else process.env.KUBERNETES_SERVICE_HOST = saved.host;
    if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT; else process.env.KUBERNETES_SERVICE_PORT = saved.port;
  }
  return kc;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Watches the agent's DaemonSet while the agent runs, so that at SIGTERM the agent knows it saw
 * the DaemonSet deleted even when the API refuses the GET by then: `helm uninstall`,
 * `kubectl delete -f` and namespace deletion remove the agent's Role, RoleBinding or service
 * account before (or while) the agents are stopped. A watch keeps delivering events once
 * authorized; its end or refusal is retried every retryMs.
 */
export class DaemonSetWatch {
  /** what was seen (DELETED, or deletionTimestamp set) if the DaemonSet's deletion was observed */
  deletionSeen: string | undefined;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly kc: KubeConfig, private readonly ds: DaemonSetRef, private readonly retryMs = 5000) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    const where = `DaemonSet ${this.ds.namespace}/${this.ds.name}`;
    try {
      const { Watch } = await kubeClient();
      // a field selector on the name: the Role grants watch on this one DaemonSet only
      this.abort = await new Watch(this.kc).watch(`/apis/apps/v1/namespaces/${this.ds.namespace}/daemonsets`, { fieldSelector: `metadata.name=${this.ds.name}` }, (type, obj: { metadata?: { deletionTimestamp?: string | Date } }) => {
        if (type === 'DELETED') this.deletionSeen = `${where} was deleted`;
        else if (obj?.metadata?.deletionTimestamp) this.deletionSeen = `${where} is being deleted`;
        else if (type === 'ADDED' || type === 'MODIFIED') this.deletionSeen = undefined;
      }, () => this.retry());
      if (this.stopped) this.abort.abort();
    } catch {
      this.retry();
    }
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.start(), this.retryMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
  }
}

/**
 * Kubernetes: a successor exists while the agent's DaemonSet exists and is not being deleted.
 * Absent (404) or deletionTimestamp set → release. If the API cannot be asked (refused,
 * unreachable, slow), the DaemonSet's deletion seen earlier by DaemonSetWatch (deletionSeen)
 * → release; anything else → keep (fail closed).
 */
export async function decideFromDaemonSet(kc: KubeConfig, ds: DaemonSetRef, timeoutMs = 3000, deletionSeen?: string): Promise<ExitDecision> {
  const where = `DaemonSet ${ds.namespace}/${ds.name}`;
  try {
    const { AppsV1Api } = await kubeClient();
    const o = await withTimeout(kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name: ds.name, namespace: ds.namespace }), timeoutMs);
    if (o.metadata?.deletionTimestamp) return { release: true, reason: `${where} is being deleted (since ${new Date(o.metadata.deletionTimestamp).toISOString()}): no successor` };
    return { release: false, reason: `${where} exists: a successor agent takes the pods over` };
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) return { release: true, reason: `${where} is gone (uninstalled): no successor` };
    const why = code ? `HTTP ${code}${code === 403 ? ' (RBAC: the agent Role must allow get daemonsets weft-agent)' : ''}` : ((err as Error).message ?? String(err)).split('\n')[0];
    if (deletionSeen) return { release: true, reason: `${deletionSeen} (seen by the agent's watch; reading it now: ${why}): no successor` };
    return { release: false, reason: `cannot read ${where} (${why}); keeping the pods captured (fail closed)` };
  }
}

export interface ExitPolicyContext {
  mode: OnExit;
  /** in-cluster API access and the agent's DaemonSet, when running in Kubernetes */
  kube?: { kc: KubeConfig; daemonSet: DaemonSetRef | undefined; deletionSeen?: string | undefined } | undefined;
  timeoutMs?: number;
}

/** The decision at SIGTERM time (the DaemonSet is read then, not at start). */
export async function decideOnExit(ctx: ExitPolicyContext): Promise<ExitDecision> {
  if (ctx.mode === 'release') return { release: true, reason: '--on-exit release' };
  if (ctx.mode === 'keep') return { release: false, reason: '--on-exit keep' };
  if (!ctx.kube) return { release: false, reason: 'not running in Kubernetes (--on-exit auto): a successor is expected (restart), pods stay captured' };
  if (!ctx.kube.daemonSet) return { release: false, reason: 'WEFT_POD_NAMESPACE is not set, so the agent DaemonSet cannot be checked; keeping the pods captured' };
  return decideFromDaemonSet(ctx.kube.kc, ctx.kube.daemonSet, ctx.timeoutMs, ctx.kube.deletionSeen);
}
