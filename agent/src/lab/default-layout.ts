// What `weft lab up` puts in a fresh lab: namespaces demo and other, pods spread round-robin
// over the nodes, alternating between the apps client and server, one Service per app.
//   pod i (0-based) → node (i % nodes) + 1, namespace demo when floor(i/2) is even else other,
//   app client when i is even else server, named <app>-<k> (k counts per namespace and app).
// With 2 nodes × 2 pods: demo/client-1 (node1), demo/server-1 (node2), other/client-1 (node1),
// other/server-1 (node2): same-node, cross-node and cross-namespace pairs all exist.
import type { ManifestObject } from './manifests.js';

export interface PodPlacement {
  namespace: string;
  name: string;
  node: string;
  labels: Record<string, string>;
  serviceAccount: string;
}

export const DEFAULT_NAMESPACES = ['demo', 'other'];
export const ECHO_PORT = 9000;
export const HTTP_PORT = 8080;

export function defaultPods(nodeNames: string[], podsPerNode: number): PodPlacement[] {
  const total = nodeNames.length * podsPerNode;
  const counters = new Map<string, number>();
  const pods: PodPlacement[] = [];
  for (let i = 0; i < total; i++) {
    const namespace = DEFAULT_NAMESPACES[Math.floor(i / 2) % 2]!;
    const app = i % 2 === 0 ? 'client' : 'server';
    const k = (counters.get(`${namespace}/${app}`) ?? 0) + 1;
    counters.set(`${namespace}/${app}`, k);
    pods.push({ namespace, name: `${app}-${k}`, node: nodeNames[i % nodeNames.length]!, labels: { app }, serviceAccount: app });
  }
  return pods;
}

export function namespaceObject(name: string, labels?: Record<string, string>): ManifestObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } };
}

export function serviceAccountObject(namespace: string, name: string): ManifestObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } };
}

export function appServiceObject(namespace: string, app: string, clusterIP: string): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: app, namespace, labels: { app } },
    spec: {
      selector: { app },
      clusterIP,
      ports: [
        { name: 'tcp-echo', port: ECHO_PORT, targetPort: ECHO_PORT, protocol: 'TCP' },
        { name: 'http', port: HTTP_PORT, targetPort: HTTP_PORT, protocol: 'TCP' },
      ],
    },
  };
}
