// The lab: a small Kubernetes-like cluster on one Linux machine. Nodes and pods are network
// namespaces, pods hang off their node by veth pairs, nodes share a bridge in a fabric netns,
// and each pod's sample app runs in a kubelet-style cgroup. The cluster state is kept as
// Kubernetes manifests in the state directory, which the controller reads.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { InvalidArgumentError, PrivilegeError } from '../common/errors.js';
import { addressPlan, freeHost, MAX_NODES, type AddressPlan } from './address-plan.js';
import { cgroup2Mount, killCgroupTree, podCgroupLayout, removeCgroupTree } from './cgroup.js';
import { appServiceObject, DEFAULT_NAMESPACES, defaultPods, namespaceObject, serviceAccountObject, type PodPlacement } from './default-layout.js';
import { LabConflictError, LabExistsError, LabNotFoundError, LabObjectNotFoundError, ManifestError, type ManifestProblem } from './errors.js';
import { applyLabelChanges, parseLabelChange, type LabelChange } from './labels.js';
import { withLabLock } from './lock.js';
import { describeObject, dnsLabelProblem, isNamespaced, loadManifests, objectKey, parseManifests, type ManifestObject, type SourcedObject } from './manifests.js';
import {
  DEFAULT_LAB_NAME, FABRIC_BRIDGE, fabricNetns, netnsPath, nodeCgroupPrefix, nodeName, nodeNetns, podHostVeth, podNetns, podShort, stateDirOf, validateLabName,
} from './names.js';
import { attachPods, buildFabric, createNetnses, deleteNetnses } from './network.js';
import { appLogFile, probeClientPath, spawnInNetns, spawnInPod, startSampleApp } from './pod-process.js';
import { claimSlot } from './slots.js';
import { LOG_DIR, readObjects, readRuntime, removeObject, writeObject, writeRuntime, type LabRuntime, type NodeRuntime, type PodRuntime } from './state-store.js';
import { labHealth, removeLab, type LabHealth } from './sweep.js';
import { liveAgents, startAgent, startController, stopMesh, stopMeshProcess, type AgentProcess, type MeshRuntime } from './mesh.js';
import { processAlive } from './process.js';

export interface LabUpOptions {
  /** Lab name: 1-12 lowercase letters/digits (default 'lab'). */
  name?: string;
  /** Number of nodes, 1-15 (default 2). */
  nodes?: number;
  /** Pods per node in the default layout, 0-… (default 2). */
  podsPerNode?: number;
  /** Progress lines for long steps. */
  onProgress?: (msg: string) => void;
  /** Aborting stops the build between steps; what was made is removed and up() rejects. */
  signal?: AbortSignal;
  /** Start the controller and one agent per node (default false in the library; `weft lab up` starts them). */
  mesh?: boolean;
  /** the agents' --workers (default: theirs, CPUs - 1 capped at 3) */
  agentWorkers?: number;
}

export interface MeshStatus {
  controller?: { pid: number; alive: boolean; listen: string; caRoot: string; log: string } | undefined;
  agents: Array<{ node: string; pid: number; generation: number; alive: boolean; log: string }>;
}

export interface NodeStatus {
  name: string;
  /** Path of the netns, /run/netns/weft-<lab>-<node>. */
  netns: string;
  ip: string;
  podCIDR: string;
  /** The node's top cgroup (its kubepods.slice lives below). */
  cgroup: string;
}

export interface PodStatus {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  ip: string;
  /** Path of the netns, /run/netns/weft-<lab>-p-<uid8>. */
  netns: string;
  /** Absolute path of the container scope the app runs in. */
  cgroup: string;
  pid: number;
  podCgroup: string;
  containerId: string;
  labels: Record<string, string>;
  serviceAccount: string;
}

export interface ServiceStatus {
  namespace: string;
  name: string;
  clusterIP: string;
  ports: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }>;
  selector: Record<string, string>;
}

export interface LabStatus {
  name: string;
  slot: number;
  stateDir: string;
  fabric: { netns: string; ip: string };
  nodes: NodeStatus[];
  pods: PodStatus[];
  services: ServiceStatus[];
  /** present when the lab runs the mesh (controller and agents) */
  mesh?: MeshStatus;
}

export interface AddPodOptions {
  namespace: string;
  name: string;
  /** Node name (node1…); default: the node with the fewest pods. */
  node?: string;
  /** Default { app: <name> }. */
  labels?: Record<string, string>;
  /** Default 'default'. */
  serviceAccount?: string;
}

export interface ExecOptions {
  /** 'pipe' (default) captures stdout/stderr; 'inherit' passes the caller's terminal through. */
  stdio?: 'pipe' | 'inherit';
  input?: string;
  timeoutMs?: number;
}

