// Kernel feature probes for `weft check`: load a tiny program of a type (and calling a helper)
// and see whether the verifier accepts it. Names are libbpf's: program types 'sched_cls',
// 'sock_ops', 'cgroup_sock_addr'; attach types 'cgroup_inet4_connect'; helpers 'sk_assign'
// (with or without the 'bpf_' prefix). Needs CAP_BPF: without it the probes throw NativeError
// EPERM rather than report the kernel as lacking.
import { addon } from './addon.js';
import { callNative } from './errors.js';
import { optional, requireString } from './validate.js';

/** Whether the kernel loads programs of this type (cgroup_sock_addr: as connect4 unless given). */
export function probeProgType(progType: string, attachType?: string): boolean {
  requireString(progType, 'progType');
  const at = optional(attachType, (v) => requireString(v, 'attachType'));
  return callNative(() => (at ? addon().probeProgType(progType, at) : addon().probeProgType(progType)));
}

/** Whether programs of this type may call this helper. */
export function probeHelper(progType: string, helper: string, attachType?: string): boolean {
  requireString(progType, 'progType');
  requireString(helper, 'helper');
  const at = optional(attachType, (v) => requireString(v, 'attachType'));
  return callNative(() => (at ? addon().probeHelper(progType, helper, at) : addon().probeHelper(progType, helper)));
}

/** The libbpf version the addon is linked against, e.g. '1.1'. */
export function libbpfVersion(): string {
  return callNative(() => addon().libbpfVersion);
}
