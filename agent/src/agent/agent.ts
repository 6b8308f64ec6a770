// The `weft agent` process: the control-plane link (NodeSync: xDS + certificates), the node
// proxy, redirection and enrolment of this node's mesh pods, and the admin, metrics and
// readiness ports. Stopping drains: readiness goes false, listeners close, established
// connections get up to the drain deadline, then everything closes. Redirection pins stay,
// so a pod's traffic fails closed until the next agent (or the one beside us) takes over,
// unless no successor will come (uninstall, see exit-policy.ts): then every pod is released.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { WeftError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { NodeSync } from '../state/node-sync.js';
import { configDump, type ConfigDump } from '../state/dump.js';
import { ProxyNode, TlsContexts, meshViewOf, type ConnectionSnapshot } from '../proxy/index.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { Registry } from '../telemetry/registry.js';
import { cgroup2Mount } from '../native/index.js';
import { DEFAULT_BYPASS_MARK, Redirector } from '../redirect/index.js';
import { Enroller, type EnrolmentInfo } from './enroller.js';
import { PodDiscovery } from './pod-discovery.js';
import { handlers, serve, type Endpoint } from './http-endpoints.js';
import type { AgentOptions } from './options.js';
import { inClusterConnection, type KubeConnection } from '../common/kube-api.js';
import { AGENT } from '../deploy/objects.js';
import { VERSION } from '../common/version.js';
import { runNodeChecks, type CheckResult } from '../preflight/node-checks.js';
import { DaemonSetWatch, decideOnExit, type DaemonSetRef, type ExitDecision } from './exit-policy.js';
import { NodeChecksPublisher } from './node-checks-publisher.js';
import { setNetSysctlDir, teardownPodRouting } from './pod-routing.js';
import { closeListenTargets, listenTargets, openPodListeners } from './pod-sockets.js';
import { DataPlaneWorkers } from '../workers/data-plane-workers.js';
import { openOriginalDestinations, type OriginalDestinations } from '../redirect/orig-dst.js';

const log = logger('agent');

export class AgentSetupError extends WeftError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('WEFT_E_AGENT_SETUP', message, { hint, ...options });
  }
}

export interface Readiness {
  ready: boolean;
  /** why not ready (empty when ready) */
  reasons: string[];
}

export interface AgentDump extends ConfigDump {
  agent: { id: string; node: string; pid: number; ready: boolean; reasons: string[]; draining: boolean };
  enrolment: EnrolmentInfo[];
}

function readFileOrThrow(path: string, what: string, hint: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentSetupError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, hint, { cause: err });
  }
}

function requireCgroup2(): string {
  const m = cgroup2Mount();
  if (!m) throw new AgentSetupError('no cgroup v2 mount found in /proc/mounts', 'pods are found by their cgroup v2 path; mount cgroup2 (e.g. at /sys/fs/cgroup) or run with --no-redirect');
  return m;
}

/** What the agent takes from its surroundings; tests pass their own. */
export interface AgentEnvironment {
  /** Kubernetes API access (default: the in-cluster connection when in a pod; null: none) */
  kube?: KubeConnection | null;
  /** the agent's DaemonSet (default: weft-agent in $WEFT_POD_NAMESPACE) */
  daemonSet?: DaemonSetRef;
  /** the node checks to publish (default runNodeChecks) */
  nodeChecks?: () => Promise<CheckResult[]>;
  nodeChecksIntervalMs?: number;
}

export class Agent {
  readonly sync: NodeSync;
  readonly tls: TlsContexts;
  readonly proxy: ProxyNode;
  readonly registry = new Registry();
  private redirector?: Redirector;
  private enroller?: Enroller;
  /** data-plane threads besides this one (with redirection and --workers > 0) */
  workers?: DataPlaneWorkers;
  /** the original-destination map the workers borrow (open while they run) */
  private origDst?: OriginalDestinations;
  private readonly endpoints: Endpoint[] = [];
  private draining = false;
  private readyTimer?: NodeJS.Timeout;
  private stopped?: Promise<void>;
  private readonly kube: KubeConnection | undefined;
  private nodeChecks?: NodeChecksPublisher;
  private daemonSetWatch?: DaemonSetWatch;
  private readyFileWritten = false;
  /** set once stop() decided what to do with the pods */
  exitDecision?: ExitDecision;

