// Finding a pod on this host from its UID, as kubelet lays pods out in cgroup v2: scan
// /proc/*/cgroup for a path with the pod's slice (systemd driver:
// kubepods[-qos]-pod<uid with _>.slice) or directory (cgroupfs driver: pod<uid>), under this
// node's cgroup root; the oldest such process (the sandbox) gives the netns.
//
// Cgroup namespaces: an unprivileged container on cgroup v2 reads every /proc/<pid>/cgroup
// relative to its own cgroup namespace (`0::/../../kubepods.slice/…`). Those paths are resolved
// against where the agent's namespace is rooted in the host hierarchy (mounted at the cgroup
// mount), found once as the directory whose cgroup.procs lists the agent's own pid: processes
// of the agent's PID namespace are the only ones cgroup.procs shows with a nonzero pid.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { logger } from '../common/log.js';

const log = logger('pod-discovery');

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
  /** this process's pid as its own PID namespace sees it (default process.pid; tests) */
  selfPid?: number;
}

/** Where a cgroup namespace is rooted: a path below the mount, '/' for the host's namespace. */
export interface CgroupNamespaceView {
  /** true when the agent's cgroup namespace is not the host's (pid 1 of --proc) */
  nested: boolean;
  /** the namespace root relative to the mount ('/' when not nested); undefined: not found */
  root: string | undefined;
}

function nsLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The cgroup directory (relative to `mount`) whose cgroup.procs lists `pid`, breadth first. */
export function findCgroupOfPid(mount: string, pid: number): string | undefined {
  const queue = ['/'];
  const want = String(pid);
  for (let i = 0; i < queue.length && i < 100_000; i++) {
    const rel = queue[i]!;
    const dir = join(mount, rel);
    try {
      if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(want)) return rel;
    } catch {
      /* not a cgroup, or gone */
    }
    let subdirs: string[] = [];
    try {
      subdirs = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      continue;
    }
    for (const d of subdirs) queue.push(posix.join(rel, d));
  }
  return undefined;
}

/**
 * The agent's cgroup namespace as seen from the host: nested when its namespace differs from
 * pid 1's, or, where pid 1's link cannot be read (no ptrace access), when a path relative to
 * the namespace (`/..`) was seen. If nested, its root is located in the hierarchy at `mount`.
 */
export function cgroupNamespaceView(proc: string, mount: string, selfPid = process.pid, sawRelative = false): CgroupNamespaceView {
  const self = nsLink(join(proc, 'self/ns/cgroup'));
  const init = nsLink(join(proc, '1/ns/cgroup'));
  const nested = self && init ? self !== init : sawRelative;
  if (!nested) return { nested: false, root: '/' };
  let ownRel: string | undefined;
  try {
    ownRel = unifiedPath(readFileSync(join(proc, 'self/cgroup'), 'utf8'));
  } catch {
    ownRel = undefined;
  }
  const ownAbs = findCgroupOfPid(mount, selfPid);
  if (!ownRel || !ownAbs) return { nested: true, root: undefined };
  // ownRel is the agent's cgroup relative to the namespace root ('/' unless it moved since).
  const rel = posix.normalize(ownRel);
  if (rel === '/') return { nested: true, root: ownAbs };
  if (rel.startsWith('/..') || !ownAbs.endsWith(rel)) return { nested: true, root: undefined };
  return { nested: true, root: ownAbs.slice(0, ownAbs.length - rel.length) || '/' };
}

/** A path from /proc/<pid>/cgroup made relative to the mount's root (the host's view). */
export function hostCgroupPath(view: CgroupNamespaceView, path: string): string | undefined {
  if (!view.nested) return path;
  if (view.root === undefined) return undefined;
  return posix.normalize(posix.join(view.root, path));
}

export interface DiscoveryResult {
  pods: Map<string, PodProcess>;
  /** pods found but never to be captured (host network, the agent's own pod) */
  skipped: Map<string, PodSkip>;
}

export class PodDiscovery {
  private readonly ownNetns: Set<number>;
  private ownPodUid: string | undefined;
  private ownCgroup: string | undefined;
  private view: CgroupNamespaceView | undefined;

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
    this.ownCgroup = own;
    this.ownPodUid = own ? podOfCgroupPath(own)?.uid : undefined;
  }

  /** How /proc/<pid>/cgroup paths map to the host hierarchy (found once, retried until found). */
  namespaceView(sawRelative = false): CgroupNamespaceView {
    if (this.view?.root !== undefined && (this.view.nested || !sawRelative)) return this.view;
    const v = cgroupNamespaceView(this.opts.proc, this.opts.cgroupMount, this.opts.selfPid, sawRelative);
    if (v.nested && v.root === undefined && this.view === undefined) {
      log.error({ proc: this.opts.proc, cgroupMount: this.opts.cgroupMount }, 'the agent runs in its own cgroup namespace and its cgroup was not found in the host hierarchy; pods cannot be located (mount the host cgroup v2 root at the cgroup mount)');
    }
    if (v.nested && v.root !== undefined) {
      const own = this.ownCgroup && hostCgroupPath(v, this.ownCgroup);
      this.ownPodUid = own ? podOfCgroupPath(own)?.uid : this.ownPodUid;
      log.info({ namespaceRoot: v.root, ownPod: this.ownPodUid }, 'cgroup namespace: resolving pod cgroup paths against the agent\'s namespace root');
    }
    this.view = v;
    return v;
  }

  /** One pass over procfs: every pod below the cgroup root, by UID. */
  scan(): DiscoveryResult {
    const root = this.opts.cgroupRoot ?? this.opts.cgroupMount;
    let view = this.namespaceView();
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
        const seen = unifiedPath(readFileSync(join(this.opts.proc, e, 'cgroup'), 'utf8'));
        if (seen?.startsWith('/..') && !view.nested) view = this.namespaceView(true);
        const path = seen && hostCgroupPath(view, seen);
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
