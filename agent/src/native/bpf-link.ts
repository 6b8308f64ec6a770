// A bpf_link: a program attached to a cgroup. Pin it and it stays attached after this process
// exits; open the pin after a restart to adopt it again; detach to remove the attachment.
import { addon, type LinkInfo, type ProgInfo } from './addon.js';
import { callNative, NativeStateError } from './errors.js';
import { optional, requireBool, requireFd, requirePath, requireString } from './validate.js';

export class BpfLink {
  #fd: number | undefined;
  #pinPath: string | undefined;

  /** @internal use BpfProgram.attachCgroup() or BpfLink.openPinned(). */
  constructor(fd: number, pinPath?: string) {
    this.#fd = requireFd(fd, 'fd');
    this.#pinPath = pinPath;
  }

  /** Opens a pinned link (bpf_obj_get); the attachment is untouched. */
  static openPinned(path: string): BpfLink {
    requirePath(path, 'path');
    const fd = callNative(() => addon().objGet(path));
    const link = new BpfLink(fd, path);
    try {
      link.info();
    } catch (err) {
      link.close();
      throw err;
    }
    return link;
  }

  get fd(): number {
    if (this.#fd === undefined) throw new NativeStateError('the link handle is closed');
    return this.#fd;
  }

  /** Where this link is pinned, if it was pinned or opened from a pin by this handle. */
  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  pin(path: string): void {
    requirePath(path, 'path');
    const fd = this.fd;
    callNative(() => addon().objPin(fd, path));
    this.#pinPath = path;
  }

  /** Removes the pin (the attachment stays while a handle is open); false when there was none. */
  unpin(): boolean {
    if (!this.#pinPath) return false;
    const path = this.#pinPath;
    const removed = callNative(() => addon().unpin(path));
    this.#pinPath = undefined;
    return removed;
  }

  /** Detaches the program now, even if the link is pinned (the pin then refers to a defunct link). */
  detach(): void {
    const fd = this.fd;
    callNative(() => addon().linkDetach(fd));
  }

  /** Atomically replaces the attached program (same type and attach type). */
  update(program: { fd: number }): void {
    const fd = this.fd;
    const progFd = requireFd(program.fd, 'program.fd');
    callNative(() => addon().linkUpdate(fd, progFd));
  }

  info(): LinkInfo {
    const fd = this.fd;
    return callNative(() => addon().linkInfo(fd));
  }

  /** Closes this handle. An unpinned link is detached by this; a pinned one stays. */
  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    callNative(() => addon().closeFd(fd));
  }
}

/** Attaches a program fd to a cgroup (v2 directory) as a bpf_link. */
export function attachCgroupFd(progFd: number, cgroupPath: string, attachType: string): BpfLink {
  requireFd(progFd, 'progFd');
  requirePath(cgroupPath, 'cgroupPath');
  requireString(attachType, 'attachType');
  return new BpfLink(callNative(() => addon().cgroupAttach(progFd, cgroupPath, attachType)));
}

export interface CgroupProgram {
  id: number;
  /** Absent when the program disappeared between the query and the lookup. */
  name?: string;
  type?: string;
  tag?: string;
}

/**
 * Programs attached at a cgroup for one attach type ('cgroup_inet4_connect', 'cgroup_sock_ops', …).
 * With `effective`, also those inherited from ancestor cgroups.
 */
export function cgroupPrograms(cgroupPath: string, attachType: string, options: { effective?: boolean } = {}): CgroupProgram[] {
  requirePath(cgroupPath, 'cgroupPath');
  requireString(attachType, 'attachType');
  const effective = optional(options.effective, (v) => requireBool(v, 'options.effective')) ?? false;
  return callNative(() => addon().cgroupQuery(cgroupPath, attachType, effective)) as (ProgInfo | { id: number })[];
}

/** The id BPF reports for a cgroup (link info, bpf_get_current_cgroup_id). */
export function cgroupId(cgroupPath: string): bigint {
  requirePath(cgroupPath, 'cgroupPath');
  return callNative(() => addon().cgroupId(cgroupPath));
}
