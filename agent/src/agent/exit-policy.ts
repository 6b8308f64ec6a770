// What a stopping agent does with its pods: keep the redirection pinned (a successor takes
// over: restart, upgrade, surge update) or release every pod so the node is left as it was
// before Weft (uninstall). Releasing while a successor runs would let pods' new connections
// out in plaintext, so anything uncertain (API unreachable, refused, slow) means keep.
import { KubeWatch, kubeGet, type KubeConnection, type KubeObjectMeta } from '../common/kube-api.js';
import { kubeErrorReason, kubeStatusCode } from '../common/kube-api-error.js';
import { logger } from '../common/log.js';

const log = logger('agent');

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

const daemonSetsPath = (ns: string) => `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/daemonsets`;

/**
 * Watches the agent's DaemonSet while the agent runs, so that at SIGTERM the agent knows it saw
 * the DaemonSet deleted even when the API refuses the GET by then: `helm uninstall`,
 * `kubectl delete -f` and namespace deletion remove the agent's Role, RoleBinding or service
 * account before (or while) the agents are stopped. A watch keeps delivering events once
 * authorized; its end or refusal is retried with backoff, and a 410 Gone lists again (a list
 * that no longer has the DaemonSet it had shown counts as its deletion).
 */
export class DaemonSetWatch {
  /** what was seen (DELETED, or deletionTimestamp set) if the DaemonSet's deletion was observed */
  deletionSeen: string | undefined;
  /** how many times the DaemonSet was seen (in a list or an event) */
  observations = 0;
  private watch: KubeWatch<KubeObjectMeta> | undefined;
  private seen = false;
  private failing = false;

  constructor(private readonly conn: KubeConnection, private readonly ds: DaemonSetRef, private readonly backoff = { initialMs: 1000, maxMs: 30_000 }) {}

  start(): void {
    if (this.watch) return;
    const where = `DaemonSet ${this.ds.namespace}/${this.ds.name}`;
    const observe = (type: string, o: KubeObjectMeta) => {
      this.seen = true;
      this.failing = false;
      this.observations++;
      if (type === 'DELETED') this.deletionSeen = `${where} was deleted`;
      else if (o?.metadata?.deletionTimestamp) this.deletionSeen = `${where} is being deleted`;
      else this.deletionSeen = undefined;
    };
    // a field selector on the name: the Role grants list and watch on this one DaemonSet only
    this.watch = new KubeWatch<KubeObjectMeta>(this.conn, {
      path: daemonSetsPath(this.ds.namespace),
      name: this.ds.name,
      backoff: this.backoff,
      onList: (items) => {
        this.failing = false;
        const o = items.find((i) => i.metadata?.name === this.ds.name);
        if (o) observe('ADDED', o);
        else if (this.seen) this.deletionSeen = `${where} was deleted`;
      },
      onEvent: observe,
      onError: (err) => {
        if (kubeStatusCode(err) === 410) return; // routine: listed again at once
        if (!this.failing) log.warn({ err: kubeErrorReason(err) }, `watching ${where} failed (retrying)`);
        this.failing = true;
      },
    });
    this.watch.start();
  }

  stop(): void {
    this.watch?.stop();
  }
}

/**
 * Kubernetes: a successor exists while the agent's DaemonSet exists and is not being deleted.
 * Absent (404) or deletionTimestamp set → release. If the API cannot be asked (refused,
 * unreachable, slow), the DaemonSet's deletion seen earlier by DaemonSetWatch (deletionSeen)
 * → release; anything else → keep (fail closed).
 */
export async function decideFromDaemonSet(conn: KubeConnection, ds: DaemonSetRef, timeoutMs = 3000, deletionSeen?: string): Promise<ExitDecision> {
  const where = `DaemonSet ${ds.namespace}/${ds.name}`;
  try {
    const o = await kubeGet<KubeObjectMeta>(conn, `${daemonSetsPath(ds.namespace)}/${encodeURIComponent(ds.name)}`, { timeoutMs });
    if (o.metadata?.deletionTimestamp) return { release: true, reason: `${where} is being deleted (since ${new Date(o.metadata.deletionTimestamp).toISOString()}): no successor` };
    return { release: false, reason: `${where} exists: a successor agent takes the pods over` };
  } catch (err) {
    const code = kubeStatusCode(err);
    if (code === 404) return { release: true, reason: `${where} is gone (uninstalled): no successor` };
    const why = code ? `HTTP ${code}${code === 403 ? ' (RBAC: the agent Role must allow get daemonsets weft-agent)' : ''}` : ((err as Error).message ?? String(err)).split('\n')[0];
    if (deletionSeen) return { release: true, reason: `${deletionSeen} (seen by the agent's watch; reading it now: ${why}): no successor` };
    return { release: false, reason: `cannot read ${where} (${why}); keeping the pods captured (fail closed)` };
  }
}

export interface ExitPolicyContext {
  mode: OnExit;
  /** in-cluster API access and the agent's DaemonSet, when running in Kubernetes */
  kube?: { conn: KubeConnection; daemonSet: DaemonSetRef | undefined; deletionSeen?: string | undefined } | undefined;
  timeoutMs?: number;
}

/** The decision at SIGTERM time (the DaemonSet is read then, not at start). */
export async function decideOnExit(ctx: ExitPolicyContext): Promise<ExitDecision> {
  if (ctx.mode === 'release') return { release: true, reason: '--on-exit release' };
  if (ctx.mode === 'keep') return { release: false, reason: '--on-exit keep' };
  if (!ctx.kube) return { release: false, reason: 'not running in Kubernetes (--on-exit auto): a successor is expected (restart), pods stay captured' };
  if (!ctx.kube.daemonSet) return { release: false, reason: 'WEFT_POD_NAMESPACE is not set, so the agent DaemonSet cannot be checked; keeping the pods captured' };
  return decideFromDaemonSet(ctx.kube.conn, ctx.kube.daemonSet, ctx.timeoutMs, ctx.kube.deletionSeen);
}
