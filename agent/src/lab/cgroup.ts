// Pod cgroups laid out as kubelet lays them out, under the cgroup v2 mount, plus killing and
// removing a cgroup tree. The layout lives in podCgroupLayout() alone so the cgroupfs driver's
// layout can be produced by the same function.
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../common/errors.js';

/** Where cgroup v2 is mounted, read from /proc/mounts (/sys/fs/cgroup or /sys/fs/cgroup/unified). */
export function cgroup2Mount(mountsText?: string): string {
  const text = mountsText ?? readFileSync('/proc/mounts', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  throw new WeftError('WEFT_E_NO_CGROUP2', 'no cgroup v2 mount found in /proc/mounts', {
    hint: 'mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy',
  });
}

export type CgroupDriver = 'systemd' | 'cgroupfs';
export type QosClass = 'besteffort' | 'burstable' | 'guaranteed';

export interface PodCgroupSpec {
  /** The cgroup v2 mount point. */
  root: string;
  /** Per-node prefix (e.g. weft-lab-node1); '' lays kubepods directly under the root, as on a real node. */
  nodePrefix: string;
  uid: string;
  /** 64 hex digits. */
  containerId: string;
  qos?: QosClass;
  driver?: CgroupDriver;
}

export interface PodCgroupLayout {
  /** The node's top directory (the root itself when nodePrefix is ''). */
  nodeDir: string;
  podDir: string;
  containerDir: string;
}

/**
 * systemd driver: <prefix>.slice/kubepods.slice/kubepods-besteffort.slice/
 *   kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope
 * cgroupfs driver: <prefix>/kubepods/besteffort/pod<uid>/<id>
 * (guaranteed pods sit directly under kubepods, as kubelet puts them.)
 */
export function podCgroupLayout(spec: PodCgroupSpec): PodCgroupLayout {
  const qos = spec.qos ?? 'besteffort';
  if ((spec.driver ?? 'systemd') === 'systemd') {
    const nodeDir = spec.nodePrefix ? join(spec.root, `${spec.nodePrefix}.slice`) : spec.root;
    const uid = spec.uid.replace(/-/g, '_');
    const qosDir = qos === 'guaranteed' ? join(nodeDir, 'kubepods.slice') : join(nodeDir, 'kubepods.slice', `kubepods-${qos}.slice`);
    const podDir = join(qosDir, qos === 'guaranteed' ? `kubepods-pod${uid}.slice` : `kubepods-${qos}-pod${uid}.slice`);
    return { nodeDir, podDir, containerDir: join(podDir, `cri-containerd-${spec.containerId}.scope`) };
  }
  const nodeDir = spec.nodePrefix ? join(spec.root, spec.nodePrefix) : spec.root;
  const qosDir = qos === 'guaranteed' ? join(nodeDir, 'kubepods') : join(nodeDir, 'kubepods', qos);
  const podDir = join(qosDir, `pod${spec.uid}`);
  return { nodeDir, podDir, containerDir: join(podDir, spec.containerId) };
}

function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/** Every process in the tree rooted at `dir`. */
export function processesInTree(dir: string): number[] {
  return [...cgroupProcs(dir), ...subdirs(dir).flatMap(processesInTree)];
}

function populated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return processesInTree(dir).length > 0;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGKILLs every process in the tree (cgroup.kill where the kernel has it) and waits until it is empty. */
export async function killCgroupTree(dir: string, timeoutMs = 5000): Promise<void> {
  if (!existsSync(dir)) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
    } catch {
      for (const pid of processesInTree(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    if (!populated(dir)) return;
    if (Date.now() > deadline) {
      throw new WeftError('WEFT_E_CGROUP_BUSY', `processes in ${dir} did not exit after SIGKILL: ${processesInTree(dir).join(', ')}`);
    }
    await sleep(20);
  }
}

/** Removes the (empty) tree rooted at `dir`, deepest first. */
export async function removeCgroupTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const sub of subdirs(dir)) await removeCgroupTree(sub);
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY right after the last process exits (the kernel frees the cgroup asynchronously),
      // or a process that joined after the kill (a half-started app): kill again and retry.
      if (code !== 'EBUSY' || attempt >= 100) throw err;
      if (populated(dir)) await killCgroupTree(dir).catch(() => undefined);
      await sleep(20);
    }
  }
}

/** The cgroup v2 path of a process, absolute under the mount; undefined if the process is gone. */
export function cgroupOfProcess(pid: number, root: string): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line ? join(root, line.slice(3)) : undefined;
  } catch {
    return undefined;
  }
}
