// Cluster objects → xDS resources. Pure: the same snapshot always gives the same resources.
// Pods become Workloads (HBONE when their namespace is labelled weft.io/mesh=enabled and the
// pod is not labelled weft.io/mesh=disabled), Services become Services, and
// AuthorizationPolicy/PeerAuthentication become Authorizations; selector policies are listed
// on the workloads they select. A bad object is reported and skipped; the rest is served.
import { create, fromBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { isIP } from 'node:net';
import {
  AddressSchema, PortListSchema, ServiceSchema, TunnelProtocol, WorkloadSchema, WorkloadStatus, WorkloadType, NetworkMode,
  type Address, type Port, type PortList, type Service,
} from '../xds/gen/istio/workload/workload_pb.js';
import type { Authorization } from '../xds/gen/istio/security/authorization_pb.js';
import { bytesToIp, ipToBytes } from '../policy/cidr.js';
import {
  convertPeerAuthentication, parentPeerAuthns, parsePeerAuthentication, peerAuthenticationKeys, staticStrictPolicy,
  translateAuthorizationPolicy, workloadPeerAuthn, ROOT_NAMESPACE, type PeerAuthn,
} from '../policy/translate.js';
import { InvalidPolicyError } from '../policy/errors.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { describeObject, type ClusterSnapshot, type KubeObject, type ObjectProblem, type Sourced } from './objects.js';

export const MESH_LABEL = 'weft.io/mesh';

/**
 * Alias keys of an Address resource: "network/IP" for each address of a workload or service
 * (the keys ztunnel asks for in on-demand mode).
 */
export function addressAliases(_name: string, any: Any): string[] {
  return addressAliasesOf(fromBinary(AddressSchema, any.value));
}

export function addressAliasesOf(a: Address): string[] {
  if (a.type.case === 'workload') {
    const w = a.type.value;
    return w.addresses.map((b) => `${w.network}/${bytesToIp(b)}`);
  }
  if (a.type.case === 'service') return a.type.value.addresses.map((n) => `${n.network}/${bytesToIp(n.address)}`);
  return [];
}
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

export interface TranslateOptions {
  trustDomain?: string;
  rootNamespace?: string;
  clusterId?: string;
  clusterDomain?: string;
}

export interface Translation {
  /** resource name (workload uid, or namespace/hostname) → Address */
  addresses: Map<string, Address>;
  /** namespace/name → Authorization */
  policies: Map<string, Authorization>;
  /** node → identities ("namespace/serviceAccount") of pods scheduled there */
  identitiesByNode: Map<string, Set<string>>;
  problems: ObjectProblem[];
}

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

class ObjectError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

function workloadKind(pod: KubeObject): { type: WorkloadType; name: string } {
  const owner = (pod.metadata?.ownerReferences ?? []).find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  const name = pod.metadata?.name ?? '';
  if (owner?.kind === 'ReplicaSet' && owner.name) {
    // Deployment pods are owned by <deployment>-<hash> replica sets.
    const m = /^(.*)-[a-z0-9]{5,10}$/.exec(owner.name);
    return { type: WorkloadType.DEPLOYMENT, name: m ? m[1]! : owner.name };
  }
  if (owner?.kind === 'Job' && owner.name) {
    const cron = /^(.*)-\d{8,}$/.exec(owner.name);
    return cron ? { type: WorkloadType.CRONJOB, name: cron[1]! } : { type: WorkloadType.JOB, name: owner.name };
  }
  if (owner?.name && owner.kind !== 'Node') return { type: WorkloadType.DEPLOYMENT, name: owner.name };
  return { type: WorkloadType.POD, name };
}

function podIps(pod: KubeObject): string[] {
  const st = asObj(pod.status);
  const ips = asList(st.podIPs).map((e) => asObj(e).ip).filter((v) => v !== undefined);
  const all = ips.length ? ips : st.podIP !== undefined && st.podIP !== '' ? [st.podIP] : [];
  return all.map((ip, i) => {
    if (typeof ip !== 'string' || !isIP(ip)) throw new ObjectError(ips.length ? `status.podIPs[${i}].ip` : 'status.podIP', `'${String(ip)}' is not an IP address`);
    return ip;
  });
}

function podReady(pod: KubeObject): boolean {
  const conds = asList(asObj(pod.status).conditions).map(asObj);
  const ready = conds.find((c) => c.type === 'Ready');
  return ready === undefined || ready.status === 'True';
}

/** Resolves a Service targetPort (number or name) against a pod's container ports. */
function targetPort(tp: unknown, port: number, pod: KubeObject): number | undefined {
  if (tp === undefined || tp === null || tp === '') return port;
  if (typeof tp === 'number') return tp;
  if (typeof tp === 'string' && /^\d+$/.test(tp)) return Number(tp);
  for (const c of asList(asObj(pod.spec).containers).map(asObj)) {
    for (const p of asList(c.ports).map(asObj)) if (p.name === tp && typeof p.containerPort === 'number') return p.containerPort;
  }
  return undefined;
}

interface ServiceInfo {
  key: string;
  namespace: string;
  selector?: Record<string, string>;
  ports: Array<{ port: number; targetPort: unknown }>;
  service: Service;
}

function translateService(o: KubeObject, clusterDomain: string): ServiceInfo {
  const name = o.metadata!.name!;
  const namespace = o.metadata!.namespace ?? 'default';
  const spec = asObj(o.spec);
  const hostname = `${name}.${namespace}.svc.${clusterDomain}`;
  const ips = asList(spec.clusterIPs).length ? asList(spec.clusterIPs) : spec.clusterIP !== undefined ? [spec.clusterIP] : [];
  const addresses = ips.filter((ip) => ip !== 'None' && ip !== '').map((ip, i) => {
    if (typeof ip !== 'string' || !isIP(ip)) throw new ObjectError(`spec.clusterIP${asList(spec.clusterIPs).length ? `s[${i}]` : ''}`, `'${String(ip)}' is not an IP address`);
    return { network: '', address: ipToBytes(ip)! };
  });
  const ports = asList(spec.ports).map((p, i) => {
    const po = asObj(p);
    if (typeof po.port !== 'number' || !Number.isInteger(po.port) || po.port < 1 || po.port > 65535) throw new ObjectError(`spec.ports[${i}].port`, `'${String(po.port)}' is not a port number 1-65535`);
    if (po.protocol !== undefined && po.protocol !== 'TCP') return undefined; // the mesh carries TCP only
    return { port: po.port, targetPort: po.targetPort };
  }).filter((p): p is { port: number; targetPort: unknown } => p !== undefined);
  let selector: Record<string, string> | undefined;
  if (spec.selector !== undefined) {
    selector = {};
    for (const [k, v] of Object.entries(asObj(spec.selector))) {
      if (typeof v !== 'string') throw new ObjectError(`spec.selector.${k}`, 'must be a string');
      selector[k] = v;
    }
    if (Object.keys(selector).length === 0) selector = undefined;
  }
  const service = create(ServiceSchema, {
    name, namespace, hostname, addresses,
    ports: ports.map((p) => ({ servicePort: p.port, targetPort: typeof p.targetPort === 'number' ? p.targetPort : typeof p.targetPort === 'string' && /^\d+$/.test(p.targetPort) ? Number(p.targetPort) : p.targetPort === undefined ? p.port : 0 })),
  });
  return { key: `${namespace}/${hostname}`, namespace, ...(selector ? { selector } : {}), ports, service };
}

function checkMeta(o: KubeObject, namespaced: boolean): void {
  if (!o.metadata?.name) throw new ObjectError('metadata.name', 'is required');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(o.metadata.name)) throw new ObjectError('metadata.name', `'${o.metadata.name}' is not a valid Kubernetes name`);
  if (namespaced && o.metadata.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata.namespace)) {
    throw new ObjectError('metadata.namespace', `'${o.metadata.namespace}' is not a valid namespace name`);
  }
  if (o.metadata.labels !== undefined) {
    for (const [k, v] of Object.entries(asObj(o.metadata.labels))) if (typeof v !== 'string') throw new ObjectError(`metadata.labels.${k}`, 'must be a string');
  }
}

