// Finding and removing what a lab left behind. Everything a lab makes is named from its name
// (netns weft-<lab>-*, cgroups <mount>/weft-<lab>-*.slice, BPF pins /sys/fs/bpf/weft-<lab>[-*])
// or lives in its state directory, so removal works from the name alone, even when the
// process that built the lab was SIGKILLed half-way.
import { existsSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount, cgroupOfProcess, killCgroupTree, removeCgroupTree } from './cgroup.js';
import { PrivilegeError } from '../common/errors.js';
import { LabBusyError } from './errors.js';
import { lockHolder, withLabLock } from './lock.js';
import { BPFFS, fabricNetns, hostPrefix, labRoot, lockFileOf, stateDirOf, validateLabName } from './names.js';
import { deleteNetnses, listNetns } from './network.js';
import { processAlive } from './process.js';
import { releaseSlots, slotsOf } from './slots.js';
import { readRuntime } from './state-store.js';
import { stopMesh } from './mesh.js';

export type LabHealthState = 'absent' | 'busy' | 'healthy' | 'broken';

export interface LabHealth {
  state: LabHealthState;
  /** Why the lab is broken (or who holds it when busy). */
  reason?: string;
}

function cgroupRootOrUndefined(): string | undefined {
  try {
    return cgroup2Mount();
  } catch {
    return undefined;
  }
}

function labCgroups(root: string | undefined, lab: string): string[] {
  if (!root) return [];
  try {
    return readdirSync(root).filter((e) => e.startsWith(hostPrefix(lab))).map((e) => join(root, e));
  } catch {
    return [];
  }
}

function labPins(lab: string): string[] {
  try {
    return readdirSync(BPFFS).filter((e) => e === `weft-${lab}` || e.startsWith(hostPrefix(lab))).map((e) => join(BPFFS, e));
  } catch {
    return [];
  }
}

/**
 * Processes that belong to the lab: in one of its cgroups, or started with one of its netns or
 * cgroup paths on the command line (nsenter --net=/run/netns/weft-<lab>-…).
 */