export interface ExecResult {
  /** Exit code; 128+signal number when the command was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ProbeResult {
  ok: boolean;
  /** errno-style code when not ok (ECONNREFUSED, ETIMEDOUT, …). */
  code?: string;
  error?: string;
  [k: string]: unknown;
}

export interface ChangeResult {
  kind: string;
  namespace?: string;
  name: string;
  action: 'created' | 'configured' | 'unchanged' | 'deleted';
}

/** Kind order for apply (delete runs it backwards). */
const APPLY_ORDER = ['Namespace', 'ServiceAccount', 'Service', 'AuthorizationPolicy', 'PeerAuthentication', 'Gateway', 'HTTPRoute', 'Pod'];

const orderOf = (kind: string) => {
  const i = APPLY_ORDER.indexOf(kind);
  return i < 0 ? APPLY_ORDER.length : i;
};

function parseRef(ref: string): { namespace: string; name: string } {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(ref);
  if (!m) throw new InvalidArgumentError('pod', `'${ref}' must be <namespace>/<pod>, e.g. demo/client-1`);
  return { namespace: m[1]!, name: m[2]! };
}

export class Lab {
  readonly name: string;
  readonly stateDir: string;

  private constructor(name: string) {
    this.name = name;
    this.stateDir = stateDirOf(name);
  }

