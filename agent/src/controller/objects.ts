// The Kubernetes objects the controller reads, as plain data (from YAML files or the API
// server), and the snapshot both sources hand to translation.
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  ownerReferences?: Array<{ kind?: string; name?: string; controller?: boolean }>;
  deletionTimestamp?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: Record<string, unknown> & object;
  status?: Record<string, unknown> & object;
}

export const WATCHED_KINDS = ['Namespace', 'Pod', 'Service', 'ServiceAccount', 'AuthorizationPolicy', 'PeerAuthentication'] as const;
export type WatchedKind = (typeof WATCHED_KINDS)[number];

export function isWatchedKind(k: unknown): k is WatchedKind {
  return (WATCHED_KINDS as readonly unknown[]).includes(k);
}

/** Where an object came from, for error messages (file and document, or the API server). */
export interface Sourced {
  object: KubeObject;
  origin: string;
}

/** A problem with one input object (or file); the object is skipped, everything else served. */
export interface ObjectProblem {
  /** e.g. "Pod shop/web-1" or a file name */
  object: string;
  field: string;
  reason: string;
  origin?: string;
  /** 'warning': the object is served, but not exactly as written */
  severity?: 'error' | 'warning';
}

export function formatProblem(p: ObjectProblem): string {
  return `${p.severity === 'warning' ? 'warning: ' : ''}${p.object}${p.origin ? ` (${p.origin})` : ''}: ${p.field}: ${p.reason}`;
}

export interface ClusterSnapshot {
  objects: Sourced[];
  /** problems found while reading (unparseable files, objects without kind/name) */
  problems: ObjectProblem[];
}

export function describeObject(o: KubeObject): string {
  const ns = o.metadata?.namespace;
  return `${o.kind ?? '?'} ${ns ? `${ns}/` : ''}${o.metadata?.name ?? '?'}`;
}

/** Source of cluster state: emits complete snapshots whenever something changes. */
export interface ClusterSource {
  start(onSnapshot: (s: ClusterSnapshot) => void): Promise<void>;
  stop(): Promise<void>;
  /** what has not been read completely yet (e.g. kinds not listed); for readiness messages */
  pending?(): string[];
}
