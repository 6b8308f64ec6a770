// Names of everything the lab makes on the host. Every one starts with `weft-<lab>-` (or is
// inside the lab's state directory), so a sweep can find all of it from the lab name alone.
import { join } from 'node:path';
import { InvalidArgumentError } from '../common/errors.js';

export const DEFAULT_LAB_NAME = 'lab';

/** Lab names are short and dash-free so that `weft-<lab>-` never is a prefix of another lab's names. */
const LAB_NAME = /^[a-z][a-z0-9]{0,11}$/;

export function validateLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new InvalidArgumentError('lab name', `'${name}' is not valid: use 1-12 lowercase letters and digits, starting with a letter (no dashes)`);
  }
  return name;
}

/** Root of all labs' state; WEFT_LAB_ROOT overrides it (tests, unusual hosts). */
export function labRoot(): string {
  return process.env.WEFT_LAB_ROOT ?? '/var/run/weft/lab';
}

export function stateDirOf(name: string): string {
  return join(labRoot(), name);
}

export function lockFileOf(name: string): string {
  return join(labRoot(), `${name}.lock`);
}

export function slotsDir(): string {
  return join(labRoot(), '.slots');
}

export const NETNS_DIR = '/run/netns';
export const BPFFS = '/sys/fs/bpf';

/** Prefix of every netns, cgroup slice and BPF pin of the lab. */
export function hostPrefix(lab: string): string {
  return `weft-${lab}-`;
}

export function fabricNetns(lab: string): string {
  return `weft-${lab}-fabric`;
}

export function nodeName(index: number): string {
  return `node${index}`;
}

export function nodeNetns(lab: string, node: string): string {
  return `weft-${lab}-${node}`;
}

/** Pod netns names carry the first 8 hex digits of the pod UID (unique within a lab). */
export function podShort(uid: string): string {
  return uid.replace(/-/g, '').slice(0, 8);
}

export function podNetns(lab: string, uid: string): string {
  return `weft-${lab}-p-${podShort(uid)}`;
}

/** Node side of a pod's veth pair, in the node netns (≤ 15 chars: "vp" + 8 hex). */
export function podHostVeth(uid: string): string {
  return `vp${podShort(uid)}`;
}

/** Pod side of its veth pair, in the pod netns. */
export const POD_IFACE = 'eth0';
/** Node side of the node's link to the fabric, in the node netns. */
export const NODE_IFACE = 'eth0';
/** The bridge in the fabric netns. */
export const FABRIC_BRIDGE = 'br0';

/** Fabric side of a node's veth pair, in the fabric netns. */
export function fabricPort(node: string): string {
  return node.length <= 15 ? node : node.slice(0, 15);
}

/** Per-node cgroup prefix, so several lab nodes share one machine's cgroup tree. */
export function nodeCgroupPrefix(lab: string, node: string): string {
  return `weft-${lab}-${node}`;
}

export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}
