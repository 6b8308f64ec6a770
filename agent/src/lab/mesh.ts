// The lab's control and data plane: `weft controller --source dir:<state dir>` in the fabric
// netns and one `weft agent` per node in the node's netns, each a detached process in its own
// cgroup under <mount>/weft-<lab>-mesh.slice (so `down`/sweep find and kill them like the
// apps), with pins under /sys/fs/bpf/weft-<lab>-<node> (removed by `down`). The controller's
// CA, token key and the node tokens live in <state dir>/.mesh (dot: the controller's directory
// source skips it). Pids, start times and log files are recorded in runtime.json.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../common/errors.js';
import { HmacNodeTokens } from '../identity/node-auth.js';
import { killCgroupTree, removeCgroupTree } from './cgroup.js';
import { BPFFS, hostPrefix, netnsPath } from './names.js';
import { spawnInPod } from './pod-process.js';
import { processAlive, processStartTime } from './process.js';
import { LOG_DIR, type LabRuntime } from './state-store.js';

export const CONTROLLER_PORT = 15012;
export const MESH_DIR = '.mesh';

export interface MeshProcess {
  pid: number;
  pidStart: string;
  cgroup: string;
  log: string;
  startedAt: string;
}

export interface AgentProcess extends MeshProcess {
  node: string;
  generation: number;
}

export interface MeshRuntime {
  controller?: (MeshProcess & { listen: string; stateDir: string; caRoot: string }) | undefined;
  agents: AgentProcess[];
  /** next agent generation (restart-agent starts generation n+1 beside n) */
  nextGeneration: number;
  /** the agents' --workers, when the lab was brought up with one */
  agentWorkers?: number;
}

export class MeshStartError extends WeftError {
  constructor(what: string, detail: string, log: string) {
    super('WEFT_E_LAB_MESH', `${what} did not start: ${detail}`, { hint: `see ${log}` });
  }
}

export function weftBin(): string {
  // dist/agent/src/lab → <root>/agent/bin/weft.js
  return fileURLToPath(new URL('../../../../agent/bin/weft.js', import.meta.url));
}

export function meshCgroupDir(rt: LabRuntime, lab: string): string {
  return join(rt.cgroupRoot, `${hostPrefix(lab)}mesh.slice`);
}

