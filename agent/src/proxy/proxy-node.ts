// The node proxy: what every pod proxy on this node shares — the mesh view, TLS material,
// the HBONE pool, connection tracking and telemetry — and the pod proxies themselves, so a
// connection between two local pods can stay in process. A mesh change re-checks every
// connection whose policy this node enforces.
import { EventEmitter } from 'node:events';
import { logger } from '../common/log.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { ConnectionTracker, type ConnectionSnapshot } from './connection-tracker.js';
import { HbonePool, type HbonePoolOptions } from './hbone-pool.js';
import type { MeshView } from './mesh-view.js';
import type { TlsContexts } from './tls-contexts.js';
import type { AppDialer, InboundEnv } from './inbound.js';
import { HBONE_PORT, type OutboundEnv } from './outbound.js';
import { PodProxy, type PodProxyOptions } from './pod-proxy.js';
import { normalizeIp } from './addresses.js';
import { NotReadyError } from './errors.js';
import { InvalidArgumentError } from '../common/errors.js';

const log = logger('proxy');

export interface ProxyNodeOptions {
  nodeName: string;
  mesh: MeshView;
  tls: TlsContexts;
  trustDomain?: string;
  telemetry?: Telemetry;
  pool?: Partial<HbonePoolOptions>;
  /** TLS handshake deadline on :15008 (default 10 s) */
  handshakeTimeoutMs?: number;
  /** deadline to connect to an app or passthrough target (default 10 s) */
  connectTimeoutMs?: number;
  /** how long a connection waits for readiness before it is refused (default 10 s) */
  readyWaitMs?: number;
  /** the HBONE port dialled on peers (default 15008) */
  hbonePort?: number;
  /** start ready (default false: call setReady() once state and certificates are in) */
  ready?: boolean;
}

export class ProxyNode extends EventEmitter<{ ready: [] }> {
  readonly mesh: MeshView;
  readonly tls: TlsContexts;
  readonly telemetry: Telemetry;
  readonly tracker: ConnectionTracker;
  readonly pool: HbonePool;
  readonly trustDomain: string;
  readonly options: { handshakeTimeoutMs: number; connectTimeoutMs: number; readyWaitMs: number; hbonePort: number };
  readonly outboundEnv: OutboundEnv;
  private readonly podsByUid = new Map<string, PodProxy>();
  private readonly podsByIp = new Map<string, PodProxy>();
  private ready: boolean;
  private readonly unsubscribe: () => void;

  constructor(opts: ProxyNodeOptions) {
    super();
    this.setMaxListeners(0);
    this.mesh = opts.mesh;
    this.tls = opts.tls;
    this.tls.setMaxListeners(0);
    this.trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.telemetry = opts.telemetry ?? new Telemetry();
    this.tracker = new ConnectionTracker(this.telemetry);
    this.pool = new HbonePool(this.tls, opts.pool);
    this.ready = opts.ready ?? false;
    this.options = {
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      readyWaitMs: opts.readyWaitMs ?? 10_000,
      hbonePort: opts.hbonePort ?? HBONE_PORT,
    };
    this.outboundEnv = {
      mesh: this.mesh,
      tracker: this.tracker,
      pool: this.pool,
      nodeName: opts.nodeName,
      hbonePort: this.options.hbonePort,
      connectTimeoutMs: this.options.connectTimeoutMs,
      localPod: (ip) => this.podsByIp.get(ip),
    };
    this.unsubscribe = this.mesh.onChange(() => {
      const n = this.tracker.recheckAll();
      if (n) log.info({ closed: n }, 'closed connections no longer allowed by policy');
    });
  }

  inboundEnv(dialApp: AppDialer): InboundEnv {
    return { mesh: this.mesh, tracker: this.tracker, dialApp, connectTimeoutMs: this.options.connectTimeoutMs };
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Marks workload state as synced; waiting connections proceed (once their pod has a cert). */
  setReady(ready = true): void {
    this.ready = ready;
    if (ready) this.emit('ready');
  }

  /** Resolves when the node is ready and `identity` has a certificate; rejects after readyWaitMs. */
  waitReady(identity: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!this.ready || !this.tls.has(identity)) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new NotReadyError(this.options.readyWaitMs));
      }, this.options.readyWaitMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('ready', check);
        this.tls.off('rotated', check);
      };
      this.on('ready', check);
      this.tls.on('rotated', check);
      check();
    });
  }

  /** Creates the proxy of one enrolled pod; call listen() on it with its netns listener fds. */
  addPod(opts: PodProxyOptions): PodProxy {
    if (this.podsByUid.has(opts.uid)) throw new InvalidArgumentError('uid', `pod ${opts.uid} already has a proxy`);
    if (opts.ips.length === 0) throw new InvalidArgumentError('ips', `pod ${opts.uid} has no IP address`);
    const pod = new PodProxy(this, { ...opts, ips: opts.ips.map(normalizeIp) });
    this.podsByUid.set(opts.uid, pod);
    for (const ip of pod.ips) this.podsByIp.set(ip, pod);
    return pod;
  }

  pod(uid: string): PodProxy | undefined {
    return this.podsByUid.get(uid);
  }

  podByIp(ip: string): PodProxy | undefined {
    return this.podsByIp.get(ip);
  }

  pods(): PodProxy[] {
    return [...this.podsByUid.values()];
  }

  /** Closes one pod's proxy (pod released or deleted). */
  async removePod(uid: string): Promise<void> {
    const pod = this.podsByUid.get(uid);
    if (!pod) return;
    this.podsByUid.delete(uid);
    for (const ip of pod.ips) if (this.podsByIp.get(ip) === pod) this.podsByIp.delete(ip);
    await pod.close();
  }

  /** Inbound HBONE sessions open on this node's pods. */
  hboneSessions(): number {
    let n = 0;
    for (const p of this.podsByUid.values()) n += p.hbone.sessionCount;
    return n;
  }

  /** Live connections, for the admin endpoint and `weft connections`. */
  connections(): ConnectionSnapshot[] {
    return this.tracker.list();
  }

  /**
   * Graceful stop of every pod proxy: listeners close (a SO_REUSEPORT peer, with
   * tcp_migrate_req, takes what is queued), HBONE peers get the two-step GOAWAY, and
   * established connections get until `deadlineMs` from now. Resolves with how many are left.
   */
  async drain(deadlineMs: number): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    const left = () => Math.max(0, deadline - Date.now());
    const pods = this.pods();
    for (const p of pods) void p.drain(deadlineMs).catch(() => undefined);
    // Sessions still in their TLS handshake when the listeners closed show up later: each
    // round GOAWAYs the new ones too.
    do {
      await new Promise((r) => setTimeout(r, Math.min(500, left())));
      await Promise.all(pods.map((p) => p.hbone.drain(Math.min(500, left())).catch(() => undefined)));
    } while (this.tracker.size > 0 && left() > 0);
    return this.tracker.size;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await Promise.all(this.pods().map((p) => this.removePod(p.uid)));
    this.pool.close();
  }
}
