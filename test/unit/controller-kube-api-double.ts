// A small but faithful stand-in for the Kubernetes API server's list/watch protocol, for
// testing the Kubernetes source: lists carry a resourceVersion, watches replay history after
// the given resourceVersion then stream live events, send BOOKMARK events when asked
// (allowWatchBookmarks), and answer a compacted resourceVersion with an ERROR event of code 410.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Event { rv: number; path: string; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Obj }
interface Watcher { path: string; res: ServerResponse; bookmarks: boolean; timer?: NodeJS.Timeout }

export interface RequestRecord { path: string; watch: boolean; resourceVersion?: string; allowWatchBookmarks?: string; method?: string }

/** What the API server's authorizer sees (SubjectAccessReview resourceAttributes). */
export interface ResourceAttributes { verb: string; group: string; resource: string; namespace?: string; name?: string }

/** Request attributes as the API server derives them from method and path. */
export function resourceAttributes(method: string, path: string, watch: boolean): ResourceAttributes | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(path);
  if (!m) return undefined;
  const [, group = '', namespace, resource, name] = m as unknown as [string, string | undefined, string | undefined, string, string | undefined];
  const verb = method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : method === 'DELETE' ? 'delete'
    : watch ? 'watch' : name ? 'get' : 'list';
  return { verb, group, resource, ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
}

const KINDS: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/namespaces': { kind: 'Namespace', apiVersion: 'v1' },
  '/api/v1/pods': { kind: 'Pod', apiVersion: 'v1' },
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/api/v1/serviceaccounts': { kind: 'ServiceAccount', apiVersion: 'v1' },
  '/apis/security.weft.io/v1/authorizationpolicies': { kind: 'AuthorizationPolicy', apiVersion: 'security.weft.io/v1' },
  '/apis/security.weft.io/v1/peerauthentications': { kind: 'PeerAuthentication', apiVersion: 'security.weft.io/v1' },
};

export class KubeApiDouble {
  private rv = 100;
  private compactedThrough = 0;
  private readonly objects = new Map<string, Map<string, Obj>>();
  private readonly history: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  private failures: Array<{ path: string; status: number }> = [];
  readonly requests: RequestRecord[] = [];
  /** resource paths answered with 404, like a CRD that is not installed */
  readonly missing = new Set<string>();
  /** Secrets by namespace/name (get and create only) */
  readonly secrets = new Map<string, Obj>();
  /** ConfigMaps by namespace/name (get, create, update with resourceVersion preconditions) */
  readonly configMaps = new Map<string, Obj>();
  /**
   * Tokens the double's authenticator knows: token -> user info and the token's audiences
   * (its `aud`; default: the API server's own, like a legacy or default-audience token).
   */
  readonly tokens = new Map<string, { username: string; extra?: Record<string, string[]>; audiences?: string[] }>();
  /** --api-audiences of the API server: what a TokenReview without spec.audiences checks against */
  apiAudiences = ['https://kubernetes.default.svc.cluster.local'];
  /**
   * false: an authenticator that ignores audiences (answers authenticated without
   * status.audiences, which means "valid for the API server's audiences")
   */
  audienceAware = true;
  /** RBAC: when set, every request is checked and refused with 403 Forbidden unless allowed */
  authorize: ((a: ResourceAttributes) => boolean) | undefined;
  /** requests refused by `authorize` */
  readonly forbidden: ResourceAttributes[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(private readonly bookmarkMs = 100) {
    for (const p of Object.keys(KINDS)) this.objects.set(p, new Map());
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.disconnectWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  get resourceVersion(): number {
    return this.rv;
  }

  private key(o: Obj): string {
    return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  }

  /** Creates or replaces an object; returns its new resourceVersion. */
  put(path: string, o: Obj): number {
    const table = this.objects.get(path)!;
    const type = table.has(this.key(o)) ? 'MODIFIED' : 'ADDED';
    const obj: Obj = { ...KINDS[path], ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } };
    table.set(this.key(o), obj);
    this.publish({ rv: this.rv, path, type, object: obj });
    return this.rv;
  }

  delete(path: string, namespace: string | undefined, name: string): void {
    const table = this.objects.get(path)!;
    const k = `${namespace ?? ''}/${name}`;
    const old = table.get(k);
    if (!old) return;
    table.delete(k);
    this.publish({ rv: ++this.rv, path, type: 'DELETED', object: { ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } } });
  }

