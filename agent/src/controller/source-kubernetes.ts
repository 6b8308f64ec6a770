// Cluster state from the Kubernetes API: one @kubernetes/client-node ListWatch informer per
// kind (Namespaces, Pods, Services, ServiceAccounts and the security.weft.io/v1 policy CRDs).
// The informer lists, then watches from the list's resourceVersion; we ask for bookmarks (so
// quiet watches keep a fresh resourceVersion), it relists after 410 Gone, and when a list or
// watch fails we restart it with capped exponential backoff. Snapshots are emitted once every
// kind has been listed, then after each change (debounced).
import { CoreV1Api, CustomObjectsApi, KubeConfig, ListWatch, Watch, type KubernetesObject, type KubernetesListObject } from '@kubernetes/client-node';
import { kubeErrorReason, kubeStatusCode } from '../common/kube-api-error.js';
import { logger } from '../common/log.js';
import { backoffDelay, type Backoff } from '../xds/client.js';
import type { ClusterSnapshot, ClusterSource, KubeObject, Sourced, WatchedKind } from './objects.js';

export const POLICY_GROUP = 'security.weft.io';
export const POLICY_VERSION = 'v1';

interface KindSpec {
  kind: WatchedKind;
  apiVersion: string;
  path: string;
  list: () => Promise<KubernetesListObject<KubernetesObject>>;
}

/** Wraps Watch so every watch request asks for bookmarks. */
class BookmarkingWatch extends Watch {
  override watch(path: string, queryParams: Record<string, unknown>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

export interface KubernetesSourceOptions {
  debounceMs?: number;
  backoff?: Backoff;
  /** how long start() waits for the first complete list before returning anyway */
  initialSyncTimeoutMs?: number;
}

export class KubernetesSource implements ClusterSource {
  private readonly log = logger('source-kubernetes');
  private readonly informers = new Map<WatchedKind, ListWatch<KubernetesObject>>();
  private readonly listed = new Set<WatchedKind>();
  private readonly attempts = new Map<WatchedKind, number>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private timer: NodeJS.Timeout | undefined;
  private onSnapshot: ((s: ClusterSnapshot) => void) | undefined;
  private stopped = false;
  private readonly backoff: Backoff;
  private specs: KindSpec[] = [];
  /** list requests made per kind (for diagnostics and tests) */
  readonly lists = new Map<WatchedKind, number>();

  constructor(private readonly kc: KubeConfig, private readonly opts: KubernetesSourceOptions = {}) {
    this.backoff = opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  static fromDefaultConfig(opts?: KubernetesSourceOptions): KubernetesSource {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return new KubernetesSource(kc, opts);
  }

  private kinds(): KindSpec[] {
    const core = this.kc.makeApiClient(CoreV1Api);
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    const crd = (plural: string) => () => custom.listClusterCustomObject({ group: POLICY_GROUP, version: POLICY_VERSION, plural }) as Promise<KubernetesListObject<KubernetesObject>>;
    return [
      { kind: 'Namespace', apiVersion: 'v1', path: '/api/v1/namespaces', list: () => core.listNamespace() },
      { kind: 'Pod', apiVersion: 'v1', path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() },
      { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() },
      { kind: 'ServiceAccount', apiVersion: 'v1', path: '/api/v1/serviceaccounts', list: () => core.listServiceAccountForAllNamespaces() },
      { kind: 'AuthorizationPolicy', apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, path: `/apis/${POLICY_GROUP}/${POLICY_VERSION}/authorizationpolicies`, list: crd('authorizationpolicies') },
      { kind: 'PeerAuthentication', apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, path: `/apis/${POLICY_GROUP}/${POLICY_VERSION}/peerauthentications`, list: crd('peerauthentications') },
    ];
  }

  async start(onSnapshot: (s: ClusterSnapshot) => void): Promise<void> {
    this.onSnapshot = onSnapshot;
    this.stopped = false;
    const watch = new BookmarkingWatch(this.kc);
    const specs = (this.specs = this.kinds());
    for (const spec of specs) {
      const list = async () => {
        this.lists.set(spec.kind, (this.lists.get(spec.kind) ?? 0) + 1);
        let l: KubernetesListObject<KubernetesObject>;
        try {
          l = await spec.list();
        } catch (err) {
          const code = (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
          if (code !== 404 || !spec.apiVersion.startsWith(POLICY_GROUP)) throw err;
          // The CRD is not installed: serve everything else, and keep retrying with backoff.
          if (!this.listed.has(spec.kind)) this.log.warn({ kind: spec.kind }, `the ${spec.kind} CRD is not installed (kubectl apply -f deploy/crds/); serving without ${spec.kind} objects`);
          this.listed.add(spec.kind);
          this.schedule();
          throw err;
        }
        this.attempts.set(spec.kind, 0);
        this.listed.add(spec.kind);
        this.log.debug({ kind: spec.kind, items: l.items.length, resourceVersion: l.metadata?.resourceVersion }, 'listed');
        this.schedule();
        return l;
      };
      const inf = new ListWatch<KubernetesObject>(spec.path, watch, list, false);
      inf.on('add', () => this.schedule());
      inf.on('update', () => this.schedule());
      inf.on('delete', () => this.schedule());
      inf.on('error', (err: unknown) => this.retry(spec.kind, inf, err));
      this.informers.set(spec.kind, inf);
    }
    await Promise.all([...this.informers.values()].map((i) => i.start().catch((err) => this.log.warn({ err }, 'informer start failed'))));
    const deadline = Date.now() + (this.opts.initialSyncTimeoutMs ?? 30_000);
    while (this.listed.size < specs.length && Date.now() < deadline && !this.stopped) await new Promise((r) => setTimeout(r, 20));
    if (this.listed.size < specs.length) {
      this.log.warn({ missing: specs.map((s) => s.kind).filter((k) => !this.listed.has(k)) }, 'Kubernetes API not fully listed yet; serving once it is');
    }
  }

  pending(): string[] {
    return this.specs.map((s) => s.kind).filter((k) => !this.listed.has(k));
  }

  private retry(kind: WatchedKind, inf: ListWatch<KubernetesObject>, err: unknown): void {
    if (this.stopped) return;
    const attempt = this.attempts.get(kind) ?? 0;
    this.attempts.set(kind, attempt + 1);
    const delay = backoffDelay(attempt, this.backoff);
    this.log.warn({ kind, status: kubeStatusCode(err), reason: kubeErrorReason(err), retryInMs: delay }, 'list/watch failed; retrying');
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      if (!this.stopped) void inf.start().catch(() => {});
    }, delay);
    this.retryTimers.add(t);
  }

  private schedule(): void {
    if (this.listed.size < this.informers.size) return; // wait for every kind's first list
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.emit(), this.opts.debounceMs ?? 50);
  }

  private emit(): void {
    if (this.stopped) return;
    this.onSnapshot?.(this.snapshot());
  }

  snapshot(): ClusterSnapshot {
    const objects: Sourced[] = [];
    for (const spec of this.specs) {
      const inf = this.informers.get(spec.kind);
      for (const o of inf?.list() ?? []) {
        objects.push({ object: { ...(JSON.parse(JSON.stringify(o)) as KubeObject), kind: spec.kind, apiVersion: spec.apiVersion }, origin: 'kubernetes' });
      }
    }
    return { objects, problems: [] };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const t of this.retryTimers) clearTimeout(t);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}
