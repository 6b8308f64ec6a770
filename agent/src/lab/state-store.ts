// The lab's state directory: one Kubernetes object per YAML file (what the controller reads,
// live), plus runtime.json (netns, cgroups, pids, slot: what the lab itself needs to manage
// and tear down). Files are always replaced atomically.
import { existsSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeFileAtomic } from './atomic-file.js';
import { isNamespaced, objectKey, type ManifestObject } from './manifests.js';
import type { MeshRuntime } from './mesh.js';

export interface NodeRuntime {
  name: string;
  /** 1-based. */
  index: number;
  /** Name of the netns (under /run/netns). */
  netnsName: string;
  ip: string;
  podCidr: string;
  /** The node's top cgroup directory (absolute). */
  cgroup: string;
}

export interface PodRuntime {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  ip: string;
  netnsName: string;
  hostVeth: string;
  containerId: string;
  /** Absolute path of the container scope the app runs in. */
  cgroup: string;
  /** Absolute path of the pod slice. */
  podCgroup: string;
  pid: number;
  /** /proc/<pid>/stat start time, so a reused pid is not mistaken for the app. */
  pidStart: string;
}

export interface LabRuntime {
  version: 1;
  name: string;
  slot: number;
  /** 'building' until `up` finished. */
  phase: 'building' | 'up';
  createdAt: string;
  cgroupRoot: string;
  fabric: { netnsName: string; bridge: string; ip: string };
  nodes: NodeRuntime[];
  pods: PodRuntime[];
  /** the controller and agents, when the lab runs the mesh */
  mesh?: MeshRuntime;
}

export const RUNTIME_FILE = 'runtime.json';
export const LOG_DIR = 'logs';

export function readRuntime(stateDir: string): LabRuntime | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, RUNTIME_FILE), 'utf8')) as LabRuntime;
  } catch {
    return undefined;
  }
}

export function writeRuntime(stateDir: string, rt: LabRuntime): void {
  writeFileAtomic(join(stateDir, RUNTIME_FILE), JSON.stringify(rt, null, 2) + '\n');
}

/** File name of an object: <Kind>_<namespace>_<name>.yaml ('_' never occurs in Kubernetes names). */
export function manifestFileName(o: ManifestObject): string {
  const ns = isNamespaced(o.kind) ? (o.metadata.namespace ?? 'default') : '';
  return `${o.kind}_${ns}_${o.metadata.name}.yaml`;
}

/** Every object in the state directory, by objectKey(). */
export function readObjects(stateDir: string): Map<string, ManifestObject> {
  const out = new Map<string, ManifestObject>();
  if (!existsSync(stateDir)) return out;
  for (const f of readdirSync(stateDir).sort()) {
    if (!f.endsWith('.yaml') || f.startsWith('.')) continue;
    try {
      const o = parse(readFileSync(join(stateDir, f), 'utf8')) as ManifestObject;
      if (o && typeof o === 'object' && o.kind && o.metadata?.name) out.set(objectKey(o), o);
    } catch {
      /* removed while listing */
    }
  }
  return out;
}

export function writeObject(stateDir: string, o: ManifestObject): void {
  if (isNamespaced(o.kind) && !o.metadata.namespace) o = { ...o, metadata: { ...o.metadata, namespace: 'default' } };
  writeFileAtomic(join(stateDir, manifestFileName(o)), stringify(o));
}

export function removeObject(stateDir: string, o: ManifestObject): void {
  try {
    unlinkSync(join(stateDir, manifestFileName(o)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