  /** Forget history up to now, like etcd compaction: older resourceVersions get 410 Gone. */
  compact(): void {
    this.compactedThrough = this.rv;
    this.history.length = 0;
  }

  /** Ends every open watch (the API server restarting, or a load balancer timeout). */
  disconnectWatches(): void {
    for (const w of this.watchers) {
      clearInterval(w.timer);
      w.res.end();
    }
    this.watchers.clear();
  }

  /** The next request(s) for a path fail with an HTTP error. */
  failNext(path: string, status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push({ path, status });
  }

  private publish(e: Event): void {
    this.history.push(e);
    for (const w of this.watchers) if (w.path === e.path) this.send(w, e.type, e.object);
  }

  private send(w: Watcher, type: string, object: unknown): void {
    w.res.write(JSON.stringify({ type, object }) + '\n');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const watch = url.searchParams.get('watch') === 'true';
    const rec: RequestRecord = { path, watch };
    const rvParam = url.searchParams.get('resourceVersion');
    if (rvParam !== null) rec.resourceVersion = rvParam;
    const bm = url.searchParams.get('allowWatchBookmarks');
    if (bm !== null) rec.allowWatchBookmarks = bm;
    rec.method = req.method ?? 'GET';
    this.requests.push(rec);
    const status = (code: number, reason: string, message: string) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));
    };
    if (this.authorize) {
      const a = resourceAttributes(req.method ?? 'GET', path, watch);
      if (a && !this.authorize(a)) {
        this.forbidden.push(a);
        const what = `${a.resource}${a.group ? `.${a.group}` : ''}`;
        return status(403, 'Forbidden', `${what}${a.name ? ` "${a.name}"` : ''} is forbidden: User "system:serviceaccount:weft-system:weft-controller" cannot ${a.verb} resource "${a.resource}" in API group "${a.group}"${a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope'}`);
      }
    }
    const fi = this.failures.findIndex((f) => f.path === path);
    if (fi >= 0) {
      const f = this.failures.splice(fi, 1)[0]!;
      return status(f.status, 'InternalError', 'injected failure');
    }
    if (path === '/apis/authentication.k8s.io/v1/tokenreviews' && req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const review = JSON.parse(body) as { spec?: { token?: string; audiences?: string[] } };
        const known = this.tokens.get(review.spec?.token ?? '');
        // The API server's token authenticator: the review's audiences (or the API server's own
        // when none are given) must intersect the token's; status.audiences is the intersection.
        const wanted = review.spec?.audiences?.length ? review.spec.audiences : this.apiAudiences;
        const tokenAud = known?.audiences ?? this.apiAudiences;
        const common = this.audienceAware ? wanted.filter((a) => tokenAud.includes(a)) : wanted;
        let st: unknown;
        if (!known) st = { authenticated: false, error: 'invalid bearer token' };
        else if (!common.length) {
          st = { authenticated: false, error: `[invalid bearer token, token audiences ${JSON.stringify(tokenAud)} is invalid for the target audiences ${JSON.stringify(wanted)}]` };
        } else {
          const ns = /^system:serviceaccount:([^:]+):/.exec(known.username)?.[1];
          const user = { username: known.username, uid: `uid-${known.username}`, groups: [...(ns ? ['system:serviceaccounts', `system:serviceaccounts:${ns}`] : []), 'system:authenticated'], ...(known.extra ? { extra: known.extra } : {}) };
          st = { authenticated: true, user, ...(this.audienceAware ? { audiences: common } : {}) };
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status: st }));
      });
      return;
    }
    const cmMatch = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/]+))?$/.exec(path);
    if (cmMatch) {
      const [, ns, name] = cmMatch as unknown as [string, string, string | undefined];
      const json = (code: number, o: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
      };
      if (req.method === 'GET' && name) {
        const o = this.configMaps.get(`${ns}/${name}`);
        return o ? json(200, o) : status(404, 'NotFound', `configmaps "${name}" not found`);
      }
      if ((req.method === 'POST' && !name) || (req.method === 'PUT' && name)) {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const o = JSON.parse(body) as Obj;
          const key = `${ns}/${o.metadata.name}`;
          const old = this.configMaps.get(key);
          if (req.method === 'POST' && old) return status(409, 'AlreadyExists', `configmaps "${o.metadata.name}" already exists`);
          if (req.method === 'PUT') {
            if (o.metadata.name !== name) return status(400, 'BadRequest', 'the name of the object does not match the name on the URL');
            if (!old) return status(404, 'NotFound', `configmaps "${name}" not found`);
            if (o.metadata.resourceVersion && o.metadata.resourceVersion !== old.metadata.resourceVersion) {
              return status(409, 'Conflict', `Operation cannot be fulfilled on configmaps "${name}": the object has been modified; please apply your changes to the latest version and try again`);
            }
          }
          const stored = { ...o, apiVersion: 'v1', kind: 'ConfigMap', metadata: { ...o.metadata, namespace: ns, resourceVersion: String(++this.rv) } };
          this.configMaps.set(key, stored);
          json(req.method === 'POST' ? 201 : 200, stored);
        });
        return;
      }
    }
    const secretMatch = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (secretMatch) {
      const [, ns, name] = secretMatch as unknown as [string, string, string | undefined];
      if (req.method === 'GET' && name) {
        const o = this.secrets.get(`${ns}/${name}`);
        if (!o) return status(404, 'NotFound', `secrets "${name}" not found`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
        return;
      }
      if (req.method === 'POST' && !name) {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const o = JSON.parse(body) as Obj;
          const key = `${ns}/${o.metadata.name}`;
          if (this.secrets.has(key)) return status(409, 'AlreadyExists', `secrets "${o.metadata.name}" already exists`);
          const stored = { ...o, metadata: { ...o.metadata, namespace: ns, resourceVersion: String(++this.rv) } };
          this.secrets.set(key, stored);
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(JSON.stringify(stored));
        });
        return;
      }
    }
    const podMatch = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(path);
    if (podMatch && req.method === 'GET') {
      const o = this.objects.get('/api/v1/pods')!.get(`${podMatch[1]}/${podMatch[2]}`);
      if (!o) return status(404, 'NotFound', `pods "${podMatch[2]}" not found`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o));
      return;
    }
    const meta = KINDS[path];
    if (this.missing.has(path)) return status(404, 'NotFound', 'the server could not find the requested resource');
    if (!meta || req.method !== 'GET') return status(404, 'NotFound', `no such resource ${path}`);
    if (!watch) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        kind: `${meta.kind}List`, apiVersion: meta.apiVersion, metadata: { resourceVersion: String(this.rv) },
        items: [...this.objects.get(path)!.values()],
      }));
      return;
    }
    const from = Number(rvParam ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: Watcher = { path, res, bookmarks: bm === 'true' };
    if (from < this.compactedThrough) {
      this.send(w, 'ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: `too old resource version: ${from} (${this.compactedThrough})` });
      res.end();
      return;
    }
    for (const e of this.history) if (e.path === path && e.rv > from) this.send(w, e.type, e.object);
    this.watchers.add(w);
    if (w.bookmarks) {
      w.timer = setInterval(() => this.send(w, 'BOOKMARK', { kind: meta.kind, apiVersion: meta.apiVersion, metadata: { resourceVersion: String(this.rv) } }), this.bookmarkMs);
    }
    const gone = () => {
      clearInterval(w.timer);
      this.watchers.delete(w);
    };
    req.on('close', gone);
    res.on('close', gone);
  }
}