  private constructor(readonly opts: AgentOptions, readonly env: AgentEnvironment = {}) {
    this.kube = env.kube ?? undefined;
    const rootPem = readFileOrThrow(opts.caRoot, 'the CA root', 'pass --ca-root with the controller\'s root certificate (the lab: <state>/controller/ca/ca-cert.pem)');
    readFileOrThrow(opts.tokenFile, 'the node token', 'pass --token-file with a token from `weft controller token --node NAME`');
    this.sync = new NodeSync({
      node: opts.node,
      address: opts.controller,
      rootCertPem: rootPem,
      token: () => readFileSync(opts.tokenFile, 'utf8').trim(),
      trustDomain: opts.trustDomain,
      xdsBackoff: { initialMs: 200, maxMs: 5000 },
      certBackoff: { initialMs: 250, maxMs: 30_000 },
    });
    this.tls = new TlsContexts(rootPem);
    this.sync.certs.on('issued', (c) => {
      if (c.rootsPem && c.rootsPem !== this.tls.rootsPem) this.tls.setRoots(c.rootsPem);
      this.tls.set(c.identity, { keyPem: c.keyPem, certChainPem: c.certChainPem });
    });
    this.sync.certs.on('dropped', (id) => this.tls.delete(id));
    this.proxy = new ProxyNode({
      nodeName: opts.node,
      mesh: meshViewOf(this.sync.state),
      tls: this.tls,
      trustDomain: opts.trustDomain,
      telemetry: new Telemetry({ registry: this.registry }),
    });
  }

  static async start(opts: AgentOptions, env: AgentEnvironment = {}): Promise<Agent> {
    // null: never talk to Kubernetes; undefined: the in-cluster config when running in a pod.
    const kube = env.kube === null ? null : (env.kube ?? inClusterConnection() ?? null);
    const a = new Agent(opts, { ...env, kube });
    try {
      await a.startParts();
    } catch (err) {
      await a.stop(0).catch(() => undefined);
      throw err;
    }
    return a;
  }