  /**
   * Builds a lab. Leftovers of a crashed lab of the same name are swept first; a healthy lab of
   * that name is refused (LabExistsError). On failure, everything made so far is removed.
   */
  static async up(options: LabUpOptions = {}): Promise<Lab> {
    const name = validateLabName(options.name ?? DEFAULT_LAB_NAME);
    const nodes = options.nodes ?? 2;
    const podsPerNode = options.podsPerNode ?? 2;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) throw new InvalidArgumentError('nodes', `must be 1-${MAX_NODES}, not ${nodes}`);
    if (!Number.isInteger(podsPerNode) || podsPerNode < 0 || podsPerNode > 200) throw new InvalidArgumentError('pods per node', `must be 0-200, not ${podsPerNode}`);
    const progress = options.onProgress ?? (() => undefined);
    requireRoot();
    const lab = new Lab(name);
    await withLabLock(name, async () => {
      const h = labHealth(name, true);
      if (h.state === 'healthy') throw new LabExistsError(name);
      if (h.state === 'broken') {
        progress(`sweeping what a crashed lab '${name}' left behind (${h.reason})`);
        await removeLab(name);
      }
      try {
        await lab.build(nodes, podsPerNode, progress, options.signal, options.mesh ?? false, options.agentWorkers);
      } catch (err) {
        progress(`build failed, removing what was made: ${(err as Error).message}`);
        await removeLab(name).catch(() => undefined);
        throw err;
      }
    });
    return lab;
  }

  /** Attaches to a lab that is up (built by this or another process). */
  static async open(name: string = DEFAULT_LAB_NAME): Promise<Lab> {
    validateLabName(name);
    const lab = new Lab(name);
    if (!readRuntime(lab.stateDir)) throw new LabNotFoundError(name, lab.stateDir);
    return lab;
  }

  private async build(nodeCount: number, podsPerNode: number, progress: (m: string) => void, signal?: AbortSignal, mesh = false, agentWorkers?: number): Promise<void> {
    signal?.throwIfAborted();
    const slot = claimSlot(this.name);
    const plan = addressPlan(slot);
    mkdirSync(join(this.stateDir, LOG_DIR), { recursive: true });
    const cgroupRoot = cgroup2Mount();
    const nodes: NodeRuntime[] = [];
    for (let i = 1; i <= nodeCount; i++) {
      const n = nodeName(i);
      nodes.push({ name: n, index: i, netnsName: nodeNetns(this.name, n), ip: plan.nodeIp(i), podCidr: plan.podCidr(i), cgroup: podCgroupLayout({ root: cgroupRoot, nodePrefix: nodeCgroupPrefix(this.name, n), uid: '', containerId: '' }).nodeDir });
    }
    const rt: LabRuntime = {
      version: 1,
      name: this.name,
      slot,
      phase: 'building',
      createdAt: new Date().toISOString(),
      cgroupRoot,
      fabric: { netnsName: fabricNetns(this.name), bridge: FABRIC_BRIDGE, ip: plan.fabricIp },
      nodes,
      pods: [],
    };
    writeRuntime(this.stateDir, rt);
    progress(`lab '${this.name}': address slot ${slot}, state in ${this.stateDir}`);
    progress(`creating the fabric bridge and ${nodeCount} node(s)`);
    await createNetnses([rt.fabric.netnsName, ...nodes.map((n) => n.netnsName)]);
    await buildFabric(plan, rt.fabric.netnsName, nodes);
    signal?.throwIfAborted();

    // Namespaces, service accounts and one Service per app of the default layout.
    const placements = defaultPods(nodes.map((n) => n.name), podsPerNode);
    for (const ns of DEFAULT_NAMESPACES) {
      writeObject(this.stateDir, namespaceObject(ns));
      writeObject(this.stateDir, serviceAccountObject(ns, 'default'));
    }
    const apps = [...new Map(placements.map((p) => [`${p.namespace}/${p.labels.app}`, p])).values()];
    let host = 10;
    for (const p of apps) {
      writeObject(this.stateDir, serviceAccountObject(p.namespace, p.serviceAccount));
      writeObject(this.stateDir, appServiceObject(p.namespace, p.labels.app!, plan.serviceIp(host++)));
    }
    if (placements.length > 0) {
      progress(`starting ${placements.length} pod(s): netns, veth, cgroup and sample app each`);
      await this.startPods(rt, plan, placements.map((p) => ({ placement: p })), progress, signal);
    }
    if (mesh) {
      signal?.throwIfAborted();
      await this.startMeshLocked(rt, progress, agentWorkers);
    }
    rt.phase = 'up';
    writeRuntime(this.stateDir, rt);
    progress(`lab '${this.name}' is up: ${nodeCount} node(s), ${placements.length} pod(s)${mesh ? ', controller and an agent per node' : ''}`);
  }

  /** The runtime record; throws LabNotFoundError when the lab is gone. */
  private runtime(): LabRuntime {
    const rt = readRuntime(this.stateDir);
    if (!rt) throw new LabNotFoundError(this.name, this.stateDir);
    return rt;
  }

  /**
   * Starts pods: allocates UID, IP and names, creates netns, veth pairs and cgroups, starts the
   * apps, then writes the Pod manifests. On failure the new pods are removed again.
   */
  private async startPods(rt: LabRuntime, plan: AddressPlan, pods: Array<{ placement: PodPlacement; object?: ManifestObject }>, progress?: (m: string) => void, signal?: AbortSignal): Promise<PodRuntime[]> {
    const created: PodRuntime[] = [];
    const shorts = new Set(rt.pods.map((p) => podShort(p.uid)));
    const usedIps = new Set(rt.pods.map((p) => p.ip));
    for (const { placement, object } of pods) {
      const node = rt.nodes.find((n) => n.name === placement.node)!;
      let uid = object?.metadata.uid ?? randomUUID();
      while (shorts.has(podShort(uid))) uid = randomUUID();
      shorts.add(podShort(uid));
      const ip = plan.podIp(node.index, freeHost(usedIps, (h) => plan.podIp(node.index, h), `pods on ${node.name}`));
      usedIps.add(ip);
      const containerId = randomBytes(32).toString('hex');
      const layout = podCgroupLayout({ root: rt.cgroupRoot, nodePrefix: nodeCgroupPrefix(this.name, node.name), uid, containerId });
      created.push({
        namespace: placement.namespace, name: placement.name, uid, node: node.name, ip,
        netnsName: podNetns(this.name, uid), hostVeth: podHostVeth(uid), containerId,
        cgroup: layout.containerDir, podCgroup: layout.podDir, pid: 0, pidStart: '',
      });
    }
    try {
      await createNetnses(created.map((p) => p.netnsName));
      await Promise.all(rt.nodes.map((n) => {
        const mine = created.filter((p) => p.node === n.name);
        return mine.length ? attachPods(plan, n.index, n.netnsName, mine) : undefined;
      }));
      for (const p of created) mkdirSync(p.cgroup, { recursive: true });
      const logDir = join(this.stateDir, LOG_DIR);
      mkdirSync(logDir, { recursive: true });
      // A few at a time: each is a Node start-up, CPU-bound.
      const queue = [...created];
      let done = 0;
      await Promise.all(Array.from({ length: Math.min(8, queue.length) }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) {
          signal?.throwIfAborted();
          const started = await startSampleApp({ namespace: p.namespace, name: p.name, cgroup: p.cgroup, netnsFile: netnsPath(p.netnsName), logDir, uid: p.uid });
          p.pid = started.pid;
          p.pidStart = started.pidStart;
          if (progress && created.length > 10 && ++done % 10 === 0 && done < created.length) progress(`  ${done}/${created.length} pods running`);
        }
      }));
    } catch (err) {
      await this.destroyPods(created).catch(() => undefined);
      throw err;
    }
    rt.pods.push(...created);
    writeRuntime(this.stateDir, rt);
    pods.forEach(({ placement, object }, i) => writeObject(this.stateDir, podObject(created[i]!, placement, rt, object)));
    return created;
  }

  /** Kills the pods' processes and removes their netns (and veths), cgroups and logs. */
  private async destroyPods(pods: PodRuntime[]): Promise<void> {
    for (const p of pods) await killCgroupTree(p.podCgroup);
    await deleteNetnses(pods.map((p) => p.netnsName));
    for (const p of pods) {
      await removeCgroupTree(p.podCgroup);
      rmSync(appLogFile(join(this.stateDir, LOG_DIR), p.uid), { force: true });
    }
  }

  /** Removes every namespace, link, cgroup, process, BPF pin and file of the lab. */
  async down(): Promise<void> {
    requireRoot();
    await withLabLock(this.name, () => removeLab(this.name));
  }

  private async startMeshLocked(rt: LabRuntime, progress: (m: string) => void, agentWorkers?: number): Promise<void> {
    const mesh: MeshRuntime = rt.mesh ?? { agents: [], nextGeneration: 1, ...(agentWorkers !== undefined ? { agentWorkers } : {}) };
    rt.mesh = mesh;
    try {
      if (!mesh.controller || !processAlive(mesh.controller.pid, mesh.controller.pidStart || undefined)) {
        progress(`starting the controller in ${rt.fabric.netnsName} (weft controller --source dir:${this.stateDir})`);
        await startController(this.name, this.stateDir, rt, mesh);
      }
      progress(`starting an agent on ${rt.nodes.length} node(s)`);
      await Promise.all(rt.nodes.filter((n) => liveAgents(mesh, n.name).length === 0).map(async (n) => {
        await startAgent(this.name, this.stateDir, rt, mesh, n.name);
        progress(`  agent on ${n.name} is ready`);
      }));
    } finally {
      writeRuntime(this.stateDir, rt);
    }
  }

  /** Starts the controller and an agent per node where none runs (a lab built without them). */
  async startMesh(onProgress: (m: string) => void = () => undefined): Promise<void> {
    requireRoot();
    await withLabLock(this.name, () => this.startMeshLocked(this.runtime(), onProgress));
  }

  /** Stops the agents and the controller (SIGTERM, then SIGKILL); pins stay until `down`. */
  async stopMesh(): Promise<void> {
    requireRoot();
    await withLabLock(this.name, async () => {
      const rt = this.runtime();
      if (rt.mesh) await stopMesh(rt.mesh);
      delete rt.mesh;
      writeRuntime(this.stateDir, rt);
    });
  }

  private async withMesh<T>(f: (rt: LabRuntime, mesh: MeshRuntime) => Promise<T>): Promise<T> {
    requireRoot();
    return withLabLock(this.name, async () => {
      const rt = this.runtime();
      if (!rt.mesh) throw new InvalidArgumentError('lab', `lab '${this.name}' does not run the mesh (start it with lab.startMesh() or weft lab up)`);
      try {
        return await f(rt, rt.mesh);
      } finally {
        rt.mesh.agents = rt.mesh.agents.filter((a) => processAlive(a.pid, a.pidStart || undefined));
        writeRuntime(this.stateDir, rt);
      }
    }, 60_000);
  }

  /**
   * Upgrade without loss (issue 6): a new agent starts beside the old one (SO_REUSEPORT), and
   * once it is ready the old one gets SIGTERM and drains. Returns the new agent's pid.
   */
  async restartAgent(node: string, options: { drainDeadline?: string } = {}): Promise<{ oldPids: number[]; pid: number }> {
    return this.withMesh(async (rt, mesh) => {
      const old = liveAgents(mesh, node);
      const p = await startAgent(this.name, this.stateDir, rt, mesh, node, options);
      await Promise.all(old.map((a) => stopMeshProcess(a, 'SIGTERM', 30_000)));
      return { oldPids: old.map((a) => a.pid), pid: p.pid };
    });
  }

  /** Signals every agent of `node` (SIGTERM drains; SIGKILL is a crash) and waits for it to exit. */
  async stopAgent(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number[]> {
    return this.withMesh(async (_rt, mesh) => {
      const old = liveAgents(mesh, node);
      await Promise.all(old.map((a) => stopMeshProcess(a, signal, 30_000)));
      return old.map((a) => a.pid);
    });
  }

  /** Starts an agent for `node` (beside any running one) and waits until it is ready. */
  async startAgent(node: string): Promise<number> {
    return this.withMesh(async (rt, mesh) => (await startAgent(this.name, this.stateDir, rt, mesh, node)).pid);
  }

  /** Stops the controller (agents keep serving with their last state). */
  async stopController(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.withMesh(async (_rt, mesh) => {
      if (mesh.controller) await stopMeshProcess(mesh.controller, signal);
    });
  }

  /** Starts the controller again (same CA and token key). */
  async startController(): Promise<void> {
    await this.withMesh(async (rt, mesh) => {
      if (mesh.controller && processAlive(mesh.controller.pid, mesh.controller.pidStart || undefined)) return;
      await startController(this.name, this.stateDir, rt, mesh);
    });
  }

  /** healthy / broken (with the reason) / busy / absent. */
  health(): LabHealth {
    return labHealth(this.name);
  }

  status(): LabStatus {
    const rt = this.runtime();
    const objects = readObjects(this.stateDir);
    const services: ServiceStatus[] = [];
    for (const o of objects.values()) {
      if (o.kind !== 'Service') continue;
      services.push({
        namespace: o.metadata.namespace ?? 'default',
        name: o.metadata.name,
        clusterIP: String(o.spec?.clusterIP ?? ''),
        ports: (o.spec?.ports ?? []) as ServiceStatus['ports'],
        selector: (o.spec?.selector ?? {}) as Record<string, string>,
      });
    }
    return {
      name: this.name,
      slot: rt.slot,
      stateDir: this.stateDir,
      fabric: { netns: netnsPath(rt.fabric.netnsName), ip: rt.fabric.ip },
      nodes: rt.nodes.map((n) => ({ name: n.name, netns: netnsPath(n.netnsName), ip: n.ip, podCIDR: n.podCidr, cgroup: n.cgroup })),
      pods: rt.pods.map((p) => this.podStatusOf(p, objects)),
      services,
      ...(rt.mesh ? { mesh: meshStatus(rt.mesh) } : {}),
    };
  }

  private podStatusOf(p: PodRuntime, objects: Map<string, ManifestObject>): PodStatus {
    const o = objects.get(`Pod/${p.namespace}/${p.name}`);
    return {
      namespace: p.namespace, name: p.name, uid: p.uid, node: p.node, ip: p.ip, netns: netnsPath(p.netnsName),
      cgroup: p.cgroup, pid: p.pid, podCgroup: p.podCgroup, containerId: p.containerId,
      labels: { ...(o?.metadata.labels ?? {}) }, serviceAccount: String(o?.spec?.serviceAccountName ?? 'default'),
    };
  }

  /** One pod's status by 'namespace/name'. */
  pod(ref: string): PodStatus {
    const { namespace, name } = parseRef(ref);
    const p = this.runtime().pods.find((x) => x.namespace === namespace && x.name === name);
    if (!p) throw new LabObjectNotFoundError(`pod ${ref}`, { hint: 'see `weft lab status` for the pods' });
    return this.podStatusOf(p, readObjects(this.stateDir));
  }

  /** One node's status by name (node1…). */
  node(name: string): NodeStatus {
    const n = this.status().nodes.find((x) => x.name === name);
    if (!n) throw new LabObjectNotFoundError(`node ${name}`, { hint: 'see `weft lab status` for the nodes' });
    return n;
  }

  /** Spawns a command in the pod's netns and container cgroup (like kubectl exec). */
  spawn(ref: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
    if (argv.length === 0) throw new InvalidArgumentError('command', 'give a command to run');
    const p = this.pod(ref);
    return spawnInPod(p.cgroup, p.netns, argv, options);
  }

  /** Spawns a command in a node's netns (cgroup unchanged). */
  spawnInNode(node: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
    if (argv.length === 0) throw new InvalidArgumentError('command', 'give a command to run');
    return spawnInNetns(this.node(node).netns, argv, options);
  }

  /** Runs a command in the pod's netns and cgroup; resolves with its exit code (and output when piped). */
  exec(ref: string, argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return collect(this.spawn(ref, argv, spawnOptionsFor(options)), options);
  }

  /** Runs a command in a node's netns. */
  execInNode(node: string, argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return collect(this.spawnInNode(node, argv, spawnOptionsFor(options)), options);
  }

  /** HTTP GET from inside a pod (a small Node client run via exec). */
  async httpGet(fromRef: string, url: string, timeoutMs = 5000): Promise<ProbeResult & { status?: number; body?: string }> {
    return this.probe(fromRef, ['http', url, String(timeoutMs)]);
  }

  /** Sends `text` to a TCP echo server from inside a pod and returns what came back. */
  async tcpEcho(fromRef: string, host: string, port: number, text: string, timeoutMs = 5000): Promise<ProbeResult & { reply?: string }> {
    return this.probe(fromRef, ['echo', host, String(port), text, String(timeoutMs)]);
  }

  /** Opens a TCP connection from inside a pod; code is e.g. ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT when it fails. */
  async tcpConnect(fromRef: string, host: string, port: number, timeoutMs = 5000): Promise<ProbeResult & { local?: string }> {
    return this.probe(fromRef, ['connect', host, String(port), String(timeoutMs)]);
  }

  private async probe(fromRef: string, args: string[]): Promise<ProbeResult> {
    const r = await this.exec(fromRef, [process.execPath, probeClientPath(), ...args]);
    try {
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ProbeResult;
    } catch {
      return { ok: false, code: 'PROBE_FAILED', error: `exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}` };
    }
  }

  /** Adds and starts one pod (netns, veth, cgroup, sample app) and writes its manifest. */
  async addPod(options: AddPodOptions): Promise<PodStatus> {
    const object: ManifestObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: options.name, namespace: options.namespace, labels: options.labels ?? { app: options.name } },
      spec: { ...(options.node ? { nodeName: options.node } : {}), serviceAccountName: options.serviceAccount ?? 'default' },
    };
    await this.applyObjects([{ object, file: `addPod(${options.namespace}/${options.name})`, line: 1 }], { createOnly: true });
    return this.pod(`${options.namespace}/${options.name}`);
  }

  /** Stops and removes one pod ('namespace/name'). */
  async removePod(ref: string): Promise<void> {
    const { namespace, name } = parseRef(ref);
    await this.deleteObjects([{ object: { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace } }, file: `removePod(${ref})`, line: 1 }], {});
  }

  /**
   * Adds or updates objects from a YAML file or directory (or objects). Everything is checked
   * first (YAML, kinds, schema, references); on any problem nothing is written.
   */
  async apply(source: string | string[] | ManifestObject[]): Promise<ChangeResult[]> {
    return this.applyObjects(sourced(source), {});
  }

  /** Removes the objects named in a YAML file or directory (or objects); deleting a Namespace removes everything in it. */
  async delete(source: string | string[] | ManifestObject[], options: { ignoreNotFound?: boolean } = {}): Promise<ChangeResult[]> {
    return this.deleteObjects(sourced(source), options);
  }

  /**
   * `kubectl label`: changes are 'key=value' (set) or 'key-' (remove). Changing an existing
   * value needs overwrite, as in kubectl. Returns true when the labels changed.
   */
  async label(kind: 'namespace' | 'pod', target: string, changes: string | string[], options: { overwrite?: boolean } = {}): Promise<boolean> {
    const parsed: LabelChange[] = (Array.isArray(changes) ? changes : [changes]).map(parseLabelChange);
    if (parsed.length === 0) throw new InvalidArgumentError('label', 'give at least one key=value or key-');
    let key: string;
    if (kind === 'namespace') {
      const p = dnsLabelProblem('namespace', target);
      if (p) throw new InvalidArgumentError('namespace', p);
      key = `Namespace//${target}`;
    } else if (kind === 'pod') {
      const { namespace, name } = parseRef(target);
      key = `Pod/${namespace}/${name}`;
    } else {
      throw new InvalidArgumentError('kind', `'${String(kind)}' must be namespace or pod`);
    }
    requireRoot();
    return withLabLock(this.name, async () => {
      this.runtime();
      const o = readObjects(this.stateDir).get(key);
      if (!o) throw new LabObjectNotFoundError(`${kind} ${target}`);
      const before = o.metadata.labels ?? {};
      const r = applyLabelChanges(before, parsed, options.overwrite ?? false);
      if (r.conflict) {
        throw new LabConflictError(`${kind} ${target} already has label '${r.conflict}=${before[r.conflict]}'; nothing was changed`, { hint: 'pass --overwrite (overwrite: true) to change it' });
      }
      if (JSON.stringify(r.labels) === JSON.stringify(before)) return false;
      writeObject(this.stateDir, { ...o, metadata: { ...o.metadata, labels: r.labels } });
      return true;
    });
  }

  private async applyObjects(items: SourcedObject[], options: { createOnly?: boolean }): Promise<ChangeResult[]> {
    requireRoot();
    return withLabLock(this.name, async () => {
      const rt = this.runtime();
      const plan = addressPlan(rt.slot);
      const current = readObjects(this.stateDir);
      const batch = new Map(items.map((i) => [objectKey(i.object), i.object]));
      const exists = (key: string) => current.has(key) || batch.has(key);
      const problems: ManifestProblem[] = [];
      const usedClusterIPs = new Map<string, string>();
      for (const [k, o] of current) if (o.kind === 'Service' && typeof o.spec?.clusterIP === 'string') usedClusterIPs.set(o.spec.clusterIP, k);
      const podCounts = new Map(rt.nodes.map((n) => [n.name, rt.pods.filter((p) => p.node === n.name).length]));
      const placements = new Map<string, PodPlacement>();

      for (const item of items) {
        const o = structuredClone(item.object);
        const key = objectKey(o);
        const bad = (message: string) => problems.push({ file: item.file, line: item.line, message: `${describeObject(o)}: ${message}` });
        if (isNamespaced(o.kind)) {
          o.metadata.namespace ??= 'default';
          if (!exists(`Namespace//${o.metadata.namespace}`)) bad(`namespace '${o.metadata.namespace}' does not exist (apply a Namespace first)`);
        }
        const old = current.get(key);
        if (old && options.createOnly) bad('already exists');
        if (o.kind === 'Service') {
          const want = o.spec?.clusterIP ?? old?.spec?.clusterIP;
          if (typeof want === 'string' && want !== 'None') {
            const holder = usedClusterIPs.get(want);
            if (holder && holder !== key) bad(`clusterIP ${want} is already used by ${holder}`);
            usedClusterIPs.set(want, key);
          }
          o.spec = { ...o.spec, clusterIP: want ?? '' };
        }
        if (o.kind === 'Pod') {
          const sa = String(o.spec?.serviceAccountName ?? 'default');
          if (sa !== 'default' && !exists(`ServiceAccount/${o.metadata.namespace}/${sa}`)) bad(`service account '${sa}' does not exist in namespace '${o.metadata.namespace}'`);
          if (old) {
            // Running pods only take label and annotation changes, as in Kubernetes.
            const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
            if (o.spec?.nodeName !== undefined && o.spec.nodeName !== old.spec?.nodeName) bad(`spec.nodeName cannot change on a running pod (delete and re-create it)`);
            if (o.spec?.serviceAccountName !== undefined && !same(o.spec.serviceAccountName, old.spec?.serviceAccountName)) bad('spec.serviceAccountName cannot change on a running pod');
            if (o.metadata.uid !== undefined && o.metadata.uid !== old.metadata.uid) bad('metadata.uid cannot change');
          } else {
            let node = o.spec?.nodeName as string | undefined;
            if (node !== undefined && !podCounts.has(node)) bad(`node '${node}' does not exist (nodes: ${rt.nodes.map((n) => n.name).join(', ')})`);
            if (node === undefined) node = [...podCounts.entries()].sort((a, b) => a[1] - b[1])[0]?.[0];
            if (node !== undefined && podCounts.has(node)) {
              podCounts.set(node, podCounts.get(node)! + 1);
              if (o.metadata.uid && rt.pods.some((p) => p.uid === o.metadata.uid)) bad(`metadata.uid ${o.metadata.uid} is used by another pod`);
              placements.set(key, { namespace: o.metadata.namespace!, name: o.metadata.name, node, labels: o.metadata.labels ?? {}, serviceAccount: sa });
            }
          }
        }
        item.object = o;
      }
      if (problems.length > 0) throw new ManifestError(problems);

      // Cluster IPs for new services without one.
      for (const item of items) {
        const o = item.object;
        if (o.kind === 'Service' && !o.spec!.clusterIP) {
          const used = new Set(usedClusterIPs.keys());
          const ip = plan.serviceIp(freeHost(used, plan.serviceIp, 'services'));
          usedClusterIPs.set(ip, objectKey(o));
          o.spec!.clusterIP = ip;
        }
      }

      const results: ChangeResult[] = [];
      const newPods: Array<{ placement: PodPlacement; object: ManifestObject }> = [];
      for (const item of [...items].sort((a, b) => orderOf(a.object.kind) - orderOf(b.object.kind))) {
        const o = item.object;
        const key = objectKey(o);
        const old = current.get(key);
        const result: ChangeResult = { kind: o.kind, name: o.metadata.name, action: 'created', ...(isNamespaced(o.kind) ? { namespace: o.metadata.namespace! } : {}) };
        if (o.kind === 'Pod' && !old) {
          newPods.push({ placement: placements.get(key)!, object: o });
          results.push(result);
          continue;
        }
        let next = o;
        if (o.kind === 'Pod' && old) {
          // Keep what the lab owns (uid, node, status); take labels and annotations.
          next = { ...old, metadata: { ...old.metadata, labels: o.metadata.labels ?? {}, ...(o.metadata.annotations ? { annotations: o.metadata.annotations } : {}) } };
        }
        if (old) result.action = stringify(old) === stringify(next) ? 'unchanged' : 'configured';
        if (result.action !== 'unchanged') writeObject(this.stateDir, next);
        if (o.kind === 'Namespace' && !old && !exists(`ServiceAccount/${o.metadata.name}/default`)) {
          writeObject(this.stateDir, serviceAccountObject(o.metadata.name, 'default'));
        }
        results.push(result);
      }
      if (newPods.length > 0) await this.startPods(rt, plan, newPods);
      return results;
    });
  }

  private async deleteObjects(items: SourcedObject[], options: { ignoreNotFound?: boolean }): Promise<ChangeResult[]> {
    requireRoot();
    return withLabLock(this.name, async () => {
      const rt = this.runtime();
      const current = readObjects(this.stateDir);
      const missing = items.filter((i) => !current.has(objectKey(i.object)));
      if (missing.length > 0 && !options.ignoreNotFound) {
        throw new LabObjectNotFoundError(missing.map((i) => `${describeObject(i.object)} (${i.file}:${i.line})`).join(', '), { hint: 'pass --ignore-not-found to delete the others anyway' });
      }
      const doomed = new Map<string, ManifestObject>();
      for (const i of items) {
        const key = objectKey(i.object);
        const o = current.get(key);
        if (!o) continue;
        doomed.set(key, o);
        if (o.kind === 'Namespace') {
          for (const [k, x] of current) if (isNamespaced(x.kind) && x.metadata.namespace === o.metadata.name) doomed.set(k, x);
        }
      }
      const podKeys = new Set([...doomed.values()].filter((o) => o.kind === 'Pod').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
      const pods = rt.pods.filter((p) => podKeys.has(`${p.namespace}/${p.name}`));
      // Pods that belong to a deleted namespace but have no manifest (should not happen) go too.
      const deadNs = new Set([...doomed.values()].filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
      for (const p of rt.pods) if (deadNs.has(p.namespace) && !pods.includes(p)) pods.push(p);
      if (pods.length > 0) {
        await this.destroyPods(pods);
        rt.pods = rt.pods.filter((p) => !pods.includes(p));
        writeRuntime(this.stateDir, rt);
      }
      const results: ChangeResult[] = [];
      for (const o of [...doomed.values()].sort((a, b) => orderOf(b.kind) - orderOf(a.kind))) {
        removeObject(this.stateDir, o);
        results.push({ kind: o.kind, name: o.metadata.name, action: 'deleted', ...(isNamespaced(o.kind) ? { namespace: o.metadata.namespace ?? 'default' } : {}) });
      }
      return results;
    });
  }
}

function meshStatus(m: MeshRuntime): MeshStatus {
  const alive = (p: { pid: number; pidStart: string }) => processAlive(p.pid, p.pidStart || undefined);
  const c = m.controller;
  return {
    controller: c ? { pid: c.pid, alive: alive(c), listen: c.listen, caRoot: c.caRoot, log: c.log } : undefined,
    agents: m.agents.map((a: AgentProcess) => ({ node: a.node, pid: a.pid, generation: a.generation, alive: alive(a), log: a.log })),
  };
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new PrivilegeError('the lab needs root: it creates network namespaces, veth pairs and cgroups', { hint: 'run it as root (sudo npx weft lab …)' });
  }
}

