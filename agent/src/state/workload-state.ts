// What the agent knows about the mesh: workloads (by uid and by IP), services (by
// namespace/hostname and by cluster IP) and authorization policies (by key and scope).
// Each xDS response is validated completely before anything changes, so an update is applied
// whole or not at all and a rejected one leaves the last good state in place.
import { EventEmitter } from 'node:events';
import type { Service, Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { Scope, type Authorization } from '../xds/gen/istio/security/authorization_pb.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../xds/types.js';
import type { XdsUpdate } from '../xds/client.js';
import { bytesToIp } from '../policy/cidr.js';
import { applicablePolicies } from '../policy/evaluate.js';
import { decodeAddress, decodeAuthorization, InvalidResourceError } from './validate.js';

export interface StateChange {
  typeUrl: string;
  changed: string[];
  removed: string[];
}

function ipKey(network: string, ip: string): string {
  return network ? `${network}/${ip}` : ip;
}

export class WorkloadState extends EventEmitter<{ change: [StateChange]; applied: [XdsUpdate] }> {
  private readonly workloadsByUid = new Map<string, Workload>();
  private readonly workloadsByIp = new Map<string, Workload>();
  private readonly servicesByKey = new Map<string, Service>();
  private readonly servicesByVip = new Map<string, Service>();
  private readonly policiesByKey = new Map<string, Authorization>();
  private readonly versions = new Map<string, string>();

  /** Applies one xDS response atomically; throws InvalidResourceError (→ NACK) and changes nothing. */
  apply(update: XdsUpdate): void {
    if (update.typeUrl === ADDRESS_TYPE_URL) this.applyAddresses(update);
    else if (update.typeUrl === AUTHORIZATION_TYPE_URL) this.applyPolicies(update);
    else throw new InvalidResourceError(update.typeUrl, 'unknown type URL');
    // 'applied' (data-plane workers replicate from it) must follow even if a change listener throws.
    try {
      this.emit('change', { typeUrl: update.typeUrl, changed: update.resources.map((r) => r.name), removed: update.removed });
    } finally {
      this.emit('applied', update);
    }
  }

  private applyAddresses(update: XdsUpdate): void {
    const decoded = update.resources.map((r) => ({ r, a: decodeAddress(r.name, r.resource) }));
    for (const name of update.removed) this.removeAddress(name);
    for (const { r, a } of decoded) {
      this.removeAddress(r.name);
      if (a.type.case === 'workload') {
        const w = a.type.value;
        this.workloadsByUid.set(r.name, w);
        for (const b of w.addresses) this.workloadsByIp.set(ipKey(w.network, bytesToIp(b)!), w);
      } else if (a.type.case === 'service') {
        const s = a.type.value;
        this.servicesByKey.set(r.name, s);
        for (const na of s.addresses) this.servicesByVip.set(ipKey(na.network, bytesToIp(na.address)!), s);
      }
      this.versions.set(`a:${r.name}`, r.version);
    }
  }

  private removeAddress(name: string): void {
    const w = this.workloadsByUid.get(name);
    if (w) {
      this.workloadsByUid.delete(name);
      for (const b of w.addresses) {
        const k = ipKey(w.network, bytesToIp(b)!);
        if (this.workloadsByIp.get(k) === w) this.workloadsByIp.delete(k);
      }
    }
    const s = this.servicesByKey.get(name);
    if (s) {
      this.servicesByKey.delete(name);
      for (const na of s.addresses) {
        const k = ipKey(na.network, bytesToIp(na.address)!);
        if (this.servicesByVip.get(k) === s) this.servicesByVip.delete(k);
      }
    }
    this.versions.delete(`a:${name}`);
  }

  private applyPolicies(update: XdsUpdate): void {
    const decoded = update.resources.map((r) => ({ r, p: decodeAuthorization(r.name, r.resource) }));
    for (const name of update.removed) {
      this.policiesByKey.delete(name);
      this.versions.delete(`p:${name}`);
    }
    for (const { r, p } of decoded) {
      this.policiesByKey.set(r.name, p);
      this.versions.set(`p:${r.name}`, r.version);
    }
  }

  workload(uid: string): Workload | undefined {
    return this.workloadsByUid.get(uid);
  }
  workloadByIp(ip: string, network = ''): Workload | undefined {
    return this.workloadsByIp.get(ipKey(network, ip));
  }
  service(key: string): Service | undefined {
    return this.servicesByKey.get(key);
  }
  serviceByVip(ip: string, network = ''): Service | undefined {
    return this.servicesByVip.get(ipKey(network, ip));
  }
  policy(key: string): Authorization | undefined {
    return this.policiesByKey.get(key);
  }
  workloads(): Workload[] {
    return [...this.workloadsByUid.values()];
  }
  services(): Service[] {
    return [...this.servicesByKey.values()];
  }
  policies(): Authorization[] {
    return [...this.policiesByKey.values()];
  }
  policiesByScope(scope: Scope, namespace?: string): Authorization[] {
    return this.policies().filter((p) => p.scope === scope && (namespace === undefined || p.namespace === namespace));
  }
  /** The policies that apply to traffic towards this workload. */
  policiesFor(w: Workload): Authorization[] {
    return applicablePolicies(this.policiesByKey.values(), { namespace: w.namespace, authorizationPolicies: w.authorizationPolicies });
  }
  /** Workloads scheduled on one node. */
  workloadsOnNode(node: string): Workload[] {
    return this.workloads().filter((w) => w.node === node);
  }
  version(kind: 'address' | 'policy', name: string): string | undefined {
    return this.versions.get(`${kind === 'address' ? 'a' : 'p'}:${name}`);
  }
}
