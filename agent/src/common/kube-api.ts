// The agent's own Kubernetes API client: the in-cluster connection and the three calls the agent
// makes (GET one object, PATCH one object, WATCH a collection narrowed to one name), over
// node:https. @kubernetes/client-node would cost every agent ~27 MB of V8 heap and ~70 MB of RSS
// for this (see kube-client.ts); the controller and `weft check --kube` keep using it.
//
// Wire facts used here (Kubernetes API conventions): a refusal answers with a `Status` object
// whose `message` says why; a watch is `GET <collection>?watch=1&resourceVersion=RV` answering
// one JSON event per line, {type: ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, object}; an ERROR
// event carries a Status, and code 410 (Gone) means RV is too old: list again, then watch from
// the list's resourceVersion. A list or watch with `fieldSelector=metadata.name=NAME` is
// authorized against RBAC `resourceNames` like a get of NAME.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { WeftError } from './errors.js';
import { kubeErrorReason } from './kube-api-error.js';

/** How to reach a Kubernetes API server. */
export interface KubeConnection {
  /** `https://host:port` (an IPv6 host in brackets); `http://` only for test doubles */
  server: string;
  /** the CA that signed the server's certificate (default: the system's roots) */
  caPem?: string;
  /** the name the server's certificate is checked against (default: the host) */
  tlsServerName?: string;
  insecureSkipTlsVerify?: boolean;
  /** a bearer token */
  token?: string;
  /** a file holding the bearer token, read again for every request (service-account tokens rotate) */
  tokenFile?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  /** the pod's namespace, in a pod */
  namespace?: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** `host:port` for a URL: an IPv6 address goes in brackets. */
export function hostPort(host: string, port: string | number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The in-cluster connection when running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT and
 * the service-account token present), else undefined. `root` prefixes the service-account
 * directory (tests).
 */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env, root = ''): KubeConnection | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  const dir = `${root}${SERVICE_ACCOUNT_DIR}`;
  if (!existsSync(`${dir}/token`)) return undefined;
  const conn: KubeConnection = { server: `https://${hostPort(host, port)}`, tokenFile: `${dir}/token` };
  if (existsSync(`${dir}/ca.crt`)) conn.caPem = readFileSync(`${dir}/ca.crt`, 'utf8');
  if (existsSync(`${dir}/namespace`)) conn.namespace = readFileSync(`${dir}/namespace`, 'utf8').trim();
  return conn;
}

export class KubeConnectionError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_KUBE_CONNECTION', message, { hint: 'use a kubeconfig whose user has a token or a client certificate (exec and auth-provider plugins are not supported here)' });
  }
}

/**
 * The connection a client-node KubeConfig describes (its current context): for tests and for
 * code that already holds a KubeConfig. Takes only its type; client-node is not loaded here.
 */
export function kubeConnectionFromConfig(kc: KubeConfig): KubeConnection {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeConnectionError('the kubeconfig has no current cluster');
  const user = kc.getCurrentUser();
  const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  const conn: KubeConnection = { server: cluster.server.replace(/\/+$/, '') };
  if (cluster.caData) conn.caPem = b64(cluster.caData);
  else if (cluster.caFile) conn.caPem = readFileSync(cluster.caFile, 'utf8');
  if (cluster.tlsServerName) conn.tlsServerName = cluster.tlsServerName;
  if (cluster.skipTLSVerify) conn.insecureSkipTlsVerify = true;
  if (user?.token) conn.token = user.token;
  else if (user?.authProvider?.name === 'tokenFile' && typeof user.authProvider.config?.tokenFile === 'string') conn.tokenFile = user.authProvider.config.tokenFile;
  else if (user?.exec || user?.authProvider) throw new KubeConnectionError(`the kubeconfig user ${user.name} authenticates with a plugin`);
  if (user?.certData) conn.clientCertPem = b64(user.certData);
  else if (user?.certFile) conn.clientCertPem = readFileSync(user.certFile, 'utf8');
  if (user?.keyData) conn.clientKeyPem = b64(user.keyData);
  else if (user?.keyFile) conn.clientKeyPem = readFileSync(user.keyFile, 'utf8');
  return conn;
}

/** The Status object the API answers a refused request with. */
export interface KubeStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/**
 * A request that failed: `statusCode` and `body` (the API's Status) when the API answered,
 * neither when it could not be reached or did not answer in time. The message names the
 * request: "GET /apis/apps/v1/namespaces/ns/daemonsets/x: HTTP 403: <Status message>".
 */
export class KubeApiError extends WeftError {
  readonly statusCode: number | undefined;
  readonly body: KubeStatus | string | undefined;

