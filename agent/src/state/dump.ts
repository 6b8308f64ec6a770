// JSON views of the agent's state for /config_dump and `weft workloads|services|policies|certs`:
// IPs as text, enums as names, keys as Istio writes them.
import { toJson } from '@bufbuild/protobuf';
import { AppProtocol, TunnelProtocol, WorkloadStatus, WorkloadType, type Service, type Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, type Authorization } from '../xds/gen/istio/security/authorization_pb.js';
import { bytesToIp } from '../policy/cidr.js';
import type { CertificateInfo } from '../identity/cert-manager.js';
import type { WorkloadState } from './workload-state.js';

export interface WorkloadDump {
  uid: string;
  name: string;
  namespace: string;
  node: string;
  addresses: string[];
  protocol: string;
  serviceAccount: string;
  trustDomain: string;
  canonicalName: string;
  canonicalRevision: string;
  workloadType: string;
  workloadName: string;
  status: string;
  services: Record<string, Array<{ servicePort: number; targetPort: number }>>;
  authorizationPolicies: string[];
}

export interface ServiceDump {
  name: string;
  namespace: string;
  hostname: string;
  vips: string[];
  ports: Array<{ servicePort: number; targetPort: number; appProtocol?: string }>;
  endpoints: number;
}

export interface ConfigDump {
  node?: string;
  connected?: boolean;
  synced?: boolean;
  workloads: WorkloadDump[];
  services: ServiceDump[];
  policies: unknown[];
  certificates: CertificateInfo[];
}

export function workloadDump(w: Workload): WorkloadDump {
  return {
    uid: w.uid, name: w.name, namespace: w.namespace, node: w.node,
    addresses: w.addresses.map((a) => bytesToIp(a) ?? '?'),
    protocol: TunnelProtocol[w.tunnelProtocol] ?? String(w.tunnelProtocol),
    serviceAccount: w.serviceAccount || 'default', trustDomain: w.trustDomain,
    canonicalName: w.canonicalName, canonicalRevision: w.canonicalRevision,
    workloadType: WorkloadType[w.workloadType] ?? String(w.workloadType), workloadName: w.workloadName,
    status: WorkloadStatus[w.status] ?? String(w.status),
    services: Object.fromEntries(Object.entries(w.services).map(([k, v]) => [k, v.ports.map((p) => ({ servicePort: p.servicePort, targetPort: p.targetPort }))])),
    authorizationPolicies: [...w.authorizationPolicies],
  };
}

export function serviceDump(s: Service, state?: WorkloadState): ServiceDump {
  const key = `${s.namespace}/${s.hostname}`;
  return {
    name: s.name, namespace: s.namespace, hostname: s.hostname,
    vips: s.addresses.map((a) => (a.network ? `${a.network}/` : '') + (bytesToIp(a.address) ?? '?')),
    ports: s.ports.map((p) => ({ servicePort: p.servicePort, targetPort: p.targetPort, ...(p.appProtocol ? { appProtocol: AppProtocol[p.appProtocol] } : {}) })),
    endpoints: state ? state.workloads().filter((w) => key in w.services).length : 0,
  };
}

/** Istio's JSON form of the policy (addresses appear base64, as in protobuf JSON). */
export function policyDump(p: Authorization): unknown {
  return toJson(AuthorizationSchema, p, { alwaysEmitImplicit: true });
}

export function configDump(state: WorkloadState, certificates: CertificateInfo[], extra: Pick<ConfigDump, 'node' | 'connected' | 'synced'> = {}): ConfigDump {
  const byKey = <T extends { namespace: string }>(k: (x: T) => string) => (a: T, b: T) => k(a).localeCompare(k(b));
  return {
    ...extra,
    workloads: state.workloads().map(workloadDump).sort(byKey((w) => `${w.namespace}/${w.name}`)),
    services: state.services().map((s) => serviceDump(s, state)).sort(byKey((s) => `${s.namespace}/${s.hostname}`)),
    policies: state.policies().sort(byKey((p) => `${p.namespace}/${p.name}`)).map(policyDump),
    certificates,
  };
}
