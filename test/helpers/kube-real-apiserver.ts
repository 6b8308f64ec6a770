// A real Kubernetes control plane for tests: etcd and kube-apiserver (built from their Go modules
// by scripts/tools.mjs), on loopback only, with a throwaway data directory. No scheduler,
// controller-manager or kubelet: tests create Nodes, bind Pods (spec.nodeName) and write statuses
// themselves. Auth: a static admin token (system:masters) for the test, RBAC for everyone else,
// and service-account tokens signed with a key made here (TokenRequest and TokenReview work).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Directory with etcd and kube-apiserver, or a skip reason (outside CI). Builds them the first time. */
export function controlPlaneBinaries(): { dir: string } | { skip: string } {
  // The first build takes about ten minutes on 2 cores.
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'tools.mjs'), 'kube-apiserver'], { encoding: 'utf8', timeout: 40 * 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status === 0) return { dir: r.stdout.trim() };
  if (r.status === 3 && process.env.CI !== 'true') {
    const reason = r.stderr.trim().split('\n').pop() ?? 'kube-apiserver unavailable';
    process.stderr.write(`SKIPPED real kube-apiserver tests: ${reason}\n`);
    return { skip: reason };
  }
  throw new Error(`scripts/tools.mjs kube-apiserver failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface ApiResponse<T = any> { status: number; body: T; text: string }

const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export class RealKubeApiServer {
  /** the data directory (etcd, certificates, keys, kubeconfigs), made by start() */
  dir = '';
  readonly adminToken = 'weft-test-admin';
  /** the audience of tokens for the API server itself */
  readonly apiAudience = SERVICE_ACCOUNT_ISSUER;
  port = 0;
  caPem = '';
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  private readonly logs: Record<string, string> = { etcd: '', apiserver: '' };
  private watchdog: ChildProcess | undefined;
  private readonly onExit = () => {
    // the test process is going away: do not leave the control plane running
    for (const p of [...this.tracked, this.apiserver, this.etcd]) if (p?.exitCode === null) p.kill('SIGKILL');
  };

  /**
   * A process outside the test's that kills etcd and kube-apiserver and removes the directory
   * if the test process dies without stopping them (SIGKILL, a closed pipe, a timeout).
   */
  private startWatchdog(): void {
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 $(cat pids 2>/dev/null) 2>/dev/null; cd /; rm -rf '${this.dir}'`;
    this.watchdog = spawn('sh', ['-c', script], { cwd: this.dir, detached: true, stdio: 'ignore' });
    this.watchdog.unref();
  }

  private readonly tracked = new Set<ChildProcess>();

  private stopped = false;

  private writePids(): void {
    if (this.stopped) return;
    const pids = [this.etcd?.pid, this.apiserver?.pid, ...[...this.tracked].map((p) => p.pid)].filter((p) => p !== undefined);
    writeFileSync(join(this.dir, 'pids'), pids.join(' ') + '\n');
  }

  /** Also kill this process (a client of the server the test started) if the test process dies. */
  track(p: ChildProcess): void {
    this.tracked.add(p);
    p.once('exit', () => {
      this.tracked.delete(p);
      this.writePids();
    });
    this.writePids();
  }

  constructor(private readonly bin: string) {}

  get server(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** the last lines of a component's output, for failure messages */
  log(which: 'etcd' | 'apiserver', lines = 30): string {
    return this.logs[which]!.split('\n').slice(-lines).join('\n');
  }

  private run(name: 'etcd' | 'apiserver', file: string, args: string[]): ChildProcess {
    const p = spawn(join(this.bin, file), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    const keep = (d: Buffer) => {
      this.logs[name] = (this.logs[name]! + d.toString()).slice(-200_000);
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    if (name === 'etcd') this.etcd = p;
    else this.apiserver = p;
    this.writePids();
    return p;
  }

  async start(timeoutMs = 120_000): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'weft-kube-'));
    process.once('exit', this.onExit);
    this.startWatchdog();
    const deadline = Date.now() + timeoutMs;
    const [client, peer] = [await freePort(), await freePort()];
    this.etcd = this.run('etcd', 'etcd', [
      '--name', 'weft-test', '--data-dir', join(this.dir, 'etcd'), '--log-level', 'warn', '--unsafe-no-fsync',
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `weft-test=http://127.0.0.1:${peer}`,
    ]);
    await this.until(deadline, 'etcd', async () => (await plainGet(`http://127.0.0.1:${client}/health`)).includes('"health":"true"'), this.etcd);

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(this.dir, 'tokens.csv'), `${this.adminToken},weft-test-admin,weft-test-admin,"system:masters"\n`);
    this.port = await freePort();
    this.apiserverArgs = [
      '--etcd-servers', `http://127.0.0.1:${client}`,
      '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(this.port),
      // no Endpoints for the kubernetes Service: a loopback address is not a valid endpoint
      '--endpoint-reconciler-type', 'none',
      // serving certificate and its CA generated by the API server into --cert-dir
      '--cert-dir', join(this.dir, 'pki'),
      '--service-cluster-ip-range', '198.19.0.0/16',
      '--token-auth-file', join(this.dir, 'tokens.csv'),
      '--authorization-mode', 'RBAC',
      '--service-account-issuer', SERVICE_ACCOUNT_ISSUER,
      '--service-account-key-file', join(this.dir, 'sa.pub'),
      '--service-account-signing-key-file', join(this.dir, 'sa.key'),
      '--allow-privileged=true',
      '--v', '1',
    ];
    await this.startApiServer(deadline);
  }

  private apiserverArgs: string[] = [];

  private async startApiServer(deadline: number): Promise<void> {
    this.apiserver = this.run('apiserver', 'kube-apiserver', this.apiserverArgs);
    await this.until(deadline, 'kube-apiserver', async () => {
      try {
        this.caPem ||= readFileSync(join(this.dir, 'pki', 'apiserver.crt'), 'utf8');
      } catch {
        return false;
      }
      const r = await this.request('GET', '/readyz').catch(() => undefined);
      return r?.status === 200;
    }, this.apiserver);
  }

  /** Stops the API server (clients' watches break) and starts it again on the same port and data. */
  async restartApiServer(timeoutMs = 120_000): Promise<void> {
    await this.stopProcess(this.apiserver);
    await this.startApiServer(Date.now() + timeoutMs);
  }

  private async stopProcess(p: ChildProcess | undefined): Promise<void> {
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }

  private async until(deadline: number, what: string, ok: () => Promise<boolean>, proc: ChildProcess): Promise<void> {
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) while starting:\n${this.log(what === 'etcd' ? 'etcd' : 'apiserver')}`);
      }
      if (await ok().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${what} not ready in time:\n${this.log(what === 'etcd' ? 'etcd' : 'apiserver')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** A raw API request (admin unless token is given); JSON bodies, any status is returned. */
  request<T = any>(method: string, path: string, body?: unknown, opts: { token?: string; contentType?: string } = {}): Promise<ApiResponse<T>> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1', port: this.port, path, method, ca: this.caPem,
        headers: {
          authorization: `Bearer ${opts.token ?? this.adminToken}`, accept: 'application/json',
          ...(data !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
        },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let parsed: any = text;
          try {
            parsed = JSON.parse(text);
          } catch { /* not JSON */ }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
      });
      req.on('error', reject);
      req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: no answer in 15 s`)));
      req.end(data);
    });
  }

  /** Like request, but a status >= 300 throws with the API's message. */
  async must<T = any>(method: string, path: string, body?: unknown, opts: { token?: string; contentType?: string } = {}): Promise<T> {
    const r = await this.request<T>(method, path, body, opts);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${(r.body as { message?: string })?.message ?? r.text}`);
    return r.body;
  }

  /** The collection path of an object's kind, from discovery (like kubectl's REST mapping). */
  async collection(apiVersion: string, kind: string, namespace?: string): Promise<string> {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await this.must<{ resources: Array<{ name: string; kind: string; namespaced: boolean }> }>('GET', base);
    const res = list.resources.find((r) => r.kind === kind && !r.name.includes('/'));
    if (!res) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    return res.namespaced ? `${base}/namespaces/${namespace ?? 'default'}/${res.name}` : `${base}/${res.name}`;
  }

  /**
   * Server-side apply with strict field validation (unknown or duplicate fields are errors);
   * dryRun: validated and admitted, not stored.
   */
  async apply(obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }, opts: { dryRun?: boolean } = {}): Promise<ApiResponse> {
    const path = `${await this.collection(obj.apiVersion, obj.kind, obj.metadata.namespace)}/${obj.metadata.name}?fieldManager=weft-test&fieldValidation=Strict&force=true${opts.dryRun ? '&dryRun=All' : ''}`;
    return this.request('PATCH', path, obj, { contentType: 'application/apply-patch+yaml' });
  }

  /** A TokenRequest for a service account: audiences, and optionally bound to a pod. */
  async token(namespace: string, serviceAccount: string, audiences: string[], pod?: { name: string; uid: string }, expirationSeconds = 3600): Promise<string> {
    const r = await this.must<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
      spec: { audiences, expirationSeconds, ...(pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } } : {}) },
    });
    return r.status.token;
  }

  /** A kubeconfig (file contents) for this server with the given bearer token (admin by default). */
  kubeconfigYaml(token = this.adminToken): string {
    return JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'real',
      clusters: [{ name: 'real', cluster: { server: this.server, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'real', context: { cluster: 'real', user: 'u' } }],
    }, null, 2);
  }

  writeKubeconfig(name: string, token?: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, this.kubeconfigYaml(token));
    return p;
  }

  kubeConfig(token?: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeconfigYaml(token));
    return kc;
  }

  /** Stops tracked clients, kube-apiserver and etcd (TERM, then KILL after 10 s) and removes the data directory. */
  async stop(): Promise<void> {
    process.removeListener('exit', this.onExit);
    for (const p of this.tracked) await this.stopProcess(p);
    await this.stopProcess(this.apiserver);
    await this.stopProcess(this.etcd);
    this.watchdog?.kill('SIGKILL');
    this.stopped = true;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function plainGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      let t = '';
      res.on('data', (d: Buffer) => (t += d.toString()));
      res.on('end', () => resolve(t));
    });
    req.on('error', reject);
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}
