// The agent's data-plane worker threads, seen from the main thread. Each worker is a replica of
// the node proxy with its own listeners in every enrolled pod's netns; all of a pod's listeners
// (the main thread's and each worker's) join one SO_REUSEPORT group per port, so the kernel
// spreads new connections over the threads (on kernels >= 6.5 also those tc ingress hands over
// with bpf_sk_assign). This class keeps every worker in step with the main thread (xDS state,
// certificates, readiness, pods), adds up their metrics and connections, and restarts a worker
// that dies: its connections are lost, as with a crashed ztunnel, the agent is not.
import { Worker } from 'node:worker_threads';
import { logLevel, logger, onLogLevel } from '../common/log.js';
import { InvalidArgumentError, WeftError } from '../common/errors.js';
import type { WorkloadState } from '../state/workload-state.js';
import type { TlsContexts } from '../proxy/tls-contexts.js';
import type { ListenOptions } from '../proxy/pod-proxy.js';
import type { ConnectionSnapshot } from '../proxy/connection-tracker.js';
import type { XdsResource, XdsUpdate } from '../xds/client.js';
import type { MetricSnapshot, Registry, Counter } from '../telemetry/registry.js';
import type { Call, FromWorker, ToWorker, WorkerInit, WorkerPod } from './messages.js';

const log = logger('data-plane');

/** Why a call to a worker failed: it answered with an error, died, took too long, or was not running. */
export type WorkerCallFailure = 'failed' | 'exited' | 'timeout' | 'down';

export class WorkerCallError extends WeftError {
  constructor(readonly worker: number, readonly method: string, readonly reason: WorkerCallFailure, detail: string) {
    super('WEFT_E_WORKER_CALL', `data-plane worker ${worker}: ${method}: ${detail}`, {
      hint: 'a worker that dies is restarted; see the agent log for the cause',
    });
  }
}

/** A pod as the workers serve it, without listeners (each worker gets its own set). */
export type WorkerPodSpec = Omit<WorkerPod, 'listen'>;

export interface DataPlaneWorkersOptions extends Omit<WorkerInit, 'index' | 'rootsPem' | 'logLevel'> {
  /** worker threads besides the main thread */
  count: number;
  state: WorkloadState;
  tls: TlsContexts;
  /** opens one worker's listeners for a pod (the agent: in its netns, SO_REUSEPORT) */
  openListeners: (pod: WorkerPodSpec) => Promise<ListenOptions>;
  /** closes listeners a worker never took */
  closeListeners?: (l: ListenOptions) => void;
  registry?: Registry;
  /** restart delay after a worker died (default 250 ms doubling to 30 s) */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** how long a call to a worker may take (default 15 s; drain: its deadline plus this) */
  callTimeoutMs?: number;
  /** how long a metrics or connections query may take (default 2 s: under a scrape's timeout) */
  queryTimeoutMs?: number;
}

interface Slot {
  index: number;
  worker?: Worker;
  /** replies awaited from the current worker */
  calls: Map<number, { resolve: (v: unknown) => void; reject: (reason: WorkerCallFailure, detail: string) => void; timer: NodeJS.Timeout }>;
  /** resolves when the current worker has every pod */
  up?: Promise<void>;
  /** pods the current worker has or is being given (a pod added while a restarted worker is
   * being replayed must reach it once, not twice) */
  pods: Map<string, WorkerPodSpec>;
  failures: number;
  startedAt: number;
  restartTimer?: NodeJS.Timeout;
  /** the current worker's last metrics (used when it does not answer in time, retired when it dies) */
  lastMetrics?: MetricSnapshot[];
}

const WORKER_URL = new URL('./data-plane-worker.js', import.meta.url);

export class DataPlaneWorkers {
  private readonly slots: Slot[] = [];
  private readonly pods = new Map<string, WorkerPodSpec>();
  /** the last state per xDS type (name → resource), replayed to a (re)started worker */
  private readonly resources = new Map<string, Map<string, XdsResource>>();
  private ready = false;
  private closing = false;
  private nextCall = 1;
  private readonly restarts?: Counter;
  private readonly unsubscribe: Array<() => void> = [];
  /** counters of workers that died, as last read: kept in the sums so totals never go back */
  private readonly retired: MetricSnapshot[][] = [];

