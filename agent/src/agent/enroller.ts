// Enrolment: make the pods this node runs in the mesh (xDS workloads on this node with tunnel
// protocol HBONE) match what is captured. For each such pod: find its netns and cgroup from
// its UID, set up in-pod routing, open its listeners, start its proxy and enrol redirection
// with the :15006 listener in place (inbound never fails open). Pods that leave the mesh are
// released in reverse. One task per pod at a time; failures are retried with capped backoff.
import { EventEmitter } from 'node:events';
import { logger } from '../common/log.js';
import { WeftError } from '../common/errors.js';
import { closeFd } from '../native/index.js';
import type { Redirector } from '../redirect/index.js';
import type { ProxyNode } from '../proxy/index.js';
import type { DataPlaneWorkers } from '../workers/data-plane-workers.js';
import type { Registry, Counter, Gauge } from '../telemetry/registry.js';
import type { WorkloadState } from '../state/workload-state.js';
import { workloadIdentity } from '../state/node-sync.js';
import { TunnelProtocol, type Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { ipFromBytes } from '../proxy/addresses.js';
import type { PodDiscovery, PodProcess } from './pod-discovery.js';
import { setupPodRouting, teardownPodRouting } from './pod-routing.js';
import { listenTargets, openPodListeners, podNetHooks, type PodListenerFds } from './pod-sockets.js';

const log = logger('enrolment');

export type EnrolmentState = 'pending' | 'enrolled' | 'failed' | 'skipped';

export interface EnrolmentInfo {
  uid: string;
  namespace: string;
  name: string;
  state: EnrolmentState;
  since: string;
  attempts: number;
  error?: string;
  nextAttemptAt?: string;
  pid?: number;
  netns?: string;
  cgroup?: string;
}

export class PodNotFoundError extends WeftError {
  constructor(uid: string, where: string) {
    super('WEFT_E_POD_NOT_FOUND', `no process of pod ${uid} found under ${where}`, {
      hint: 'the pod may not have started yet, or run on another node; the agent keeps retrying. Check --cgroup-root and --proc',
    });
  }
}

interface Entry {
  info: EnrolmentInfo;
  /** the workload this entry was enrolled for (its IP and identity) */
  ip?: string;
  identity?: string;
  netnsPath?: string;
  busy: boolean;
  attempt: number;
  timer?: NodeJS.Timeout;
}

export interface EnrollerOptions {
  node: string;
  trustDomain: string;
  state: WorkloadState;
  proxy: ProxyNode;
  /** data-plane worker threads beside the main thread's proxy (each serves every pod too) */
  workers?: DataPlaneWorkers;
  redirector: Redirector;
  discovery: PodDiscovery;
  registry: Registry;
  bypassMark: number;
  /** retry backoff (default 250 ms doubling to 30 s) */
  backoff?: { initialMs: number; maxMs: number };
  /** pods enrolled at once (default 8) */
  concurrency?: number;
}

function podIpv4(w: Workload): string | undefined {
  return w.addresses.map(ipFromBytes).find((ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip));
}

export class Enroller extends EventEmitter<{ change: [] }> {
  private readonly entries = new Map<string, Entry>();
  private readonly changes: Counter;
  private readonly pendingGauge: Gauge;
  private readonly enrolledGauge: Gauge;
  private readonly failedGauge: Gauge;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private scheduled = false;
  private stopped = false;
  private started = false;
  private readonly onState = () => this.kick();

  constructor(private readonly opts: EnrollerOptions) {
    super();
    this.changes = opts.registry.counter('weft_enrolment_changes_total', 'Pod enrolment changes on this node, by result', ['result']);
    const count = (s: EnrolmentState) => [...this.entries.values()].filter((e) => e.info.state === s).length;
    this.pendingGauge = opts.registry.gauge('weft_enrolment_pending', 'Pods waiting to be enrolled', [], (g) => g.set({}, count('pending')));
    this.enrolledGauge = opts.registry.gauge('weft_pods_enrolled', 'Pods whose traffic this agent captures', [], (g) => g.set({}, count('enrolled')));
    this.failedGauge = opts.registry.gauge('weft_enrolment_failed', 'Pods that could not be enrolled (retried with backoff)', [], (g) => g.set({}, count('failed')));
    void this.pendingGauge; void this.enrolledGauge; void this.failedGauge;
  }

  /** The mesh pods of this node, from xDS. */
  desired(): Map<string, Workload> {
    const out = new Map<string, Workload>();
    for (const w of this.opts.state.workloadsOnNode(this.opts.node)) if (w.tunnelProtocol === TunnelProtocol.HBONE) out.set(w.uid, w);
    return out;
  }

  /**
   * Start-up: reconcile the pinned BPF state with xDS (stale pods released, registered pods
   * that are still in the mesh repaired in place), then enrol every mesh pod with its listeners.
   */
  async start(): Promise<void> {
    const desired = this.desired();
    const scan = this.opts.discovery.scan();
    const registered = await this.opts.redirector.list();
    const specs = [];
    for (const r of registered) {
      const w = desired.get(r.uid);
      const ip = w && podIpv4(w);
      if (!w || !ip) continue;
      const p = scan.pods.get(r.uid);
      specs.push({ uid: r.uid, netnsPath: p?.netnsPath ?? r.netnsPath, cgroupPath: p?.cgroupPath ?? r.cgroupPath, ip, nodeGatewayIp: r.nodeGatewayIp });
    }
    const res = await this.opts.redirector.reconcile(specs);
    for (const uid of res.released) {
      const r = registered.find((x) => x.uid === uid);
      if (r) await teardownPodRouting(r.netnsPath).catch(() => undefined);
      this.changes.inc({ result: 'released' });
    }
    log.info({ kept: res.enrolled.length, released: res.released.length, failed: res.failed.map((f) => ({ uid: f.uid, error: f.error.message })) }, 'reconciled pinned redirection state with xDS');
    this.started = true;
    this.opts.state.on('change', this.onState);
    this.sync();
    await this.settled();
  }

  /** Resolves when no enrolment is pending or in flight. */
  async settled(): Promise<void> {
    while (!this.stopped && this.pending() > 0) await new Promise((r) => setTimeout(r, 20));
  }

  pending(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.info.state === 'pending' || e.busy) n++;
    // A desired pod without an entry yet is pending too (sync runs on the next tick).
    if (this.started) for (const uid of this.desired().keys()) if (!this.entries.has(uid)) n++;
    return n;
  }

  list(): EnrolmentInfo[] {
    return [...this.entries.values()].map((e) => ({ ...e.info })).sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  }

  info(uid: string): EnrolmentInfo | undefined {
    const e = this.entries.get(uid);
    return e ? { ...e.info } : undefined;
  }

  kick(): void {
    if (this.scheduled || this.stopped || !this.started) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sync();
    });
  }

  private sync(): void {
    if (this.stopped) return;
    const desired = this.desired();
    for (const [uid, w] of desired) {
      let e = this.entries.get(uid);
      if (!e) {
        e = { info: { uid, namespace: w.namespace, name: w.name, state: 'pending', since: new Date().toISOString(), attempts: 0 }, busy: false, attempt: 0 };
        this.entries.set(uid, e);
        log.info({ uid, pod: `${w.namespace}/${w.name}` }, 'pod joined the mesh: enrolling');
      }
      const ip = podIpv4(w);
      const changed = e.info.state === 'enrolled' && (e.ip !== ip || e.identity !== workloadIdentity(w, this.opts.trustDomain));
      if (!e.busy && (e.info.state === 'pending' || changed)) this.launch(e, () => (changed ? this.reenrol(e, w) : this.enrol(e, w)));
    }
    for (const [uid, e] of this.entries) {
      if (desired.has(uid) || e.busy) continue;
      clearTimeout(e.timer);
      if (e.info.state === 'enrolled') {
        log.info({ uid, pod: `${e.info.namespace}/${e.info.name}` }, 'pod left the mesh: releasing');
        this.launch(e, () => this.release(e, true));
      } else {
        this.entries.delete(uid);
        this.emit('change');
      }
    }
  }

  private launch(e: Entry, task: () => Promise<void>): void {
    e.busy = true;
    clearTimeout(e.timer);
    void this.slot(task)
      .catch((err: Error) => log.error({ uid: e.info.uid, err: err.message }, 'enrolment task failed unexpectedly'))
      .finally(() => {
        e.busy = false;
        this.emit('change');
        this.kick();
      });
  }

  private async slot<T>(f: () => Promise<T>): Promise<T> {
    const limit = this.opts.concurrency ?? 8;
    if (this.running >= limit) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await f();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private setState(e: Entry, state: EnrolmentState, extra: Partial<EnrolmentInfo> = {}): void {
    const { error: _e, nextAttemptAt: _n, ...rest } = e.info;
    e.info = { ...rest, ...extra, state, since: state === e.info.state ? e.info.since : new Date().toISOString() };
    this.emit('change');
  }

  private async reenrol(e: Entry, w: Workload): Promise<void> {
    await this.release(e, false);
    if (!this.stopped) await this.enrol(e, w);
  }

  private async enrol(e: Entry, w: Workload): Promise<void> {
    if (this.stopped) return;
    const uid = w.uid;
    const started = performance.now();
    e.info.attempts++;
    const ip = podIpv4(w);
    const identity = workloadIdentity(w, this.opts.trustDomain);
    let fds: PodListenerFds | undefined;
    let handed = false;
    let proc: PodProcess | undefined;
    try {
      if (!ip) throw new WeftError('WEFT_E_POD_NO_IPV4', `pod ${w.namespace}/${w.name} has no IPv4 address in xDS`, { hint: 'IPv6-only pods are not captured yet' });
      const scan = this.opts.discovery.scan();
      const skip = scan.skipped.get(uid);
      if (skip) {
        log.warn({ uid, pod: `${w.namespace}/${w.name}`, reason: skip.reason }, 'pod is never captured');
        this.setState(e, 'skipped', { error: skip.reason });
        return;
      }
      proc = scan.pods.get(uid);
      if (!proc) throw new PodNotFoundError(uid, 'this node\'s cgroups');
      const routing = await setupPodRouting(proc.netnsPath);
      fds = await openPodListeners(proc.netnsPath, this.opts.bypassMark);
      const netns = proc.netnsPath;
      const redirector = this.opts.redirector;
      const pod = this.opts.proxy.addPod({
        uid, ips: [ip], identity,
        hooks: podNetHooks(netns, this.opts.bypassMark, (cookie, port) => redirector.takeOriginalDestination(cookie, port)),
      });
      handed = true;
      await pod.listen(listenTargets(fds));
      await this.opts.workers?.addPod({ uid, ips: [ip], identity, net: { netnsPath: netns, bypassMark: this.opts.bypassMark } });
      await redirector.enrol(
        { uid, netnsPath: proc.netnsPath, cgroupPath: proc.cgroupPath, ip, nodeGatewayIp: routing.gateway },
        { inboundListenerFd: fds.inboundPlaintext },
      );
      e.ip = ip;
      e.identity = identity;
      e.netnsPath = proc.netnsPath;
      e.attempt = 0;
      this.setState(e, 'enrolled', { pid: proc.pid, netns: proc.netnsPath, cgroup: proc.cgroupPath });
      this.changes.inc({ result: 'enrolled' });
      log.info({ uid, pod: `${w.namespace}/${w.name}`, ip, identity, pid: proc.pid, netns: proc.netnsPath, cgroup: proc.cgroupPath, ms: Math.round(performance.now() - started) }, 'pod enrolled');
    } catch (err) {
      // Undo whatever was made, in reverse.
      if (handed) {
        await this.opts.proxy.removePod(uid).catch(() => undefined);
        await this.opts.workers?.removePod(uid);
      }
      else if (fds) for (const fd of Object.values(fds)) closeFd(fd);
      if (proc) {
        await this.opts.redirector.release(uid).catch(() => undefined);
        await teardownPodRouting(proc.netnsPath).catch(() => undefined);
      }
      const backoff = this.opts.backoff ?? { initialMs: 250, maxMs: 30_000 };
      const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** e.attempt++);
      const message = (err as Error).message;
      this.changes.inc({ result: 'failed' });
      this.setState(e, 'failed', { error: message, nextAttemptAt: new Date(Date.now() + delay).toISOString() });
      log.warn({ uid, pod: `${w.namespace}/${w.name}`, err: message, code: (err as WeftError).code, retryInMs: delay }, 'pod enrolment failed; will retry');
      e.timer = setTimeout(() => {
        if (this.stopped || e.busy || this.entries.get(uid) !== e) return;
        const cur = this.desired().get(uid);
        if (!cur) return this.kick();
        this.launch(e, () => this.enrol(e, cur));
      }, delay);
      e.timer.unref();
    }
  }

  private async release(e: Entry, forget: boolean): Promise<void> {
    const uid = e.info.uid;
    try {
      await this.opts.proxy.removePod(uid);
      await this.opts.workers?.removePod(uid);
      await this.opts.redirector.release(uid);
      if (e.netnsPath) await teardownPodRouting(e.netnsPath);
      this.changes.inc({ result: 'released' });
      log.info({ uid, pod: `${e.info.namespace}/${e.info.name}` }, 'pod released');
    } catch (err) {
      this.changes.inc({ result: 'failed' });
      log.warn({ uid, err: (err as Error).message }, 'pod release failed; reconcile at the next start finishes it');
    }
    if (forget) this.entries.delete(uid);
    else this.setState(e, 'pending');
  }

  /** Stop enrolling (pins stay: a restarted agent picks the pods up again). */
  stop(): void {
    this.stopped = true;
    this.opts.state.off('change', this.onState);
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  /** stop(), then wait (up to timeoutMs) for enrolments in flight to finish or roll back. */
  async stopAndWait(timeoutMs: number): Promise<void> {
    this.stop();
    const deadline = Date.now() + timeoutMs;
    while ([...this.entries.values()].some((e) => e.busy) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
