// TC (clsact) filters for sched_cls programs on an interface inside a network namespace.
// Every call runs on a native thread that entered the netns (libbpf 1.1 has no tcx).
import { InvalidArgumentError } from '../common/errors.js';
import { addon, type TcResult } from './addon.js';
import { callNativeAsync } from './errors.js';
import { optional, requireBool, requireFd, requireInt, requireOneOf, requirePath, requireString } from './validate.js';

export type TcDirection = 'ingress' | 'egress';

export interface TcTarget {
  /** Network namespace file (/run/netns/NAME, /proc/PID/ns/net); omitted: this process's netns. */
  netns?: string;
  /** The interface, by name (resolved inside the netns) or by ifindex (one of the two). */
  ifname?: string;
  ifindex?: number;
  direction?: TcDirection;
}

export interface TcFilterSlot extends TcTarget {
  /** 1..65535; the pair (priority, handle) names our filter so re-attach replaces it. */
  priority: number;
  handle: number;
}

export interface TcAttachOptions extends TcTarget {
  /** Omitted: the kernel picks (and reports) them. */
  priority?: number;
  handle?: number;
  /** Replace a filter already at (priority, handle) instead of failing with EEXIST. */
  replace?: boolean;
}

export interface TcAttachment extends TcResult {
  /** Whether this call created the clsact qdisc (false: it was already there). */
  hookCreated: boolean;
}

function target(o: TcTarget, withSlot: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const netns = optional(o.netns, (v) => requirePath(v, 'options.netns'));
  if (netns) out.netns = netns;
  if (o.ifindex !== undefined && o.ifname !== undefined) throw new InvalidArgumentError('options.ifname', 'give ifname or ifindex, not both');
  if (o.ifindex !== undefined) out.ifindex = requireInt(o.ifindex, 'options.ifindex', 1, 0x7fffffff);
  else out.ifname = requireString(o.ifname, 'options.ifname');
  out.direction = requireOneOf(o.direction ?? 'ingress', 'options.direction', ['ingress', 'egress']);
  if (withSlot) {
    const s = o as TcFilterSlot;
    out.priority = requireInt(s.priority, 'options.priority', 1, 0xffff);
    out.handle = requireInt(s.handle, 'options.handle', 1, 0xffffffff);
  }
  return out;
}

/** Creates clsact if needed (EEXIST is fine) and attaches the program as a direct-action filter. */
export async function tcAttach(program: { fd: number } | number, options: TcAttachOptions): Promise<TcAttachment> {
  const progFd = requireFd(typeof program === 'number' ? program : program?.fd, 'program');
  const o = target(options, false);
  o.progFd = progFd;
  const priority = optional(options.priority, (v) => requireInt(v, 'options.priority', 1, 0xffff));
  const handle = optional(options.handle, (v) => requireInt(v, 'options.handle', 1, 0xffffffff));
  if (priority !== undefined) o.priority = priority;
  if (handle !== undefined) o.handle = handle;
  o.replace = optional(options.replace, (v) => requireBool(v, 'options.replace')) ?? false;
  return callNativeAsync(() => addon().tcAttach(o));
}

/** Removes our filter at (priority, handle); false when nothing was there. */
export async function tcDetach(options: TcFilterSlot): Promise<boolean> {
  const o = target(options, true);
  return callNativeAsync(() => addon().tcDetach(o));
}

/** The filter at (priority, handle), with its program id, or null. */
export async function tcQuery(options: TcFilterSlot): Promise<TcResult | null> {
  const o = target(options, true);
  return callNativeAsync(() => addon().tcQuery(o));
}

/** Removes the clsact qdisc (and with it every filter on both directions); false if none. */
export async function tcHookDestroy(options: Omit<TcTarget, 'direction'>): Promise<boolean> {
  const o = target(options, false);
  delete o.direction;
  return callNativeAsync(() => addon().tcHookDestroy(o));
}

/** The ifindex of an interface inside a netns. */
export async function ifindexInNetns(netns: string | undefined, ifname: string): Promise<number> {
  const o = target({ ...(netns ? { netns } : {}), ifname }, false);
  delete o.direction;
  return callNativeAsync(() => addon().ifindex(o));
}