export function labProcesses(lab: string, options: { toolsOnly?: boolean } = {}): number[] {
  const prefix = hostPrefix(lab);
  const marker = `/${prefix}`;
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    // Zombies are dead already; reaping them is their parent's (often init's) business.
    if (!processAlive(Number(e))) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const mentions = argv.some((a) => a.startsWith(prefix) || a.includes(marker));
      if (options.toolsOnly) {
        // ip, nsenter and the cgroup-joining shell the lab runs: left running when the process
        // that started them was killed, they could still create netns after a sweep listed them.
        const comm = readFileSync(`/proc/${e}/comm`, 'utf8').trim();
        if (mentions && ['ip', 'nsenter', 'sh', 'sysctl'].includes(comm)) out.push(Number(e));
        continue;
      }
      const cg = readFileSync(`/proc/${e}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')) ?? '';
      if (cg.includes(marker) || mentions) out.push(Number(e));
    } catch {
      /* exited while scanning */
    }
  }
  return out;
}

/** What of the lab exists on the host right now (empty lists: nothing left). */
export function labLeftovers(lab: string): { netns: string[]; cgroups: string[]; pins: string[]; files: string[]; processes: number[] } {
  // A lock held by a live process is not a leftover; a stale one is.
  const files = [stateDirOf(lab), ...(lockHolder(lab) === undefined ? [lockFileOf(lab)] : [])].filter((f) => existsSync(f));
  for (const s of slotsOf(lab)) files.push(join(labRoot(), '.slots', String(s)));
  return { netns: listNetns(hostPrefix(lab)), cgroups: labCgroups(cgroupRootOrUndefined(), lab), pins: labPins(lab), files, processes: labProcesses(lab) };
}

/**
 * Whether the lab is healthy: its build finished, its namespaces exist and every pod's app is
 * alive in its cgroup. `ownLock` ignores a lock held by this process.
 */
export function labHealth(lab: string, ownLock = false): LabHealth {
  const holder = lockHolder(lab);
  if (holder !== undefined && !(ownLock && holder === process.pid)) return { state: 'busy', reason: `being changed by process ${holder}` };
  const left = labLeftovers(lab);
  const stateDir = stateDirOf(lab);
  if (!existsSync(stateDir)) {
    const any = left.netns.length + left.cgroups.length + left.pins.length + left.files.length + left.processes.length > 0;
    return any ? { state: 'broken', reason: 'leftovers without a state directory' } : { state: 'absent' };
  }
  const rt = readRuntime(stateDir);
  if (!rt) return { state: 'broken', reason: 'no runtime.json (the build was interrupted)' };
  if (rt.phase !== 'up') return { state: 'broken', reason: 'the build did not finish' };
  for (const ns of [rt.fabric.netnsName, ...rt.nodes.map((n) => n.netnsName), ...rt.pods.map((p) => p.netnsName)]) {
    if (!existsSync(join('/run/netns', ns))) return { state: 'broken', reason: `netns ${ns} is gone` };
  }
  for (const p of rt.pods) {
    if (!processAlive(p.pid, p.pidStart) || cgroupOfProcess(p.pid, rt.cgroupRoot) !== p.cgroup) {
      return { state: 'broken', reason: `the app of pod ${p.namespace}/${p.name} (pid ${p.pid}) is gone` };
    }
  }
  return { state: 'healthy' };
}

/**
 * Removes everything of lab `lab`, unconditionally: kills its processes (every process in its
 * cgroups, and its recorded app pids), deletes its netns (and with them its links), cgroups,
 * BPF pins, state directory, slot claim and lock. The caller holds the lab's lock.
 */
export async function removeLab(lab: string): Promise<void> {
  validateLabName(lab);
  const stateDir = stateDirOf(lab);
  const rt = readRuntime(stateDir);
  const root = rt?.cgroupRoot ?? cgroupRootOrUndefined();
  const errors: unknown[] = [];
  // First the lab's own tools a killed builder left running, so they make nothing new.
  for (let i = 0; i < 50; i++) {
    const tools = labProcesses(lab, { toolsOnly: true });
    if (tools.length === 0) break;
    for (const pid of tools) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // The agents and the controller first, gracefully (SIGTERM, then SIGKILL).
  if (rt?.mesh) await stopMesh(rt.mesh, 3000).catch((e) => errors.push(e));
  const cgroups = labCgroups(root, lab);
  for (const cg of cgroups) await killCgroupTree(cg).catch((e) => errors.push(e));
  // Apps that somehow left their cgroup: the recorded pid, if it is still that process.
  for (const p of rt?.pods ?? []) {
    if (processAlive(p.pid, p.pidStart)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  // Pods first, then nodes, then the fabric: each veth goes with the first of its two netns.
  const netns = listNetns(hostPrefix(lab)).sort((a, b) => rank(a, lab) - rank(b, lab));
  await deleteNetnses(netns).catch((e) => errors.push(e));
  for (const cg of cgroups) await removeCgroupTree(cg).catch((e) => errors.push(e));
  for (const pin of labPins(lab)) {
    try {
      rmSync(pin, { recursive: true, force: true });
    } catch (e) {
      errors.push(e);
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
  releaseSlots(lab);
  if (errors.length > 0) throw errors[0];
}

function rank(netns: string, lab: string): number {
  if (netns.startsWith(`weft-${lab}-p-`)) return 0;
  if (netns === fabricNetns(lab)) return 2;
  return 1;
}

/** Removes lab `lab` whatever its state (healthy, broken, half-built), holding its lock. */
export async function destroyLab(lab: string): Promise<void> {
  validateLabName(lab);
  await withLabLock(lab, () => removeLab(lab));
}

export interface SweepResult {
  /** Labs that were broken (crashed build, dead apps, leftovers) and are now gone. */
  swept: string[];
  /** Labs left alone: healthy, or being changed by a live process. */
  kept: string[];
}

/** Names of every lab with anything in the state root (state directory, lock or slot). */
export function knownLabs(): string[] {
  const names = new Set<string>();
  let entries: string[] = [];
  try {
    entries = readdirSync(labRoot());
  } catch {
    return [];
  }
  for (const e of entries) {
    const name = e.endsWith('.lock') ? e.slice(0, -5) : e;
    if (/^[a-z][a-z0-9]{0,11}$/.test(name)) names.add(name);
  }
  try {
    for (const s of readdirSync(join(labRoot(), '.slots'))) {
      const owner = slotOwner(s);
      if (owner) names.add(owner);
    }
  } catch {
    /* no slots */
  }
  return [...names].sort();
}

function slotOwner(slot: string): string | undefined {
  try {
    const o = readFileSync(join(labRoot(), '.slots', slot), 'utf8').trim();
    return /^[a-z][a-z0-9]{0,11}$/.test(o) ? o : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes what crashed labs left behind: every lab (or just `name`) that is not healthy and not
 * being changed by a live process. Healthy labs are kept.
 */
export async function sweep(options: { name?: string } = {}): Promise<SweepResult> {
  if (process.getuid?.() !== 0) throw new PrivilegeError('sweeping labs needs root', { hint: 'run it as root (sudo npx weft lab sweep)' });
  const names = options.name !== undefined ? [validateLabName(options.name)] : knownLabs();
  const result: SweepResult = { swept: [], kept: [] };
  for (const lab of names) {
    const before = labHealth(lab);
    if (before.state === 'healthy' || before.state === 'busy') {
      result.kept.push(lab);
      continue;
    }
    if (before.state === 'absent' && labLeftovers(lab).files.length === 0) continue;
    try {
      const swept = await withLabLock(lab, async () => {
        const h = labHealth(lab, true);
        if (h.state === 'healthy') return false;
        await removeLab(lab);
        return true;
      }, 2000);
      (swept ? result.swept : result.kept).push(lab);
    } catch (err) {
      if (err instanceof LabBusyError) result.kept.push(lab);
      else throw err;
    }
    // A stale lock file without a live holder goes too.
    if (result.swept.includes(lab) && lockHolder(lab) === undefined) {
      try {
        unlinkSync(lockFileOf(lab));
      } catch {
        /* gone */
      }
    }
  }
  return result;
}