function sourced(source: string | string[] | ManifestObject[]): SourcedObject[] {
  if (typeof source === 'string') return loadManifests(source);
  if (source.every((s) => typeof s === 'string')) return loadManifests(source as string[]);
  // Objects from code get the same checks as files.
  const text = (source as ManifestObject[]).map((o) => stringify(o)).join('---\n');
  return parseManifests(text, '<objects>');
}

function podObject(p: PodRuntime, placement: PodPlacement, rt: LabRuntime, given?: ManifestObject): ManifestObject {
  const node = rt.nodes.find((n) => n.name === p.node)!;
  const spec = given?.spec ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...(given?.metadata ?? {}), name: p.name, namespace: p.namespace, uid: p.uid, labels: { ...placement.labels } },
    spec: {
      ...spec,
      nodeName: p.node,
      serviceAccountName: placement.serviceAccount,
      containers: spec.containers ?? [{ name: 'app', image: 'weft/sample-app', ports: [{ name: 'tcp-echo', containerPort: 9000 }, { name: 'http', containerPort: 8080 }] }],
    },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], hostIP: node.ip },
  };
}

function spawnOptionsFor(options: ExecOptions): SpawnOptions {
  const s: SpawnOptions = { stdio: options.stdio === 'inherit' ? 'inherit' : ['pipe', 'pipe', 'pipe'] };
  if (options.timeoutMs !== undefined) s.timeout = options.timeoutMs;
  return s;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

function collect(child: ChildProcess, options: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (SIGNALS[signal ?? ''] ?? 0), stdout, stderr }));
    if (child.stdin) child.stdin.end(options.input ?? '');
  });
}

/** True when a lab of that name has state on this machine (healthy or not). */
export function labExists(name: string = DEFAULT_LAB_NAME): boolean {
  return existsSync(join(stateDirOf(validateLabName(name)), 'runtime.json'));
}
