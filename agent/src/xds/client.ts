// Delta ADS client, the agent's side. Subscribes (wildcard) to the configured type URLs, hands
// each response to `apply` and ACKs it, or NACKs it with the error when `apply` throws (the
// caller keeps its last good state). Reconnects with capped exponential backoff and resumes
// with initial_resource_versions. A stream with no response within firstResponseTimeoutMs is
// redialled on a new channel: grpc-js has no connect timeout, so a connection attempt whose SYN
// is never answered (a Service IP before kube-proxy has programmed it) would hang for minutes.
import { EventEmitter } from 'node:events';
import { credentials, makeGenericClientConstructor, Metadata, status, type ClientDuplexStream, type Client, type ChannelOptions } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { JsonObject } from '@bufbuild/protobuf';
import { logger } from '../common/log.js';
import { aggregatedDiscoveryService } from './grpc-services.js';
import {
  DeltaDiscoveryRequestSchema, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';
import { channelOptions, type ControlPlaneConnection } from './connection.js';

export interface XdsResource {
  name: string;
  version: string;
  resource: Any;
}

export interface XdsUpdate {
  typeUrl: string;
  resources: XdsResource[];
  removed: string[];
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export interface DeltaAdsClientOptions extends ControlPlaneConnection {
  node: { id: string; metadata?: JsonObject };
  typeUrls: readonly string[];
  /** Applies one response atomically; throw to NACK it. */
  apply: (update: XdsUpdate) => void;
  backoff?: Backoff;
  /** a stream with no response by then is given up and redialled on a new channel (default 15 s) */
  firstResponseTimeoutMs?: number;
}

export interface ClientNack {
  typeUrl: string;
  nonce: string;
  reason: string;
}

type AdsStub = Client & {
  DeltaAggregatedResources(md: Metadata): ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
};
const AdsCtor = makeGenericClientConstructor(aggregatedDiscoveryService as never, 'AggregatedDiscoveryService') as unknown as new (
  address: string, creds: ReturnType<typeof credentials.createSsl>, options?: ChannelOptions,
) => AdsStub;

export const DEFAULT_XDS_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };
export const DEFAULT_FIRST_RESPONSE_TIMEOUT_MS = 15_000;

export function backoffDelay(attempt: number, b: Backoff, random = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class DeltaAdsClient extends EventEmitter<{
  connected: [];
  disconnected: [{ code?: number; details?: string }];
  synced: [string];
  ack: [{ typeUrl: string; nonce: string }];
  nack: [ClientNack];
}> {
  private readonly log = logger('xds-client');
  private stub: AdsStub;
  private stream: ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = true;
  /** what this client holds, per type: name -> version (sent as initial_resource_versions) */
  readonly versions = new Map<string, Map<string, string>>();
  private readonly syncedTypes = new Set<string>();
  private readonly backoff: Backoff;

  constructor(private readonly opts: DeltaAdsClientOptions) {
    super();
    this.backoff = opts.backoff ?? DEFAULT_XDS_BACKOFF;
    this.stub = this.newStub();
    for (const t of opts.typeUrls) this.versions.set(t, new Map());
  }

  private newStub(): AdsStub {
    return new AdsCtor(this.opts.address, credentials.createSsl(Buffer.from(this.opts.rootCertPem)), {
      ...channelOptions(this.opts),
      'grpc.keepalive_time_ms': 30_000,
      // the first response carries every workload of the cluster: far above gRPC's 4 MiB default
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': this.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
    });
  }

  /** True once every type URL has had its first response on some stream. */
  get synced(): boolean {
    return this.opts.typeUrls.every((t) => this.syncedTypes.has(t));
  }

  get connected(): boolean {
    return this.stream !== undefined;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stream?.cancel();
    this.stream = undefined;
    this.stub.close();
  }

  /** Resolves when every type URL has synced (or rejects after timeoutMs). */
  waitSynced(timeoutMs = 10_000): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.off('synced', check); reject(new Error(`xDS not synced after ${timeoutMs} ms`)); }, timeoutMs);
      const check = () => {
        if (this.synced) { clearTimeout(t); this.off('synced', check); resolve(); }
      };
      this.on('synced', check);
    });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read the node token; retrying');
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    const stream = this.stub.DeltaAggregatedResources(md);
    this.stream = stream;
    let gotResponse = false;
    const watchdog = setTimeout(() => {
      if (gotResponse || this.stream !== stream || this.stopped) return;
      const ms = this.opts.firstResponseTimeoutMs ?? DEFAULT_FIRST_RESPONSE_TIMEOUT_MS;
      this.log.warn({ address: this.opts.address, ms }, 'no xDS response in time (connection attempt hanging?); redialling on a new channel');
      // Closing the channel is what abandons the hung connection attempt; the stream then ends.
      const old = this.stub;
      this.stub = this.newStub();
      stream.cancel();
      old.close();
      end({ code: status.DEADLINE_EXCEEDED, details: `no response within ${ms} ms` });
    }, this.opts.firstResponseTimeoutMs ?? DEFAULT_FIRST_RESPONSE_TIMEOUT_MS);
    watchdog.unref();
    stream.on('data', (resp: DeltaDiscoveryResponse) => {
      if (!gotResponse) {
        gotResponse = true;
        clearTimeout(watchdog);
        this.attempt = 0;
        this.emit('connected');
      }
      this.onResponse(stream, resp);
    });
    let ended = false;
    const end = (e: { code?: number; details?: string }) => {
      if (ended) return;
      ended = true;
      clearTimeout(watchdog);
      if (this.stream === stream) this.stream = undefined;
      if (this.stopped) return;
      this.log.warn({ code: e.code, details: e.details }, 'xDS stream ended; keeping the last good state and reconnecting');
      this.emit('disconnected', e);
      this.scheduleReconnect();
    };
    stream.on('error', (err: { code?: number; details?: string }) => end(err));
    stream.on('status', (s: { code: number; details: string }) => end(s));
    stream.on('end', () => end({ code: status.UNAVAILABLE, details: 'stream ended by the server' }));
    for (const typeUrl of this.opts.typeUrls) {
      const initial = Object.fromEntries(this.versions.get(typeUrl) ?? []);
      stream.write(create(DeltaDiscoveryRequestSchema, {
        node: { id: this.opts.node.id, ...(this.opts.node.metadata ? { metadata: this.opts.node.metadata } : {}) },
        typeUrl,
        resourceNamesSubscribe: ['*'],
        initialResourceVersions: initial,
      }));
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  private onResponse(stream: ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>, resp: DeltaDiscoveryResponse): void {
    const typeUrl = resp.typeUrl;
    const update: XdsUpdate = {
      typeUrl,
      resources: resp.resources.map((r) => ({ name: r.name, version: r.version, resource: r.resource! })),
      removed: resp.removedResources,
    };
    try {
      if (!this.opts.typeUrls.includes(typeUrl)) throw new Error(`unexpected type URL '${typeUrl}'`);
      const missing = resp.resources.find((r) => !r.resource);
      if (missing) throw new Error(`resource '${missing.name}' has no body`);
      this.opts.apply(update);
    } catch (err) {
      const reason = (err as Error).message;
      this.log.warn({ typeUrl, nonce: resp.nonce, reason }, 'rejecting xDS response (NACK); keeping the last good state');
      stream.write(create(DeltaDiscoveryRequestSchema, { typeUrl, responseNonce: resp.nonce, errorDetail: { code: status.INVALID_ARGUMENT, message: reason } }));
      this.emit('nack', { typeUrl, nonce: resp.nonce, reason });
      this.markSynced(typeUrl);
      return;
    }
    const v = this.versions.get(typeUrl)!;
    for (const r of update.resources) v.set(r.name, r.version);
    for (const n of update.removed) v.delete(n);
    stream.write(create(DeltaDiscoveryRequestSchema, { typeUrl, responseNonce: resp.nonce }));
    this.emit('ack', { typeUrl, nonce: resp.nonce });
    this.markSynced(typeUrl);
  }

  private markSynced(typeUrl: string): void {
    if (!this.syncedTypes.has(typeUrl)) {
      this.syncedTypes.add(typeUrl);
      this.emit('synced', typeUrl);
    }
  }
}