export function agentId(lab: string, node: string): string {
  return `${hostPrefix(lab)}${node}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return 'no output';
  }
}

/** Starts argv detached in a new cgroup and netns, output to `log`. */
function spawnMeshProcess(cgroup: string, netns: string, argv: string[], log: string): MeshProcess {
  mkdirSync(cgroup, { recursive: true });
  const fd = openSync(log, 'a');
  let pid: number | undefined;
  try {
    const child = spawnInPod(cgroup, netns, [process.execPath, weftBin(), ...argv], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...(process.env.WEFT_LOG_LEVEL ? { WEFT_LOG_LEVEL: process.env.WEFT_LOG_LEVEL } : {}) },
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new MeshStartError(argv.slice(0, 1).join(' '), 'could not spawn', log);
  return { pid, pidStart: processStartTime(pid) ?? '', cgroup, log, startedAt: new Date().toISOString() };
}

/** Waits until `log` (from `offset`) has a line matching `re`, while the process lives. */
async function waitForLog(p: MeshProcess, re: RegExp, what: string, timeoutMs: number, offset = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(p.log, 'utf8').slice(offset);
    } catch {
      /* not yet */
    }
    if (re.test(text)) return;
    if (!processAlive(p.pid)) throw new MeshStartError(what, `it exited: ${tail(p.log)}`, p.log);
    if (Date.now() > deadline) throw new MeshStartError(what, `not ready within ${timeoutMs} ms: ${tail(p.log)}`, p.log);
    await sleep(50);
  }
}

/** Waits until `file` exists, while the process lives. */
async function waitForFile(p: MeshProcess, file: string, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (!processAlive(p.pid)) throw new MeshStartError(what, `it exited: ${tail(p.log)}`, p.log);
    if (Date.now() > deadline) throw new MeshStartError(what, `not ready within ${timeoutMs} ms: ${tail(p.log)}`, p.log);
    await sleep(50);
  }
}

function fileSize(f: string): number {
  try {
    return readFileSync(f).length;
  } catch {
    return 0;
  }
}

/** Signals a mesh process and waits for it to exit; SIGKILL after `graceMs`. */
export async function stopMeshProcess(p: MeshProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 8000): Promise<void> {
  const alive = () => processAlive(p.pid, p.pidStart || undefined);
  if (alive()) {
    try {
      process.kill(p.pid, signal);
    } catch {
      /* gone */
    }
    const deadline = Date.now() + graceMs;
    while (alive() && Date.now() < deadline) await sleep(25);
  }
  await killCgroupTree(p.cgroup).catch(() => undefined);
  await removeCgroupTree(p.cgroup).catch(() => undefined);
}

export async function startController(lab: string, stateDir: string, rt: LabRuntime, mesh: MeshRuntime): Promise<void> {
  const dir = join(stateDir, MESH_DIR, 'controller');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const listen = `${rt.fabric.ip}:${CONTROLLER_PORT}`;
  const log = join(stateDir, LOG_DIR, 'controller.log');
  const offset = fileSize(log);
  const p = spawnMeshProcess(join(meshCgroupDir(rt, lab), 'controller.scope'), netnsPath(rt.fabric.netnsName), ['controller', '--source', `dir:${stateDir}`, '--listen', listen, '--state-dir', dir], log);
  mesh.controller = { ...p, listen, stateDir: dir, caRoot: join(dir, 'ca', 'ca-cert.pem') };
  await waitForLog(p, /weft controller: serving on/, 'the controller', 60_000, offset);
}

/** Writes <state>/.mesh/tokens/<node>.token, signed with the controller's key. */
export async function nodeTokenFile(stateDir: string, node: string): Promise<string> {
  const tokens = await HmacNodeTokens.fromStateDir(join(stateDir, MESH_DIR, 'controller'));
  const dir = join(stateDir, MESH_DIR, 'tokens');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = join(dir, `${node}.token`);
  if (!existsSync(f)) writeFileSync(f, tokens.issue(node) + '\n', { mode: 0o600 });
  return f;
}

export interface StartAgentOptions {
  drainDeadline?: string;
  timeoutMs?: number;
}

/** Starts one agent for `node` (beside any running one) and waits until it reports ready. */
export async function startAgent(lab: string, stateDir: string, rt: LabRuntime, mesh: MeshRuntime, node: string, options: StartAgentOptions = {}): Promise<AgentProcess> {
  const n = rt.nodes.find((x) => x.name === node);
  if (!n) throw new WeftError('WEFT_E_LAB_NO_NODE', `node '${node}' does not exist in lab '${lab}' (nodes: ${rt.nodes.map((x) => x.name).join(', ')})`);
  if (!mesh.controller) throw new WeftError('WEFT_E_LAB_MESH', `lab '${lab}' has no controller`, { hint: 'bring the lab up with the mesh (weft lab up)' });
  const generation = mesh.nextGeneration++;
  const token = await nodeTokenFile(stateDir, node);
  const log = join(stateDir, LOG_DIR, `agent-${node}.${generation}.log`);
  const readyFile = join(stateDir, LOG_DIR, `agent-${node}.${generation}.ready`);
  rmSync(readyFile, { force: true }); // a killed agent of an earlier mesh with this generation left it
  const argv = [
    'agent', '--node', node, '--controller', mesh.controller.listen, '--token-file', token, '--ca-root', mesh.controller.caRoot,
    '--bpffs-dir', join(BPFFS, agentId(lab, node)), '--cgroup-root', n.cgroup, '--drain-deadline', options.drainDeadline ?? '5s',
    '--ready-file', readyFile,
    ...(mesh.agentWorkers !== undefined ? ['--workers', String(mesh.agentWorkers)] : []),
  ];
  const p: AgentProcess = { ...spawnMeshProcess(join(meshCgroupDir(rt, lab), `agent-${node}-${generation}.scope`), netnsPath(n.netnsName), argv, log), node, generation };
  mesh.agents.push(p);
  // This agent's own ready file: :15021 may be the old agent's during a restart, and the log
  // line may be filtered out (WEFT_LOG_LEVEL=warn).
  await waitForFile(p, readyFile, `the agent of ${node}`, options.timeoutMs ?? 60_000);
  return p;
}

export function liveAgents(mesh: MeshRuntime, node?: string): AgentProcess[] {
  return mesh.agents.filter((a) => (node === undefined || a.node === node) && processAlive(a.pid, a.pidStart || undefined));
}

/** Stops every agent, then the controller (SIGTERM, SIGKILL after the grace time). */
export async function stopMesh(mesh: MeshRuntime, graceMs = 8000): Promise<void> {
  await Promise.all(mesh.agents.map((a) => stopMeshProcess(a, 'SIGTERM', graceMs)));
  mesh.agents = [];
  if (mesh.controller) await stopMeshProcess(mesh.controller, 'SIGTERM', graceMs);
}
