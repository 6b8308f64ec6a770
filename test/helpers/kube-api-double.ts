// A Kubernetes API server double for `weft check --kube` tests: real API paths, real JSON
// shapes (objects with kind/apiVersion/metadata, lists with items, Status errors), label and
// field selectors on pods. The real client (@kubernetes/client-node) talks to it over HTTP.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KubeObject = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown }; [k: string]: unknown };

export interface RequestLog { method: string; path: string; query: string; authorization?: string | undefined }

export class KubeApiDouble {
  gitVersion = 'v1.31.2';
  readonly nodes = new Map<string, KubeObject>();
  readonly crds = new Map<string, KubeObject>();
  /** namespace/name -> object */
  readonly deployments = new Map<string, KubeObject>();
  readonly daemonsets = new Map<string, KubeObject>();
  readonly pods = new Map<string, KubeObject>();
  readonly requests: RequestLog[] = [];
  /** path -> HTTP status to answer with (e.g. 403 for RBAC, 500) */
  readonly failures = new Map<string, number>();
  /** paths that never answer (a hung API server or proxy) */
  readonly hang = new Set<string>();
  /** open watches (GET <collection>?watch=1): watchEvent() writes to the ones it matches */
  private readonly watches = new Set<{ res: ServerResponse; collection: string; url: URL }>();
  private rv = 100;
  private server: Server | undefined;
  private dir: string | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A kubeconfig file pointing at this double (removed by stop()). */
  kubeconfigFile(): string {
    this.dir ??= mkdtempSync(join(tmpdir(), 'weft-kube-double-'));
    const path = join(this.dir, 'kubeconfig');
    writeFileSync(path, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'double',
      clusters: [{ name: 'double', cluster: { server: `http://127.0.0.1:${this.port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'test-token' } }],
      contexts: [{ name: 'double', context: { cluster: 'double', user: 'u' } }],
    }));
    return path;
  }

  /** Sends a watch event (ERROR: `o` is a Status) to the open watches of `collection` whose field selector matches. */
  watchEvent(collection: string, type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR', o: KubeObject | Record<string, unknown>): number {
    let sent = 0;
    if (type !== 'ERROR') (o as KubeObject).metadata.resourceVersion = String(++this.rv);
    for (const w of this.watches) {
      if (w.res.writableEnded || w.res.destroyed || w.collection !== collection || (type !== 'ERROR' && this.select([o as KubeObject], w.url).length === 0)) continue;
      w.res.write(`${JSON.stringify({ type, object: o })}\n`);
      sent++;
    }
    return sent;
  }

  /** Ends every open watch (as an API server does at timeoutSeconds or on restart). */
  endWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  /** How many watches are open. */
  get openWatches(): number {
    return this.watches.size;
  }

  put(table: Map<string, KubeObject>, o: KubeObject): void {
    table.set(o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name, o);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    this.requests.push({ method: req.method ?? 'GET', path, query: url.search, authorization: req.headers.authorization });
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const status = (code: number, reason: string, message: string) => send(code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
    const notFound = (resource: string, name: string) => status(404, 'NotFound', `${resource} "${name}" not found`);
    if (this.hang.has(path)) return;
    const injected = this.failures.get(path);
    if (injected) return status(injected, injected === 403 ? 'Forbidden' : 'InternalError', `injected ${injected} for ${path}`);
    const nodePatch = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path);
    if (req.method === 'PATCH' && nodePatch) {
      const type = (req.headers['content-type'] ?? '').split(';')[0];
      if (type !== 'application/merge-patch+json') return status(415, 'UnsupportedMediaType', `the double accepts merge patches on nodes, not ${type}`);
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const o = this.nodes.get(nodePatch[1]!);
        if (!o) return notFound('nodes', nodePatch[1]!);
        const patched = mergePatch(o, JSON.parse(body)) as KubeObject;
        this.nodes.set(nodePatch[1]!, patched);
        send(200, patched);
      });
      return;
    }
    if (req.method !== 'GET') return status(405, 'MethodNotAllowed', `${req.method} is not supported by the double`);
    const list = (kind: string, apiVersion: string, items: KubeObject[]) => send(200, { kind: `${kind}List`, apiVersion, metadata: { resourceVersion: String(this.rv) }, items });
    let m: RegExpExecArray | null;

    if (path === '/version') {
      const [, major = '1', minor = '0'] = /^v(\d+)\.(\d+)/.exec(this.gitVersion) ?? [];
      return send(200, { major, minor, gitVersion: this.gitVersion, gitCommit: '0'.repeat(40), gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' });
    }
    if (path === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions') {
      return list('CustomResourceDefinition', 'apiextensions.k8s.io/v1', [...this.crds.values()]);
    }
    if ((m = /^\/apis\/apiextensions\.k8s\.io\/v1\/customresourcedefinitions\/([^/]+)$/.exec(path))) {
      const o = this.crds.get(m[1]!);
      return o ? send(200, o) : notFound('customresourcedefinitions.apiextensions.k8s.io', m[1]!);
    }
    if (path === '/api/v1/nodes') return list('Node', 'v1', this.select([...this.nodes.values()], url));
    if ((m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path))) {
      const o = this.nodes.get(m[1]!);
      return o ? send(200, o) : notFound('nodes', m[1]!);
    }
    if ((m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/(deployments|daemonsets)(?:\/([^/]+))?$/.exec(path))) {
      const table = m[2] === 'deployments' ? this.deployments : this.daemonsets;
      const kind = m[2] === 'deployments' ? 'Deployment' : 'DaemonSet';
      const items = () => this.select([...table.values()].filter((o) => o.metadata.namespace === m![1]), url);
      if (!m[3] && ['1', 'true'].includes(url.searchParams.get('watch') ?? '')) {
        // a watch stays open; without a resourceVersion it starts with the objects there now
        res.writeHead(200, { 'content-type': 'application/json' });
        if (!url.searchParams.get('resourceVersion')) for (const o of items()) res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
        const w = { res, collection: path, url };
        this.watches.add(w);
        res.on('close', () => this.watches.delete(w));
        return;
      }
      if (!m[3]) return list(kind, 'apps/v1', items());
      const o = table.get(`${m[1]}/${m[3]}`);
      return o ? send(200, o) : notFound(`${m[2]}.apps`, m[3]);
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(path))) {
      if (!m[2]) return list('Pod', 'v1', this.select([...this.pods.values()].filter((o) => o.metadata.namespace === m![1]), url));
      const o = this.pods.get(`${m[1]}/${m[2]}`);
      return o ? send(200, o) : notFound('pods', m[2]);
    }
    if (path === '/api/v1/pods') return list('Pod', 'v1', this.select([...this.pods.values()], url));
    return status(404, 'NotFound', `the server could not find the requested resource (${path})`);
  }

  /** labelSelector (k=v, k!=v, k) and fieldSelector (spec.nodeName=, metadata.name=) as the API server does. */
  private select(items: KubeObject[], url: URL): KubeObject[] {
    const ls = url.searchParams.get('labelSelector');
    const fs = url.searchParams.get('fieldSelector');
    return items.filter((o) => {
      const labels = o.metadata.labels ?? {};
      for (const term of ls ? ls.split(',') : []) {
        const neq = /^([^!=]+)!=(.*)$/.exec(term);
        const eq = /^([^!=]+)==?(.*)$/.exec(term);
        if (neq) { if (labels[neq[1]!] === neq[2]) return false; } else if (eq) { if (labels[eq[1]!] !== eq[2]) return false; } else if (!(term in labels)) return false;
      }
      for (const term of fs ? fs.split(',') : []) {
        const [k, v] = term.split('=') as [string, string];
        const actual = k === 'spec.nodeName' ? (o.spec as { nodeName?: string } | undefined)?.nodeName : k === 'metadata.name' ? o.metadata.name : k === 'metadata.namespace' ? o.metadata.namespace : undefined;
        if (actual !== v) return false;
      }
      return true;
    });
  }
}

/** RFC 7386 JSON merge patch, as the API server applies application/merge-patch+json. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- builders for the objects a healthy Weft install shows

export const crd = (name: string, opts: { established?: boolean } = {}): KubeObject => ({
  apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name },
  spec: { group: name.split('.').slice(1).join('.'), scope: 'Namespaced', names: { plural: name.split('.')[0], kind: 'X' }, versions: [{ name: 'v1', served: true, storage: true }] },
  status: { conditions: [{ type: 'Established', status: opts.established === false ? 'False' : 'True' }] },
});

export const node = (name: string, opts: { labels?: Record<string, string>; annotations?: Record<string, string>; kernel?: string } = {}): KubeObject => ({
  apiVersion: 'v1', kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/hostname': name, ...(opts.labels ?? {}) }, annotations: opts.annotations ?? {} },
  status: { nodeInfo: { kernelVersion: opts.kernel ?? '6.8.0-45-generic', osImage: 'Ubuntu 24.04', containerRuntimeVersion: 'containerd://1.7.2', kubeletVersion: 'v1.31.2', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64', machineID: 'm', systemUUID: 's', bootID: 'b' } },
});

export const deployment = (ns: string, name: string, replicas: number, ready: number): KubeObject => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns },
  spec: { replicas, selector: { matchLabels: { 'app.kubernetes.io/name': name } }, template: { metadata: { labels: { 'app.kubernetes.io/name': name } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
  status: { replicas, readyReplicas: ready, availableReplicas: ready },
});

export const daemonset = (ns: string, name: string, nodeSelector: Record<string, string>, desired: number, ready: number): KubeObject => ({
  apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name, namespace: ns },
  spec: { selector: { matchLabels: { 'app.kubernetes.io/name': name } }, template: { metadata: { labels: { 'app.kubernetes.io/name': name } }, spec: { nodeSelector, containers: [{ name: 'c', image: 'i' }] } } },
  status: { desiredNumberScheduled: desired, numberReady: ready, currentNumberScheduled: desired, numberMisscheduled: 0 },
});

export const pod = (ns: string, name: string, nodeName: string, labels: Record<string, string>, ready: boolean): KubeObject => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels },
  spec: { nodeName, containers: [{ name: 'agent', image: 'i' }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});