  constructor(private readonly opts: DataPlaneWorkersOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 0) throw new InvalidArgumentError('count', `must be a whole number >= 0, not ${opts.count}`);
    // Workers start from the updates remembered here: none may have been applied before.
    if (opts.state.workloads().length || opts.state.services().length || opts.state.policies().length) {
      throw new InvalidArgumentError('state', 'already holds resources: create the workers before the first xDS update');
    }
    this.restarts = opts.registry?.counter('weft_data_plane_worker_restarts_total', 'Data-plane worker threads restarted after they died');
    const onApplied = (u: XdsUpdate) => {
      this.remember(u);
      this.broadcast({ t: 'state', update: u });
    };
    const onRotated = (identity: string) => this.sendCert(identity);
    const onDeleted = (identity: string) => this.broadcast({ t: 'certDeleted', identity });
    opts.state.on('applied', onApplied);
    opts.tls.on('rotated', onRotated);
    opts.tls.on('deleted', onDeleted);
    this.unsubscribe.push(
      () => opts.state.off('applied', onApplied),
      () => opts.tls.off('rotated', onRotated),
      () => opts.tls.off('deleted', onDeleted),
      onLogLevel((level) => this.broadcast({ t: 'logLevel', level })),
    );
    for (let i = 1; i <= opts.count; i++) this.slots.push({ index: i, calls: new Map(), pods: new Map(), failures: 0, startedAt: 0 });
  }

  get count(): number {
    return this.slots.length;
  }

  /** The worker threads running now (diagnostics and tests). */
  threads(): Worker[] {
    return this.live().map((s) => s.worker!);
  }

  /** Starts every worker; resolves when each has the current state and pods. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.spawn(s)));
  }

  setReady(): void {
    this.ready = true;
    this.broadcast({ t: 'ready' });
  }

  /** Serves a pod on every worker (each with its own listeners); undone on every worker if one fails. */
  async addPod(pod: WorkerPodSpec): Promise<void> {
    this.pods.set(pod.uid, pod);
    try {
      await Promise.all(this.slots.map((s) => (s.worker ? this.addPodTo(s, pod) : undefined)));
    } catch (err) {
      await this.removePod(pod.uid);
      throw err;
    }
  }

  async removePod(uid: string): Promise<void> {
    this.pods.delete(uid);
    for (const s of this.slots) s.pods.delete(uid);
    await Promise.all(this.live().map((s) => this.call(s, { method: 'removePod', uid }).catch((err: Error) => log.warn({ worker: s.index, uid, err: err.message }, 'removing a pod from a worker failed'))));
  }

  /** Every worker's live connections (a worker that does not answer is left out, with a warning). */
  async connections(): Promise<ConnectionSnapshot[]> {
    return (await this.fromEach<ConnectionSnapshot[]>({ method: 'connections' }, this.queryTimeout)).flat();
  }

  /**
   * Every worker's metrics, for the main registry to add to its own. A worker that does not
   * answer in time counts with its last reading, and a dead one's counters stay in, so the
   * summed counters never go back (Prometheus would read that as a reset).
   */
  async metrics(): Promise<MetricSnapshot[][]> {
    const now = await Promise.all(this.live().map((s) => this.call(s, { method: 'metrics' }, this.queryTimeout).then(
      (v) => (s.lastMetrics = v as MetricSnapshot[]),
      () => s.lastMetrics ?? [],
    )));
    return [...this.retired, ...now];
  }

  private get queryTimeout(): number {
    return this.opts.queryTimeoutMs ?? 2000;
  }

  /** Drains every worker (see ProxyNode.drain); resolves with the connections left. */
  async drain(deadlineMs: number): Promise<number> {
    this.closing = true;
    const left = await this.fromEach<number>({ method: 'drain', deadlineMs }, deadlineMs + this.callTimeout);
    return left.reduce((a, b) => a + b, 0);
  }

  /** Closes every worker's proxy and ends the threads. */
  async close(): Promise<void> {
    this.closing = true;
    for (const u of this.unsubscribe.splice(0)) u();
    await Promise.all(this.slots.map(async (s) => {
      clearTimeout(s.restartTimer);
      if (!s.worker) return;
      await this.call(s, { method: 'close' }).catch((err: Error) => log.warn({ worker: s.index, err: err.message }, 'closing a worker\'s proxy failed'));
      await s.worker?.terminate();
    }));
  }

  private live(): Slot[] {
    return this.slots.filter((s) => s.worker);
  }

  private get callTimeout(): number {
    return this.opts.callTimeoutMs ?? 15_000;
  }

  private async fromEach<T>(c: Call, timeoutMs: number): Promise<T[]> {
    const out = await Promise.all(this.live().map((s) => this.call(s, c, timeoutMs).then(
      (v) => ({ v: v as T }),
      (err: Error) => {
        log.warn({ worker: s.index, method: c.method, err: err.message }, 'a data-plane worker did not answer');
        return undefined;
      },
    )));
    return out.filter((x) => x !== undefined).map((x) => x.v);
  }

  private remember(u: XdsUpdate): void {
    let byName = this.resources.get(u.typeUrl);
    if (!byName) this.resources.set(u.typeUrl, (byName = new Map()));
    for (const name of u.removed) byName.delete(name);
    // Last write last: a replay must resolve an IP two workloads held in turn as the main thread does.
    for (const r of u.resources) {
      byName.delete(r.name);
      byName.set(r.name, r);
    }
  }

  private sendCert(identity: string, to?: Slot): void {
    const cert = this.opts.tls.certificate(identity);
    if (!cert) return;
    const m: ToWorker = { t: 'cert', identity, cert, rootsPem: this.opts.tls.rootsPem };
    if (to) to.worker?.postMessage(m);
    else this.broadcast(m);
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.live()) s.worker!.postMessage(m);
  }

  private async addPodTo(s: Slot, pod: WorkerPodSpec): Promise<void> {
    if (s.pods.get(pod.uid) === pod) return;
    const pods = s.pods;
    pods.set(pod.uid, pod);
    const forget = () => {
      if (pods.get(pod.uid) === pod) pods.delete(pod.uid);
    };
    let listen: ListenOptions | undefined;
    const worker = s.worker;
    try {
      listen = await this.opts.openListeners(pod);
      // Released meanwhile, or the worker was replaced (its replay adds the pod): not for it.
      if (this.pods.get(pod.uid) !== pod || s.worker !== worker || s.pods !== pods) {
        this.opts.closeListeners?.(listen);
        forget();
        return;
      }
      await this.call(s, { method: 'addPod', pod: { ...pod, listen } });
    } catch (err) {
      forget();
      // Once posted, the listeners are the worker's (its servers close them, or its exit does).
      if (listen && (err as WorkerCallError).reason === 'down') this.opts.closeListeners?.(listen);
      throw err;
    }
  }

  private spawn(s: Slot): Promise<void> {
    const init: WorkerInit = {
      index: s.index,
      nodeName: this.opts.nodeName,
      trustDomain: this.opts.trustDomain,
      rootsPem: this.opts.tls.rootsPem,
      logLevel: logLevel(),
      ...(this.opts.origDstMapFd !== undefined ? { origDstMapFd: this.opts.origDstMapFd } : {}),
      proxy: this.opts.proxy,
    };
    const w = new Worker(WORKER_URL, { workerData: init, name: `weft-data-plane-${s.index}` });
    s.worker = w;
    s.pods = new Map();
    s.startedAt = Date.now();
    w.on('message', (m: FromWorker) => {
      const c = s.calls.get(m.id);
      if (!c) return;
      s.calls.delete(m.id);
      clearTimeout(c.timer);
      if (m.error) c.reject('failed', m.error.message);
      else c.resolve(m.value);
    });
    w.on('error', (err) => log.error({ worker: s.index, err: err.message, stack: err.stack }, 'data-plane worker failed'));
    w.on('exit', (code) => this.exited(s, w, code));
    // Everything the main thread knows, in order: state, certificates, readiness, then pods.
    for (const [typeUrl, byName] of this.resources) w.postMessage({ t: 'state', update: { typeUrl, resources: [...byName.values()], removed: [] } } satisfies ToWorker);
    for (const identity of this.opts.tls.identities()) this.sendCert(identity, s);
    if (this.ready) w.postMessage({ t: 'ready' } satisfies ToWorker);
    s.up = Promise.all([...this.pods.values()].map((p) => this.addPodTo(s, p).catch((err: Error) => {
      log.error({ worker: s.index, uid: p.uid, err: err.message }, 'a worker could not serve a pod; the other threads do');
    }))).then(() => undefined);
    return s.up;
  }

  private exited(s: Slot, w: Worker | undefined, code: number): void {
    if (s.worker !== w) return;
    s.worker = undefined;
    for (const [, c] of s.calls) {
      clearTimeout(c.timer);
      c.reject('exited', `the worker exited (code ${code})`);
    }
    s.calls.clear();
    const counters = s.lastMetrics?.filter((m) => m.type === 'counter');
    if (counters?.length) this.retired.push(counters);
    s.lastMetrics = undefined;
    if (this.closing) return;
    // A worker that ran a minute counts as healthy again: the backoff starts over.
    s.failures = Date.now() - s.startedAt > 60_000 ? 1 : s.failures + 1;
    const b = this.opts.restartBackoff ?? { initialMs: 250, maxMs: 30_000 };
    const delay = Math.min(b.maxMs, b.initialMs * 2 ** (s.failures - 1));
    log.error({ worker: s.index, code, restartInMs: delay }, 'data-plane worker exited; its connections are lost, restarting it');
    this.restarts?.inc();
    s.restartTimer = setTimeout(() => {
      if (this.closing) return;
      try {
        void this.spawn(s);
      } catch (err) {
        // new Worker() itself failed (resources): try again later, as after a crash.
        log.error({ worker: s.index, err: (err as Error).message }, 'data-plane worker could not be started');
        this.exited(s, undefined, -1);
      }
    }, delay);
    s.restartTimer.unref();
  }

  private call(s: Slot, c: Call, timeoutMs = this.callTimeout): Promise<unknown> {
    const w = s.worker;
    if (!w) return Promise.reject(new WorkerCallError(s.index, c.method, 'down', 'the worker is not running'));
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      const fail = (reason: WorkerCallFailure, detail: string) => reject(new WorkerCallError(s.index, c.method, reason, detail));
      const timer = setTimeout(() => {
        s.calls.delete(id);
        fail('timeout', 'the worker did not answer in time');
      }, timeoutMs);
      timer.unref();
      s.calls.set(id, { resolve, reject: fail, timer });
      w.postMessage({ t: 'call', id, ...c } satisfies ToWorker);
    });
  }
}