/**
 * Workloads from the previous translation, keyed by uid with a signature of everything they
 * were built from; unchanged pods reuse their Address object (so the controller can also
 * reuse its encoding) instead of being rebuilt on every change.
 */
export type TranslationCache = Map<string, { sig: string; address: Address }>;

export function translateSnapshot(snapshot: ClusterSnapshot, opts: TranslateOptions = {}, cache?: TranslationCache): Translation {
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const rootNamespace = opts.rootNamespace ?? ROOT_NAMESPACE;
  const clusterId = opts.clusterId ?? DEFAULT_CLUSTER_ID;
  const clusterDomain = opts.clusterDomain ?? 'cluster.local';
  const problems: ObjectProblem[] = [...snapshot.problems];
  const report = (s: Sourced, field: string, reason: string) => problems.push({ object: describeObject(s.object), field, reason, origin: s.origin });
  const guard = <T>(s: Sourced, f: () => T): T | undefined => {
    try {
      return f();
    } catch (err) {
      if (err instanceof ObjectError) report(s, err.field, err.reason);
      else if (err instanceof InvalidPolicyError) report(s, err.field, err.reason);
      else report(s, '(object)', (err as Error).message);
      return undefined;
    }
  };
  const byKind = (k: string) => snapshot.objects.filter((s) => s.object.kind === k);

  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const s of byKind('Namespace')) {
    guard(s, () => {
      checkMeta(s.object, false);
      namespaceLabels.set(s.object.metadata!.name!, { ...(s.object.metadata!.labels ?? {}) });
    });
  }

  const policies = new Map<string, Authorization>();
  const selectorPolicies: Array<{ key: string; namespace: string; selector: Record<string, string> }> = [];
  const addPolicy = (a: Authorization) => {
    const key = `${a.namespace}/${a.name}`;
    if (policies.has(key)) throw new ObjectError('metadata.name', `policy ${key} is defined twice`);
    policies.set(key, a);
    return key;
  };
  for (const s of byKind('AuthorizationPolicy')) {
    guard(s, () => {
      const t = translateAuthorizationPolicy(s.object, { rootNamespace });
      const key = addPolicy(t.authorization);
      if (t.selector) selectorPolicies.push({ key, namespace: t.authorization.namespace, selector: t.selector });
      for (const w of t.warnings) problems.push({ object: describeObject(s.object), field: w.field, reason: w.reason, origin: s.origin, severity: 'warning' });
    });
  }
  // PeerAuthentication: the static STRICT policy plus converted port-level workload policies;
  // which of them a workload lists is decided per workload below.
  const peerAuthns: PeerAuthn[] = [];
  for (const s of byKind('PeerAuthentication')) {
    const pa = guard(s, () => parsePeerAuthentication(s.object));
    if (pa) peerAuthns.push(pa);
  }
  const strict = staticStrictPolicy(rootNamespace);
  policies.set(`${strict.namespace}/${strict.name}`, strict);
  for (const pa of peerAuthns) {
    const { mesh, ns } = parentPeerAuthns(peerAuthns, pa.namespace, rootNamespace);
    const converted = convertPeerAuthentication(pa, ns, mesh, rootNamespace);
    if (converted) policies.set(`${converted.namespace}/${converted.name}`, converted);
  }

  const addresses = new Map<string, Address>();
  // indexed by namespace: a pod only ever matches services and policies of its own namespace
  const servicesByNs = new Map<string, ServiceInfo[]>();
  for (const s of byKind('Service')) {
    const info = guard(s, () => {
      checkMeta(s.object, true);
      return translateService(s.object, clusterDomain);
    });
    if (!info) continue;
    if (addresses.has(info.key)) {
      report(s, 'metadata.name', `service ${info.key} is defined twice`);
      continue;
    }
    let list = servicesByNs.get(info.namespace);
    if (!list) servicesByNs.set(info.namespace, (list = []));
    list.push(info);
    addresses.set(info.key, create(AddressSchema, { type: { case: 'service', value: info.service } }));
  }

  const selectorPoliciesByNs = new Map<string, typeof selectorPolicies>();
  for (const p of selectorPolicies) {
    let list = selectorPoliciesByNs.get(p.namespace);
    if (!list) selectorPoliciesByNs.set(p.namespace, (list = []));
    list.push(p);
  }
  const identitiesByNode = new Map<string, Set<string>>();
  const seenIps = new Map<string, string>();
  // what a workload depends on besides its pod, per namespace (for the cache)
  const paSig = JSON.stringify(peerAuthns);
  const nsSigs = new Map<string, string>();
  const nsSig = (ns: string): string => {
    let sig = nsSigs.get(ns);
    if (sig === undefined) {
      sig = JSON.stringify([
        namespaceLabels.get(ns)?.[MESH_LABEL] ?? null,
        (servicesByNs.get(ns) ?? []).map((x) => [x.key, x.selector ?? null, x.ports]),
        (selectorPoliciesByNs.get(ns) ?? []).map((x) => [x.key, x.selector]),
        paSig, trustDomain, clusterId, rootNamespace,
      ]);
      nsSigs.set(ns, sig);
    }
    return sig;
  };
  const nextCache: TranslationCache | undefined = cache ? new Map() : undefined;
  for (const s of byKind('Pod')) {
    guard(s, () => {
      const pod = s.object;
      checkMeta(pod, true);
      const meta = pod.metadata!;
      const name = meta.name!;
      const namespace = meta.namespace ?? 'default';
      const spec = asObj(pod.spec);
      const phase = asObj(pod.status).phase;
      if (phase === 'Succeeded' || phase === 'Failed' || meta.deletionTimestamp) return;
      const sa = spec.serviceAccountName ?? spec.serviceAccount ?? 'default';
      if (typeof sa !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(sa)) throw new ObjectError('spec.serviceAccountName', `'${String(sa)}' is not a valid service account name`);
      const node = spec.nodeName;
      if (node !== undefined && typeof node !== 'string') throw new ObjectError('spec.nodeName', 'must be a string');
      if (node) {
        let set = identitiesByNode.get(node);
        if (!set) identitiesByNode.set(node, (set = new Set()));
        set.add(`${namespace}/${sa}`);
      }
      const ips = podIps(pod);
      if (ips.length === 0) return; // not running yet: no address to serve
      const hostNetwork = spec.hostNetwork === true;
      const labels = meta.labels ?? {};
      const enrolled = !hostNetwork && namespaceLabels.get(namespace)?.[MESH_LABEL] === 'enabled' && labels[MESH_LABEL] !== 'disabled';
      const uid = meta.uid || `${clusterId}//Pod/${namespace}/${name}`;
      if (!hostNetwork) {
        for (const ip of ips) {
          const other = seenIps.get(ip);
          if (other) throw new ObjectError('status.podIP', `${ip} is already used by ${other}`);
        }
        for (const ip of ips) seenIps.set(ip, `Pod ${namespace}/${name}`);
      }
      if (addresses.has(uid)) throw new ObjectError('metadata.uid', `uid ${uid} is used by two pods`);
      const sig = cache ? `${nsSig(namespace)}\n${JSON.stringify(pod)}` : '';
      const hit = cache?.get(uid);
      if (hit && hit.sig === sig) {
        addresses.set(uid, hit.address);
        nextCache!.set(uid, hit);
        return;
      }
      const svcMap: Record<string, PortList> = {};
      for (const svc of servicesByNs.get(namespace) ?? []) {
        if (!svc.selector || !labelsMatch(svc.selector, labels)) continue;
        const ports: Port[] = [];
        for (const p of svc.ports) {
          const tp = targetPort(p.targetPort, p.port, pod);
          if (tp !== undefined) ports.push({ servicePort: p.port, targetPort: tp } as Port);
        }
        svcMap[svc.key] = create(PortListSchema, { ports });
      }
      const kind = workloadKind(pod);
      const paParents = parentPeerAuthns(peerAuthns, namespace, rootNamespace);
      const workload = create(WorkloadSchema, {
        uid, name, namespace,
        addresses: ips.map((ip) => ipToBytes(ip)!),
        tunnelProtocol: enrolled ? TunnelProtocol.HBONE : TunnelProtocol.NONE,
        trustDomain, serviceAccount: sa, node: node ?? '',
        canonicalName: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? kind.name,
        canonicalRevision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest',
        workloadType: kind.type, workloadName: kind.name,
        services: svcMap,
        authorizationPolicies: [
          ...(selectorPoliciesByNs.get(namespace) ?? []).filter((p) => labelsMatch(p.selector, labels)).map((p) => p.key),
          ...peerAuthenticationKeys(paParents.mesh, paParents.ns, workloadPeerAuthn(peerAuthns, namespace, labels, rootNamespace), rootNamespace),
        ].sort(),
        status: podReady(pod) ? WorkloadStatus.HEALTHY : WorkloadStatus.UNHEALTHY,
        clusterId,
        networkMode: hostNetwork ? NetworkMode.HOST_NETWORK : NetworkMode.STANDARD,
      });
      const address = create(AddressSchema, { type: { case: 'workload', value: workload } });
      addresses.set(uid, address);
      nextCache?.set(uid, { sig, address });
    });
  }
  if (cache && nextCache) {
    cache.clear();
    for (const [k, v] of nextCache) cache.set(k, v);
  }
  return { addresses, policies, identitiesByNode, problems };
}