  constructor(readonly method: string, readonly path: string, statusCode: number | undefined, body: KubeStatus | string | undefined, reason: string, cause?: unknown) {
    super('WEFT_E_KUBE_API', `${method} ${path}: ${reason}`, {
      cause,
      hint: statusCode === 401 || statusCode === 403 ? 'check the service account\'s token and its RBAC (the rendered Role/ClusterRole weft-agent)' : undefined,
    });
    this.statusCode = statusCode;
    this.body = body;
  }
}

function statusError(method: string, path: string, code: number, text: string): KubeApiError {
  let body: KubeStatus | string = text;
  try {
    body = JSON.parse(text) as KubeStatus;
  } catch { /* not JSON: keep the text */ }
  return new KubeApiError(method, path, code, body, kubeErrorReason({ statusCode: code, body }));
}

export interface KubeRequestOptions {
  /** the whole request, or for a watch until the response starts (default 10 s) */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

interface Sent {
  req: ClientRequest;
  res: IncomingMessage;
  /** why the request was destroyed (our timeout), if it was */
  why(): string | undefined;
  clearTimer(): void;
}

async function bearer(conn: KubeConnection, method: string, path: string): Promise<string | undefined> {
  if (conn.token) return conn.token;
  if (!conn.tokenFile) return undefined;
  try {
    return (await readFile(conn.tokenFile, 'utf8')).trim();
  } catch (err) {
    throw new KubeApiError(method, path, undefined, undefined, `cannot read the token ${conn.tokenFile}: ${(err as Error).message}`, err);
  }
}

async function send(conn: KubeConnection, method: string, path: string, timeoutMs: number, body?: string, contentType?: string): Promise<Sent> {
  const url = new URL(conn.server.replace(/\/+$/, '') + path);
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = await bearer(conn, method, path);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    headers['content-type'] = contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const https = url.protocol === 'https:';
  // agent: false: one connection per request. The agent asks rarely, and a kept-alive socket
  // the API server has since closed would fail the next request.
  const options = https
    ? { method, headers, agent: false, ca: conn.caPem, cert: conn.clientCertPem, key: conn.clientKeyPem, servername: conn.tlsServerName, rejectUnauthorized: !conn.insecureSkipTlsVerify }
    : { method, headers, agent: false };
  return new Promise<Sent>((resolve, reject) => {
    let why: string | undefined;
    const req = (https ? httpsRequest : httpRequest)(url, options);
    const timer = setTimeout(() => {
      why = `no answer within ${timeoutMs} ms`;
      req.destroy(new Error(why));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new KubeApiError(method, path, undefined, undefined, why ?? err.message, err));
    });
    req.on('response', (res) => resolve({ req, res, why: () => why, clearTimer: () => clearTimeout(timer) }));
    req.end(body);
  });
}

function readAll(s: Sent, method: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.res.on('data', (c: Buffer) => chunks.push(c));
    s.res.on('end', () => {
      s.clearTimer();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    s.res.on('close', () => {
      s.clearTimer();
      if (!s.res.complete) reject(new KubeApiError(method, path, undefined, undefined, s.why() ?? 'the connection closed before the answer was complete'));
    });
  });
}

async function call<T>(conn: KubeConnection, method: string, path: string, opts: KubeRequestOptions, body?: string, contentType?: string): Promise<T> {
  const s = await send(conn, method, path, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, body, contentType);
  const text = await readAll(s, method, path);
  const code = s.res.statusCode ?? 0;
  if (code < 200 || code > 299) throw statusError(method, path, code, text);
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new KubeApiError(method, path, code, text, `the answer is not JSON: ${(err as Error).message}`, err);
  }
}

/** GET one object or list as JSON. */
export function kubeGet<T>(conn: KubeConnection, path: string, opts: KubeRequestOptions = {}): Promise<T> {
  return call<T>(conn, 'GET', path, opts);
}

export type KubePatchType = 'merge' | 'strategic' | 'json';
const PATCH_CONTENT_TYPES: Record<KubePatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

/** PATCH one object (merge: RFC 7386 JSON merge patch; strategic; json: RFC 6902); answers the patched object. */
export function kubePatch<T>(conn: KubeConnection, path: string, type: KubePatchType, patch: unknown, opts: KubeRequestOptions = {}): Promise<T> {
  return call<T>(conn, 'PATCH', path, opts, JSON.stringify(patch), PATCH_CONTENT_TYPES[type]);
}

export interface KubeObjectMeta {
  metadata?: { name?: string; resourceVersion?: string; deletionTimestamp?: string };
}