  private async startParts(): Promise<void> {
    const o = this.opts;
    if (o.redirect) {
      setNetSysctlDir(o.proc);
      this.redirector = await Redirector.open({ agentId: o.agentId, bpffs: o.bpffs, bypassMark: DEFAULT_BYPASS_MARK });
      if (o.workers > 0) {
        this.workers = new DataPlaneWorkers({
          count: o.workers, nodeName: o.node, trustDomain: o.trustDomain, state: this.sync.state, tls: this.tls,
          origDstMapFd: (this.origDst = openOriginalDestinations(this.redirector.pins.mapsDir)).fd, proxy: {}, registry: this.registry,
          openListeners: async (pod) => listenTargets(await openPodListeners(pod.net!.netnsPath, pod.net!.bypassMark)),
          closeListeners: closeListenTargets,
        });
        await this.workers.start();
      }
      this.enroller = new Enroller({
        node: o.node, trustDomain: o.trustDomain, state: this.sync.state, proxy: this.proxy, workers: this.workers, redirector: this.redirector,
        discovery: new PodDiscovery({ proc: o.proc, cgroupMount: requireCgroup2(), cgroupRoot: o.cgroupRoot }),
        registry: this.registry, bypassMark: DEFAULT_BYPASS_MARK,
      });
    }
    const get = handlers.getOnly;
    this.endpoints.push(await serve('admin', o.admin, {
      '/config_dump': get((_q, res) => handlers.json(res, 200, this.configDump())),
      '/connections': get((_q, res) => void this.allConnections().then(
        (c) => handlers.json(res, 200, c),
        (err: Error) => handlers.json(res, 500, { error: err.message }),
      )),
      '/logging': get(handlers.logging),
      '/healthz/ready': get((_q, res) => this.readyHandler(res)),
    }));
    const metrics = get((_q, res) => {
      // The workers' series are added to the main thread's (one process, one set of metrics).
      void (this.workers?.metrics() ?? Promise.resolve([])).then(
        (others) => res.writeHead(200, { 'content-type': Registry.contentType }).end(this.registry.render(others)),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    this.endpoints.push(await serve('metrics', o.metrics, { '/metrics': metrics, '/stats/prometheus': metrics }));
    this.endpoints.push(await serve('readiness', o.readiness, { '/healthz/ready': get((_q, res) => this.readyHandler(res)) }));
    this.sync.start();
    log.info({ node: o.node, controller: o.controller, agentId: o.agentId, redirect: o.redirect, onExit: o.onExit, kubernetes: !!this.kube }, 'agent started; waiting for xDS');
    if (this.kube) {
      this.nodeChecks = new NodeChecksPublisher({
        conn: this.kube, node: o.node, version: VERSION, run: this.env.nodeChecks ?? runNodeChecks, intervalMs: this.env.nodeChecksIntervalMs,
      });
      void this.nodeChecks.start();
      const ds = this.daemonSetRef();
      if (ds && o.onExit === 'auto' && this.redirector) {
        this.daemonSetWatch = new DaemonSetWatch(this.kube, ds);
        void this.daemonSetWatch.start();
      }
    }
    void this.afterSync();
  }

  private async afterSync(): Promise<void> {
    while (!this.draining) {
      try {
        await this.sync.waitSynced(30_000);
        break;
      } catch {
        log.warn({ controller: this.opts.controller, connected: this.sync.xds.connected }, 'still waiting for the first xDS sync');
      }
    }
    if (this.draining) return;
    log.info({ workloads: this.sync.state.workloads().length, identities: this.sync.localIdentities().length }, 'xDS synced');
    this.proxy.setReady();
    this.workers?.setReady();
    if (this.enroller) {
      try {
        await this.enroller.start();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'enrolment start-up failed');
      }
    }
    // Log every readiness transition; the first time ready, write --ready-file (the lab waits
    // for it: during a restart the old agent answers :15021 too, and logs may be filtered).
    let was: boolean | undefined;
    const watch = () => {
      const r = this.readiness();
      if (r.ready !== was) log.info(r, r.ready ? 'agent ready' : 'agent not ready');
      if (r.ready && !was && this.opts.readyFile && !this.readyFileWritten) {
        this.readyFileWritten = true;
        try {
          writeFileSync(this.opts.readyFile, JSON.stringify({ pid: process.pid, time: new Date().toISOString() }) + '\n');
        } catch (err) {
          log.warn({ err: (err as Error).message, file: this.opts.readyFile }, 'cannot write --ready-file');
        }
      }
      was = r.ready;
    };
    watch();
    this.readyTimer = setInterval(watch, 100);
    this.readyTimer.unref();
  }

  /** Releases every pod the pinned registry holds; returns their netns paths. */
  private async releaseRedirection(): Promise<string[]> {
    const r = this.redirector;
    if (!r) return [];
    const out: string[] = [];
    for (const p of await r.list().catch(() => [])) {
      try {
        await r.release(p.uid);
        out.push(p.netnsPath);
      } catch (err) {
        log.error({ uid: p.uid, err: (err as Error).message }, 'releasing a pod failed');
      }
    }
    return out;
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.draining) reasons.push('draining');
    if (!this.sync.xds.synced) reasons.push('xDS not synced');
    const missing = this.sync.localIdentities().filter((id) => !this.tls.has(id));
    if (missing.length) reasons.push(`waiting for certificates: ${missing.join(', ')}`);
    const pending = this.enroller?.pending() ?? 0;
    if (pending) reasons.push(`${pending} enrolment(s) pending`);
    return { ready: reasons.length === 0, reasons };
  }

  private readyHandler(res: import('node:http').ServerResponse): void {
    const r = this.readiness();
    res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n`);
  }

  configDump(): AgentDump {
    const base = configDump(this.sync.state, this.sync.certs.list(), { node: this.opts.node, connected: this.sync.xds.connected, synced: this.sync.xds.synced });
    const enrolment = this.enroller?.list() ?? [];
    const byUid = new Map(enrolment.map((e) => [e.uid, e]));
    const r = this.readiness();
    return {
      ...base,
      workloads: base.workloads.map((w) => {
        const e = byUid.get(w.uid);
        return e ? { ...w, enrolment: e.state, ...(e.error ? { enrolmentError: e.error } : {}) } : w;
      }),
      agent: { id: this.opts.agentId, node: this.opts.node, pid: process.pid, ready: r.ready, reasons: r.reasons, draining: this.draining },
      enrolment,
    };
  }

  /** Live proxied connections of every data-plane thread (`/connections`, `weft connections`). */
  async allConnections(): Promise<ConnectionSnapshot[]> {
    const others = (await this.workers?.connections()) ?? [];
    return [...this.proxy.connections(), ...others].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /**
   * Drain and stop: readiness false and ports closed at once (a new agent beside us takes new
   * connections), established connections get `deadlineMs`, then everything is closed.
   */
  stop(deadlineMs = this.opts.drainDeadlineMs): Promise<void> {
    this.stopped ??= this.doStop(deadlineMs);
    return this.stopped;
  }

  private daemonSetRef(): DaemonSetRef | undefined {
    if (this.env.daemonSet) return this.env.daemonSet;
    const ns = process.env.WEFT_POD_NAMESPACE;
    return ns ? { namespace: ns, name: AGENT } : undefined;
  }

  /** Decides (once) whether stopping releases the pods: no successor will take them over. */
  async decideExit(): Promise<ExitDecision> {
    this.exitDecision ??= this.redirector
      ? await decideOnExit({ mode: this.opts.onExit, kube: this.kube ? { conn: this.kube, daemonSet: this.daemonSetRef(), deletionSeen: this.daemonSetWatch?.deletionSeen } : undefined })
      : { release: false, reason: 'no redirection (--no-redirect)' };
    return this.exitDecision;
  }

  private async doStop(deadlineMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.readyTimer);
    if (this.opts.readyFile) {
      try {
        rmSync(this.opts.readyFile, { force: true });
      } catch (err) {
        log.warn({ err: (err as Error).message, file: this.opts.readyFile }, 'cannot remove --ready-file');
      }
    }
    this.nodeChecks?.stop();
    const t0 = Date.now();
    const decision = await this.decideExit();
    this.daemonSetWatch?.stop();
    log.info({ release: decision.release, reason: decision.reason }, decision.release ? 'no successor: releasing every pod' : 'pods stay captured for the next agent');
    log.info({ deadlineMs, connections: (await this.allConnections()).length }, 'draining');
    // Releasing must not race an enrolment in flight; keeping needs no wait.
    if (decision.release) await this.enroller?.stopAndWait(5000);
    else this.enroller?.stop();
    // Uninstall: switch capture off first, so new connections flow plaintext at once while the
    // proxied ones drain; the in-pod routing they use goes after the drain.
    const released = decision.release ? await this.releaseRedirection() : [];
    await Promise.all(this.endpoints.map((e) => e.close().catch(() => undefined)));
    // Every thread's pod proxies stop accepting (a new agent's SO_REUSEPORT listeners, with
    // tcp_migrate_req, take what is queued), GOAWAY their HBONE peers and give established
    // connections until the deadline.
    const remaining = Math.max(0, t0 + deadlineMs - Date.now());
    const [here, there] = await Promise.all([this.proxy.drain(remaining), this.workers?.drain(remaining) ?? 0]);
    if (here + there) log.warn({ connections: here + there }, 'drain deadline reached; closing the remaining connections');
    await this.proxy.close().catch((err: Error) => log.warn({ err: err.message }, 'closing the proxy failed'));
    await this.workers?.close().catch((err: Error) => log.warn({ err: err.message }, 'closing the data-plane workers failed'));
    this.origDst?.close();
    if (decision.release && this.redirector) {
      for (const netns of released) await teardownPodRouting(netns).catch(() => undefined);
      // Also pods whose release failed above, then the agent's pin directory and maps.
      await this.redirector.purge().catch((err: Error) => log.error({ err: err.message }, 'removing the pins failed'));
      log.info({ pods: released.length }, 'released every pod; pins removed');
    }
    this.redirector?.close();
    this.sync.stop();
    log.info({ ms: Date.now() - t0 }, 'agent stopped');
  }
}
