// In-pod settings the proxy relies on, made with nsenter in the pod's netns (never `ip netns
// exec`, which remounts /sys):
// - tcp_fwmark_accept=1, a rule `fwmark APP_MARK lookup APP_TABLE` and `local 0.0.0.0/0 dev lo`
//   in that table: the proxy dials the app with IP_TRANSPARENT from the client's IP and mark
//   APP_MARK; the app's accepted socket inherits the mark, so its replies to that foreign IP
//   come back over lo to the proxy instead of leaving by eth0 (ebpf-redirection.md).
// - tcp_migrate_req=1: when an old agent closes its SO_REUSEPORT listeners during a restart,
//   connections still in its accept queue move to the new agent's listener instead of being reset.
// Setting up is idempotent and never removes the rule first: a restarted agent re-enrolling a
// pod must not open a window in which the app's replies to a tunnelled client leave by eth0.
// Release removes the rule, the route and fwmark_accept again.
import { run } from '../common/exec.js';
import { WeftError } from '../common/errors.js';

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

const SETUP = `set -e
echo 1 > /proc/sys/net/ipv4/tcp_fwmark_accept
echo 1 > /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || true
ip -4 rule show | grep -q "fwmark $1 lookup $2" || ip -4 rule add fwmark "$1" lookup "$2" pref "$2"
ip -4 route replace local 0.0.0.0/0 dev lo table "$2"
ip -4 route show default | head -n1`;

const TEARDOWN = `echo 0 > /proc/sys/net/ipv4/tcp_fwmark_accept
while ip -4 rule del fwmark "$1" lookup "$2" 2>/dev/null; do :; done
ip -4 route flush table "$2" 2>/dev/null
exit 0`;

export interface PodRoutingResult {
  /** the pod's default gateway (the node side of its link): health probes come from it */
  gateway?: string | undefined;
}

export async function setupPodRouting(netnsPath: string): Promise<PodRoutingResult> {
  const r = await run('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', SETUP, 'weft-pod-routing', `0x${APP_MARK.toString(16)}`, String(APP_TABLE)], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new PodRoutingError(netnsPath, 'set up source-IP-preserving routing', r.stderr.trim() || `exit ${r.code}`);
  const m = /via (\d+\.\d+\.\d+\.\d+)/.exec(r.stdout);
  return { gateway: m?.[1] };
}

export async function teardownPodRouting(netnsPath: string): Promise<void> {
  await run('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', TEARDOWN, 'weft-pod-routing', `0x${APP_MARK.toString(16)}`, String(APP_TABLE)], { allowFailure: true, timeoutMs: 10_000 });
}