export type KubeWatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface KubeWatchOptions<T> {
  /** the collection, e.g. /apis/apps/v1/namespaces/NS/daemonsets */
  path: string;
  /** only the object of this name (fieldSelector metadata.name=NAME) */
  name?: string;
  /** the objects there at each (re)list: at start and after a 410 Gone; events follow */
  onList(items: T[]): void;
  onEvent(type: KubeWatchEventType, object: T): void;
  /** a list or watch failed; it is retried after the backoff */
  onError?(err: Error): void;
  /** the list, and the watch until its response starts (default 10 s) */
  timeoutMs?: number;
  /** the wait after a failure, doubled each failure in a row (default 1 s → 30 s) */
  backoff?: { initialMs: number; maxMs: number };
  /** the API server ends each watch after this long (timeoutSeconds); the watch is reopened (default 300) */
  watchSeconds?: number;
}

interface WatchEvent<T> {
  type?: string;
  object?: T & KubeStatus;
}

/**
 * List, then watch from the list's resourceVersion, reopening the watch from the last
 * resourceVersion seen (events and bookmarks) when it ends; a 410 Gone lists again; failures
 * are retried with backoff until stop().
 */
export class KubeWatch<T extends KubeObjectMeta> {
  private rv: string | undefined;
  private stopped = false;
  private current: ClientRequest | undefined;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private delayMs: number;

  constructor(private readonly conn: KubeConnection, private readonly opts: KubeWatchOptions<T>) {
    this.delayMs = opts.backoff?.initialMs ?? 1000;
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.current?.destroy();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams(extra);
    if (this.opts.name) q.set('fieldSelector', `metadata.name=${this.opts.name}`);
    return `${this.opts.path}?${q.toString()}`;
  }

  private async run(): Promise<void> {
    const initialMs = this.opts.backoff?.initialMs ?? 1000;
    const maxMs = this.opts.backoff?.maxMs ?? 30_000;
    while (!this.stopped) {
      const t0 = Date.now();
      try {
        if (this.rv === undefined) {
          const list = await kubeGet<{ metadata?: { resourceVersion?: string }; items?: T[] }>(this.conn, this.query({}), { timeoutMs: this.opts.timeoutMs });
          if (this.stopped) return;
          this.opts.onList(list.items ?? []);
          this.rv = list.metadata?.resourceVersion ?? '';
        }
        await this.watchOnce();
        // the server ended the watch (timeoutSeconds): reopen at once, unless it ends at once every time
        if (Date.now() - t0 >= 1000) {
          this.delayMs = initialMs;
          continue;
        }
      } catch (err) {
        if (this.stopped) return;
        if ((err as KubeApiError).statusCode === 410) this.rv = undefined;
        this.opts.onError?.(err as Error);
      }
      await this.sleep(this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, maxMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.sleeping = { timer, wake: resolve };
    });
  }

  private async watchOnce(): Promise<void> {
    const seconds = this.opts.watchSeconds ?? 300;
    const path = this.query({ watch: '1', resourceVersion: this.rv ?? '', allowWatchBookmarks: 'true', timeoutSeconds: String(seconds) });
    const s = await send(this.conn, 'GET', path, this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if (s.res.statusCode !== 200) throw statusError('GET', path, s.res.statusCode ?? 0, await readAll(s, 'GET', path));
    s.clearTimer();
    this.current = s.req;
    if (this.stopped) s.req.destroy();
    // a watch that stays silent well past its timeoutSeconds is a dead connection
    s.req.setTimeout((seconds + 60) * 1000, () => s.req.destroy(new Error('the watch went silent')));
    s.res.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      let failed = false;
      const fail = (err: Error) => {
        failed = true;
        s.req.destroy();
        reject(err);
      };
      s.res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n'); i >= 0 && !failed; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line === '') continue;
          try {
            this.event(JSON.parse(line) as WatchEvent<T>, path);
          } catch (err) {
            fail(err instanceof KubeApiError ? err : new KubeApiError('GET', path, 200, undefined, `a watch event is not usable: ${(err as Error).message}`, err));
          }
        }
      });
      s.res.on('end', () => resolve());
      s.res.on('close', () => {
        if (this.current === s.req) this.current = undefined;
        if (!s.res.complete && !failed) reject(new KubeApiError('GET', path, undefined, undefined, 'the watch connection closed'));
      });
    });
  }

  private event(ev: WatchEvent<T>, path: string): void {
    const o = ev.object;
    if (ev.type === 'ERROR') {
      const code = typeof o?.code === 'number' ? o.code : 500;
      throw new KubeApiError('GET', path, code, o, kubeErrorReason({ statusCode: code, body: o }));
    }
    const rv = o?.metadata?.resourceVersion;
    if (rv) this.rv = rv;
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') this.opts.onEvent(ev.type, o as T);
  }
}
