// The kernel operations the redirector needs, as one narrow interface over the native facade
// (agent/src/native). Keeping them here lets redirector.ts read as the enrol/release story.
export interface KernelMap {
  lookup(key: Buffer): Promise<Buffer | undefined>;
  update(key: Buffer, value: Buffer): Promise<void>;
  /** false when the key was not there. */
  delete(key: Buffer): Promise<boolean>;
  keys(): Promise<Buffer[]>;
}

export type ProgramName = 'connect4' | 'connect6' | 'sockops' | 'tc';
export type CgroupProgramName = Exclude<ProgramName, 'tc'>;

export interface LoadedPrograms {
  maps: { pods: KernelMap; podIps: KernelMap; origDst: KernelMap; inListen: KernelMap; enrolments: KernelMap };
  /** Kernel program ids of the loaded programs (to recognise our tc filter). */
  progIds: Record<ProgramName, number>;
  close(): void;
}

export interface Kernel {
  load(opts: { objectDir: string; mapsPinDir: string; bypassMark: number }): Promise<LoadedPrograms>;
  netnsCookie(netnsPath: string): Promise<bigint>;
  ifindex(netnsPath: string, ifname: string): Promise<number>;
  cgroupId(cgroupPath: string): Promise<bigint>;
  /** Attach program to the cgroup as a bpf_link and pin it at pinPath (then drop our fd). */
  attachCgroupPinned(progs: LoadedPrograms, prog: CgroupProgramName, cgroupPath: string, pinPath: string): Promise<void>;
  /**
   * If a live link is pinned at pinPath and attached to cgroupId, switch it to the currently
   * loaded program (atomic bpf_link_update) and return true; false when absent or defunct.
   */
  refreshPinnedLink(progs: LoadedPrograms, prog: CgroupProgramName, pinPath: string, cgroupId: bigint): Promise<boolean>;
  /** Detach the link behind a pin (if any) and remove the pin. */
  removePinnedLink(pinPath: string): Promise<void>;
  /** Programs attached at this cgroup for the attach type (non-effective). */
  cgroupPrograms(cgroupPath: string, type: CgroupProgramName): Promise<{ id: number; name: string }[]>;
  /** Program id of the filter in our slot on ingress, undefined when none. */
  tcQuery(netnsPath: string, ifname: string): Promise<number | undefined>;
  /** Create clsact if needed (reporting whether it did) and attach/replace our filter. */
  tcAttach(progs: LoadedPrograms, netnsPath: string, ifname: string): Promise<{ createdClsact: boolean }>;
  /** Remove our filter; with destroyClsact, remove the whole clsact qdisc. */
  tcDetach(netnsPath: string, ifname: string, destroyClsact: boolean): Promise<void>;
}

/** Our tc filter's fixed slot on ingress, so re-attaching replaces instead of doubling. */
export const TC_HANDLE = 0x5746; // "WF"
export const TC_PRIORITY = 0x5746;
