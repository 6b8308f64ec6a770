// Delta ADS server (envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources).
// Each stream is authenticated by its bearer token, then per type URL: the first request
// (optionally with initial_resource_versions) gets everything the client lacks, later store
// changes are pushed incrementally with a fresh nonce, ACKs are noted and NACKs logged with the
// resources and the reason. A NACKed resource is not re-sent until it changes again.
import { randomBytes } from 'node:crypto';
import { status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { EventEmitter } from 'node:events';
import { logger } from '../common/log.js';
import {
  DeltaDiscoveryResponseSchema, ResourceSchema, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';
import type { ChangeSet, ResourceStore } from './resource-store.js';
import { isTypeUrl } from './types.js';
import { bearerToken, type NodeAuthenticator, type NodeCaller } from '../identity/node-auth.js';

type Stream = ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

interface Pending {
  /** for each name sent in this response: the version the client had before (undefined = none) */
  previous: Map<string, string | undefined>;
  names: string[];
}

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
  /** what we believe the client holds: name -> version */
  client: Map<string, string>;
  pending: Map<string, Pending>;
}

export interface NackEvent {
  node: string;
  typeUrl: string;
  nonce: string;
  resources: string[];
  reason: string;
}

export interface AckEvent {
  node: string;
  typeUrl: string;
  nonce: string;
}

export interface AdsServerEvents {
  ack: [AckEvent];
  nack: [NackEvent];
  connect: [NodeCaller];
  disconnect: [NodeCaller];
}

export class DeltaAdsServer extends EventEmitter<AdsServerEvents> {
  private readonly log = logger('xds-server');
  private readonly streams = new Set<AdsStream>();

  constructor(private readonly store: ResourceStore, private readonly auth: NodeAuthenticator) {
    super();
    store.on('change', (c) => {
      for (const s of this.streams) s.push(c);
    });
  }

  get connectedStreams(): number {
    return this.streams.size;
  }

  /** Ends every stream (agents reconnect, to this or another replica) so shutdown is prompt. */
  closeAll(): void {
    for (const s of this.streams) s.end();
  }

  implementation(): UntypedServiceImplementation {
    return { DeltaAggregatedResources: (call: Stream) => void this.handle(call) };
  }

  private async handle(call: Stream): Promise<void> {
    // Buffer requests that arrive while the token is being checked.
    const early: DeltaDiscoveryRequest[] = [];
    const onEarly = (r: DeltaDiscoveryRequest) => early.push(r);
    call.on('data', onEarly);
    call.on('error', () => {});
    let caller: NodeCaller;
    try {
      caller = await this.auth.authenticate(bearerToken(call.metadata.get('authorization')));
    } catch (err) {
      const details = (err as Error).message;
      this.log.warn({ peer: call.getPeer(), reason: details }, 'refused xDS stream: unauthenticated');
      call.emit('error', { code: status.UNAUTHENTICATED, details });
      return;
    }
    call.off('data', onEarly);
    const s = new AdsStream(call, caller, this.store, this, this.log.child({ node: caller.node }));
    this.streams.add(s);
    this.emit('connect', caller);
    s.log.info({ peer: call.getPeer() }, 'xDS stream opened');
    const done = () => {
      if (this.streams.delete(s)) {
        s.log.info('xDS stream closed');
        this.emit('disconnect', caller);
      }
    };
    call.on('end', () => { done(); call.end(); });
    call.on('close', done);
    call.on('cancelled', done);
    call.on('error', done);
    call.on('data', (r: DeltaDiscoveryRequest) => s.onRequest(r));
    for (const r of early) s.onRequest(r);
  }
}

class AdsStream {
  private readonly subs = new Map<string, Subscription>();

  constructor(
    private readonly call: Stream,
    readonly caller: NodeCaller,
    private readonly store: ResourceStore,
    private readonly events: DeltaAdsServer,
    readonly log: ReturnType<typeof logger>,
  ) {}

  end(): void {
    this.call.end();
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    const typeUrl = req.typeUrl;
    if (!isTypeUrl(typeUrl)) {
      this.log.warn({ typeUrl, clientNode: req.node?.id }, 'ignoring request for a type URL this server does not serve');
      return;
    }
    let sub = this.subs.get(typeUrl);
    const first = !sub;
    if (req.responseNonce) {
      const pending = sub?.pending.get(req.responseNonce);
      if (sub && pending) {
        sub.pending.delete(req.responseNonce);
        if (req.errorDetail) {
          // NACK: the client kept its previous versions of these resources.
          for (const [name, prev] of pending.previous) {
            if (prev === undefined) sub.client.delete(name);
            else sub.client.set(name, prev);
          }
          const ev: NackEvent = { node: this.caller.node, typeUrl, nonce: req.responseNonce, resources: pending.names, reason: req.errorDetail.message };
          this.log.warn(ev, 'xDS NACK: the agent rejected resources');
          this.events.emit('nack', ev);
        } else {
          this.events.emit('ack', { node: this.caller.node, typeUrl, nonce: req.responseNonce });
        }
      }
    }
    if (!sub) {
      sub = { wildcard: false, names: new Set(), client: new Map(), pending: new Map() };
      this.subs.set(typeUrl, sub);
      for (const [name, version] of Object.entries(req.initialResourceVersions)) sub.client.set(name, version);
    }
    let newlySubscribed: string[] = [];
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') {
        if (!sub.wildcard) newlySubscribed = ['*'];
        sub.wildcard = true;
      } else if (!sub.names.has(n)) {
        sub.names.add(n);
        newlySubscribed.push(n);
      }
    }
    // Legacy wildcard: the first request of a type with no names at all.
    if (first && req.resourceNamesSubscribe.length === 0 && req.resourceNamesUnsubscribe.length === 0) sub.wildcard = true;
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') sub.wildcard = false;
      else sub.names.delete(n);
      sub.client.delete(n);
    }
    if (first) this.sendInitial(typeUrl, sub);
    else if (newlySubscribed.length) this.sendNames(typeUrl, sub, newlySubscribed.includes('*') ? [...this.store.get(typeUrl).keys()] : newlySubscribed, true);
  }

  private wants(sub: Subscription, name: string, typeUrl?: string): boolean {
    if (sub.wildcard || sub.names.has(name)) return true;
    if (!typeUrl || sub.names.size === 0) return false;
    return (this.store.get(typeUrl).get(name)?.aliases ?? []).some((a) => sub.names.has(a));
  }

  /** First response of a type: always sent, even empty, so the agent knows it is in sync. */
  private sendInitial(typeUrl: string, sub: Subscription): void {
    const table = this.store.get(typeUrl);
    const removed = [...sub.client.keys()].filter((n) => !table.has(n) || !this.wants(sub, n, typeUrl));
    const names = [...table.keys()].filter((n) => this.wants(sub, n, typeUrl) && sub.client.get(n) !== table.get(n)!.version);
    // explicitly requested names that do not exist are answered as removed, so the client stops waiting
    for (const n of sub.names) if (!this.store.resolve(typeUrl, n) && !removed.includes(n)) removed.push(n);
    this.respond(typeUrl, sub, names, removed, true);
  }

  /** Answers newly subscribed names (or aliases): their resources, or 'removed' when none exists. */
  private sendNames(typeUrl: string, sub: Subscription, names: string[], force: boolean): void {
    const table = this.store.get(typeUrl);
    const send = new Set<string>();
    const missing: string[] = [];
    for (const n of names) {
      const primary = this.store.resolve(typeUrl, n);
      if (!primary) missing.push(n);
      else if (force || sub.client.get(primary) !== table.get(primary)!.version) send.add(primary);
    }
    this.respond(typeUrl, sub, [...send], missing, false);
  }

  /** A store change: push what this client subscribes to and lacks. */
  push(c: ChangeSet): void {
    const sub = this.subs.get(c.typeUrl);
    if (!sub) return;
    const table = this.store.get(c.typeUrl);
    const names = c.changed.filter((n) => this.wants(sub, n, c.typeUrl) && sub.client.get(n) !== table.get(n)?.version && table.has(n));
    const removed = c.removed.filter((n) => sub.client.has(n));
    this.respond(c.typeUrl, sub, names, removed, false);
  }

  private respond(typeUrl: string, sub: Subscription, names: string[], removed: string[], always: boolean): void {
    if (!always && names.length === 0 && removed.length === 0) return;
    const table = this.store.get(typeUrl);
    const nonce = randomBytes(8).toString('hex');
    const previous = new Map<string, string | undefined>();
    const resources = names.map((n) => {
      const r = table.get(n)!;
      previous.set(n, sub.client.get(n));
      sub.client.set(n, r.version);
      return create(ResourceSchema, { name: n, version: r.version, resource: r.resource, aliases: r.aliases });
    });
    for (const n of removed) {
      previous.set(n, sub.client.get(n));
      sub.client.delete(n);
    }
    sub.pending.set(nonce, { previous, names: [...names, ...removed] });
    this.log.debug({ typeUrl, nonce, resources: names.length, removed: removed.length }, 'xDS push');
    this.call.write(create(DeltaDiscoveryResponseSchema, {
      typeUrl, nonce, systemVersionInfo: this.store.systemVersion, resources, removedResources: removed,
    }));
  }
}
