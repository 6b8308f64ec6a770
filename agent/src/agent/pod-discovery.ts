// Finding a pod on this host from its UID, as kubelet lays pods out in cgroup v2: scan
// /proc/*/cgroup for a path with the pod's slice (systemd driver:
// kubepods[-qos]-pod<uid with _>.slice) or directory (cgroupfs driver: pod<uid>), under this
// node's cgroup root; the oldest such process (the sandbox) gives the netns.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface PodProcess {
  uid: string;
  /** the oldest process of the pod */
  pid: number;
  /** absolute path of the pod's cgroup (the pod slice / pod<uid> directory) */
  cgroupPath: string;
  /** /proc/<pid>/ns/net */
  netnsPath: string;
  /** inode of the pod's netns (two pods never share one) */
  netnsInode: number;
}

export interface PodSkip {
  uid: string;
  reason: string;
}

const SYSTEMD = /\/kubepods(?:-[a-z]+)?-pod([0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice(?=\/|$)/;
const CGROUPFS = /\/pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=\/|$)/;

/** The pod UID and the pod's cgroup (relative to the mount) in a cgroup v2 path, if any. */
export function podOfCgroupPath(path: string): { uid: string; podPath: string } | undefined {
  const s = SYSTEMD.exec(path);
  if (s) return { uid: s[1]!.replace(/_/g, '-'), podPath: path.slice(0, s.index + s[0].length) };
  const c = CGROUPFS.exec(path);
  if (c) return { uid: c[1]!, podPath: path.slice(0, c.index + c[0].length) };
  return undefined;
}

function unifiedPath(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  return line?.slice(3);
}

function startTime(proc: string, pid: number): number {
  const stat = readFileSync(join(proc, String(pid), 'stat'), 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

function inode(path: string): number {
  return statSync(path).ino;
}

export interface PodDiscoveryOptions {
  proc: string;
  /** the cgroup v2 mount */
  cgroupMount: string;
  /** only pods below this directory (absolute); default the mount */
  cgroupRoot?: string | undefined;
}

export interface DiscoveryResult {
  pods: Map<string, PodProcess>;
  /** pods found but never to be captured (host network, the agent's own pod) */
  skipped: Map<string, PodSkip>;
}

export class PodDiscovery {
  private readonly ownNetns: Set<number>;
  private readonly ownPodUid: string | undefined;

  constructor(private readonly opts: PodDiscoveryOptions) {
    // The host's netns and the agent's own (in the lab the node netns is the "host network").
    this.ownNetns = new Set<number>();
    for (const p of [join(opts.proc, 'self/ns/net'), join(opts.proc, '1/ns/net')]) {
      try {
        this.ownNetns.add(inode(p));
      } catch {
        /* not visible */
      }
    }
    let own: string | undefined;
    try {
      own = unifiedPath(readFileSync(join(opts.proc, 'self/cgroup'), 'utf8'));
    } catch {
      own = undefined;
    }
    this.ownPodUid = own ? podOfCgroupPath(own)?.uid : undefined;
  }

  /** One pass over procfs: every pod below the cgroup root, by UID. */
  scan(): DiscoveryResult {
    const root = this.opts.cgroupRoot ?? this.opts.cgroupMount;
    const candidates = new Map<string, { pid: number; start: number; cgroupPath: string }>();
    let entries: string[] = [];
    try {
      entries = readdirSync(this.opts.proc);
    } catch {
      return { pods: new Map(), skipped: new Map() };
    }
    for (const e of entries) {
      if (!/^\d+$/.test(e)) continue;
      const pid = Number(e);
      try {
        const path = unifiedPath(readFileSync(join(this.opts.proc, e, 'cgroup'), 'utf8'));
        if (!path) continue;
        const pod = podOfCgroupPath(path);
        if (!pod) continue;
        const cgroupPath = join(this.opts.cgroupMount, pod.podPath);
        if (!cgroupPath.startsWith(root.endsWith('/') ? root : root + '/')) continue;
        const start = startTime(this.opts.proc, pid);
        const prev = candidates.get(pod.uid);
        if (!prev || start < prev.start || (start === prev.start && pid < prev.pid)) candidates.set(pod.uid, { pid, start, cgroupPath });
      } catch {
        /* exited while scanning */
      }
    }
    const pods = new Map<string, PodProcess>();
    const skipped = new Map<string, PodSkip>();
    for (const [uid, c] of candidates) {
      if (uid === this.ownPodUid) {
        skipped.set(uid, { uid, reason: "the agent's own pod" });
        continue;
      }
      const netnsPath = join(this.opts.proc, String(c.pid), 'ns/net');
      let ino: number;
      try {
        ino = inode(netnsPath);
      } catch {
        continue; // exited
      }
      if (this.ownNetns.has(ino)) {
        skipped.set(uid, { uid, reason: 'host network (the pod shares the node netns)' });
        continue;
      }
      pods.set(uid, { uid, pid: c.pid, cgroupPath: c.cgroupPath, netnsPath, netnsInode: ino });
    }
    return { pods, skipped };
  }
}
