// In-pod settings the proxy relies on, made in the pod's netns: sysctls natively
// (sysctlInNetns), rules and routes with nsenter + ip (never `ip netns exec`, which remounts /sys):
// - tcp_fwmark_accept=1, a rule `fwmark APP_MARK lookup APP_TABLE` and `local 0.0.0.0/0 dev lo`
//   in that table: the proxy dials the app with IP_TRANSPARENT from the client's IP and mark
//   APP_MARK; the app's accepted socket inherits the mark, so its replies to that foreign IP
//   come back over lo to the proxy instead of leaving by eth0 (ebpf-redirection.md).
// - tcp_migrate_req=1: when an old agent closes its SO_REUSEPORT listeners during a restart,
//   connections still in its accept queue move to the new agent's listener instead of being reset.
// - the proxy's ports 15001/15006/15008 in net.ipv4.ip_local_reserved_ports: an app's outgoing
//   connection must not take one as its ephemeral source port, or the listeners cannot bind
//   (EADDRINUSE) until that connection ends. Release takes exactly these three out again (a
//   pod that reserved them itself loses that reservation; nothing else of the list changes).
// Setting up is idempotent and never removes the rule first: a restarted agent re-enrolling a
// pod must not open a window in which the app's replies to a tunnelled client leave by eth0.
// Release removes the rule, the route and fwmark_accept again.
// The net.* sysctls go through <--proc>/sys, whose net/ shows the netns of whoever opens it. In a
// container /proc/sys is read-only (the runtime's readonlyPaths), so the DaemonSet mounts the
// host's /proc/sys/net writable at <--proc>/sys/net and the agent writes there.
import { join } from 'node:path';
import { run } from '../common/exec.js';
import { InvalidArgumentError, WeftError } from '../common/errors.js';
import { sysctlInNetns } from '../native/index.js';

/** SO_MARK of the proxy's sockets towards a pod's app (distinct from the capture bypass mark). */
export const APP_MARK = 0x5747;
export const APP_TABLE = 5747;

export class PodRoutingError extends WeftError {
  constructor(netns: string, step: string, detail: string) {
    super('WEFT_E_POD_ROUTING', `cannot ${step} in pod netns ${netns}: ${detail}`, {
      hint: 'the pod may be gone; the agent retries. Check that iproute2 and nsenter are installed and the agent has CAP_NET_ADMIN and CAP_SYS_ADMIN',
    });
  }
}

let sysDir = '/proc/sys';

/** The procfs sys directory net.* sysctls are written through: `<proc>/sys` for the agent's --proc. */
export function setNetSysctlDir(proc: string): void {
  sysDir = join(proc, 'sys');
}

/** Reads (and with `value` writes) a net.* sysctl of the pod, naming the step in errors. */
async function podSysctl(netnsPath: string, name: string, value?: string): Promise<string> {
  try {
    return await sysctlInNetns({ netns: netnsPath, name, dir: sysDir, ...(value !== undefined ? { value } : {}) });
  } catch (err) {
    throw new PodRoutingError(netnsPath, `${value === undefined ? 'read' : 'write'} ${name} through ${sysDir}`, (err as Error).message);
  }
}

const SETUP = `set -e
ip -4 rule show | grep -q "fwmark $1 lookup $2" || ip -4 rule add fwmark "$1" lookup "$2" pref "$2"
ip -4 route replace local 0.0.0.0/0 dev lo table "$2"
ip -4 route show default | head -n1`;

const TEARDOWN = `while ip -4 rule del fwmark "$1" lookup "$2" 2>/dev/null; do :; done
ip -4 route flush table "$2" 2>/dev/null
exit 0`;

export interface PodRoutingResult {
  /** the pod's default gateway (the node side of its link): health probes come from it */
  gateway?: string | undefined;
}

/** The proxy's listener ports in a pod (pod-sockets.ts): 15001 outbound, 15006 plaintext, 15008 HBONE. */
export const PROXY_PORTS = [15001, 15006, 15008] as const;
const RESERVED = 'net.ipv4.ip_local_reserved_ports';

/** Ports in an ip_local_reserved_ports list ('15001,15006-15008'). */
export function parsePortList(text: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || hi > 65535 || hi < lo) throw new InvalidArgumentError('ports', `'${part}' is not a port or port range in 0-65535`);
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  return out;
}

/** The ip_local_reserved_ports text for `ports`, runs written as ranges. */
export function formatPortList(ports: Iterable<number>): string {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Adds (or removes) the proxy ports to the pod's reserved ports, keeping the rest of the list. */
export async function reserveProxyPorts(netnsPath: string, reserve: boolean): Promise<void> {
  const text = await podSysctl(netnsPath, RESERVED);
  let ports: Set<number>;
  try {
    ports = parsePortList(text);
  } catch (err) {
    throw new PodRoutingError(netnsPath, `read ${RESERVED}`, (err as Error).message);
  }
  const before = formatPortList(ports);
  for (const p of PROXY_PORTS) reserve ? ports.add(p) : ports.delete(p);
  const after = formatPortList(ports);
  // A lone newline is how the list is emptied (the facade refuses an empty string).
  if (after !== before) await podSysctl(netnsPath, RESERVED, after || '\n');
}

export async function setupPodRouting(netnsPath: string): Promise<PodRoutingResult> {
  await reserveProxyPorts(netnsPath, true);
  await podSysctl(netnsPath, 'net.ipv4.tcp_fwmark_accept', '1');
  await podSysctl(netnsPath, 'net.ipv4.tcp_migrate_req', '1').catch(() => undefined); // Linux >= 5.14
  const r = await run('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', SETUP, 'weft-pod-routing', `0x${APP_MARK.toString(16)}`, String(APP_TABLE)], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new PodRoutingError(netnsPath, 'set up source-IP-preserving routing', r.stderr.trim() || `exit ${r.code}`);
  const m = /via (\d+\.\d+\.\d+\.\d+)/.exec(r.stdout);
  return { gateway: m?.[1] };
}

export async function teardownPodRouting(netnsPath: string): Promise<void> {
  await reserveProxyPorts(netnsPath, false).catch(() => undefined);
  await podSysctl(netnsPath, 'net.ipv4.tcp_fwmark_accept', '0').catch(() => undefined);
  await run('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', TEARDOWN, 'weft-pod-routing', `0x${APP_MARK.toString(16)}`, String(APP_TABLE)], { allowFailure: true, timeoutMs: 10_000 });
}
