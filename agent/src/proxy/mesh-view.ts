// What the proxy needs to know about the mesh, as a narrow interface the agent's state store
// implements (or adapts to): workloads by IP, services by VIP, endpoints, the policies that
// apply to a workload, and a change signal to re-check established connections.
// MemoryMeshView is a plain in-memory implementation, used by tests and usable as an adapter.
import { EventEmitter } from 'node:events';
import { TunnelProtocol, WorkloadStatus, type Workload, type Service } from '../xds/gen/istio/workload/workload_pb.js';
import type { Authorization } from '../xds/gen/istio/security/authorization_pb.js';
import { applicablePolicies, policyKey } from '../policy/evaluate.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { PeerInfo, ServiceInfo } from '../telemetry/connection-info.js';
import { ipFromBytes } from './addresses.js';

export interface MeshView {
  workloadByIp(ip: string): Workload | undefined;
  serviceByVip(ip: string): Service | undefined;
  /** Workloads that back the service (Workload.services has `namespace/hostname`). */
  endpointsOf(service: Service): Workload[];
  /** The Authorization resources that apply to `w` (global, its namespace, listed on it). */
  policiesFor(w: Workload): readonly Authorization[];
  /** Called after any change of workloads, services or policies; returns an unsubscribe. */
  onChange(cb: () => void): () => void;
}

export function serviceKey(s: Pick<Service, 'namespace' | 'hostname'>): string {
  return `${s.namespace}/${s.hostname}`;
}

export function workloadIps(w: Workload): string[] {
  return w.addresses.map(ipFromBytes);
}

export function workloadIdentity(w: Workload): string {
  return formatSpiffeId({ trustDomain: w.trustDomain || 'cluster.local', namespace: w.namespace, serviceAccount: w.serviceAccount || 'default' });
}

export function isHbone(w: Workload): boolean {
  return w.tunnelProtocol === TunnelProtocol.HBONE;
}

export function isHealthy(w: Workload): boolean {
  return w.status === WorkloadStatus.HEALTHY;
}

// One frozen PeerInfo per (workload version, identity), shared by all its connections: 10,000
// idle connections would otherwise hold 40,000 equal objects.
const peerInfoCache = new WeakMap<Workload, Map<string | undefined, PeerInfo>>();

/** Labels/log metadata of a workload. `authenticated`: include its identity (only with mTLS). */
export function peerInfo(w: Workload | undefined, identity?: string): PeerInfo {
  if (!w) return { identity };
  let byId = peerInfoCache.get(w);
  if (!byId) peerInfoCache.set(w, (byId = new Map()));
  let info = byId.get(identity);
  if (!info) {
    info = Object.freeze({
      workload: w.workloadName || w.name,
      namespace: w.namespace,
      identity,
      app: w.canonicalName || undefined,
      version: w.canonicalRevision || undefined,
      cluster: w.clusterId || undefined,
    });
    byId.set(identity, info);
  }
  return info;
}

export function serviceInfo(s: Service | undefined): ServiceInfo | undefined {
  return s ? { hostname: s.hostname, namespace: s.namespace, name: s.name } : undefined;
}

/** The in-memory view: put/remove resources, then changes are signalled on the next tick. */
export class MemoryMeshView implements MeshView {
  private readonly workloads = new Map<string, Workload>();
  private readonly byIp = new Map<string, Workload>();
  private readonly services = new Map<string, Service>();
  private readonly svcByIp = new Map<string, Service>();
  private readonly policies = new Map<string, Authorization>();
  private readonly events = new EventEmitter();

  putWorkload(w: Workload): void {
    this.removeWorkload(w.uid);
    this.workloads.set(w.uid, w);
    for (const ip of workloadIps(w)) this.byIp.set(ip, w);
    this.changed();
  }

  removeWorkload(uid: string): void {
    const old = this.workloads.get(uid);
    if (!old) return;
    this.workloads.delete(uid);
    for (const ip of workloadIps(old)) if (this.byIp.get(ip) === old) this.byIp.delete(ip);
    this.changed();
  }

  putService(s: Service): void {
    this.services.set(serviceKey(s), s);
    for (const a of s.addresses) this.svcByIp.set(ipFromBytes(a.address), s);
    this.changed();
  }

  putPolicy(p: Authorization): void {
    this.policies.set(policyKey(p), p);
    this.changed();
  }

  removePolicy(key: string): void {
    if (this.policies.delete(key)) this.changed();
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.byIp.get(ip);
  }

  serviceByVip(ip: string): Service | undefined {
    return this.svcByIp.get(ip);
  }

  endpointsOf(service: Service): Workload[] {
    const key = serviceKey(service);
    return [...this.workloads.values()].filter((w) => key in w.services);
  }

  policiesFor(w: Workload): readonly Authorization[] {
    return applicablePolicies(this.policies.values(), { namespace: w.namespace, authorizationPolicies: w.authorizationPolicies });
  }

  onChange(cb: () => void): () => void {
    this.events.on('change', cb);
    return () => this.events.off('change', cb);
  }

  private pending = false;
  private changed(): void {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      this.events.emit('change');
    });
  }
}

/** The agent's WorkloadState as a MeshView (endpoints are found by scanning workloads). */
export function meshViewOf(state: {
  workloadByIp(ip: string): Workload | undefined;
  serviceByVip(ip: string): Service | undefined;
  workloads(): Workload[];
  policiesFor(w: Workload): Authorization[];
  on(event: 'change', cb: () => void): unknown;
  off(event: 'change', cb: () => void): unknown;
}): MeshView {
  return {
    workloadByIp: (ip) => state.workloadByIp(ip),
    serviceByVip: (ip) => state.serviceByVip(ip),
    endpointsOf: (svc) => {
      const key = serviceKey(svc);
      return state.workloads().filter((w) => key in w.services);
    },
    policiesFor: (w) => state.policiesFor(w),
    onChange: (cb) => {
      const h = () => cb();
      state.on('change', h);
      return () => state.off('change', h);
    },
  };
}
