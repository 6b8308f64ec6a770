// `weft agent`: the per-node data plane (one per node; in the lab one per node netns).
import type { Command } from '../command.js';
import { Agent, agentOptionsFromFlags, type RawAgentFlags } from '../../agent/index.js';
import { flushLogs, logger } from '../../common/log.js';

export const agentCommand: Command = {
  name: 'agent',
  summary: 'Run the node agent: xDS + certificates, pod enrolment, the node proxy, admin/metrics/readiness',
  usage: [
    'weft agent --node NAME --controller HOST:PORT --token-file FILE --ca-root FILE [--trust-domain TD]',
    '           [--admin 127.0.0.1:15000] [--metrics :15020] [--readiness :15021] [--bpffs-dir /sys/fs/bpf/weft-NODE]',
    '           [--cgroup-root DIR] [--proc /proc] [--drain-deadline 5s] [--ready-file PATH] [--no-redirect] [--on-exit auto|release|keep]',
    '           [--workers N]',
  ],
  help: `Connects to the controller (delta ADS and CA, authenticated with the node token), keeps
the workloads, services, policies and the certificates of this node's mesh pods, and captures
the pods this node runs in the mesh (workloads on --node with tunnel protocol HBONE): found by
UID in /proc/*/cgroup below --cgroup-root, listeners 15001/15006/15008 opened in each pod's
netns, redirection enrolled with eBPF. Runs until SIGTERM/SIGINT, then drains.

Options:
  --node NAME             this node (pods' spec.nodeName) (required)
  --controller HOST:PORT  the controller's xDS/CA address (required)
  --token-file FILE       node token (re-read on use) (required)
  --ca-root FILE          root certificate(s) of the controller and the mesh (required)
  --trust-domain TD       default cluster.local
  --admin HOST:PORT       /config_dump, /connections, /logging (default 127.0.0.1:15000)
  --metrics HOST:PORT     Prometheus /metrics (default :15020)
  --readiness HOST:PORT   /healthz/ready: 200 once xDS synced, certificates in, nothing pending (default :15021)
  --bpffs-dir DIR         the agent's pin directory; its name is the agent id (default /sys/fs/bpf/weft-NODE)
  --cgroup-root DIR       only pods below this cgroup directory (default: the cgroup v2 mount)
  --proc DIR              procfs to scan (default /proc)
  --drain-deadline DUR    how long SIGTERM waits for connections (default 5s)
  --ready-file PATH       written ({pid, time}) once the agent is first ready, removed at exit: lets a
                          supervisor wait for this very agent while another one serves :15021
  --no-redirect           control plane only: no capture, no pod listeners
  --workers N             data-plane worker threads besides the main thread (default: CPUs - 1, at
                          most 3); each serves every pod from its own SO_REUSEPORT listeners and the
                          kernel spreads new connections over the threads. 0: main thread only
  --on-exit MODE          what SIGTERM does with the captured pods: keep (pins stay, pods fail
                          closed until the next agent), release (detach everything: pods back to
                          plaintext, as before Weft), auto (default: in Kubernetes release only if
                          the weft-agent DaemonSet is gone or being deleted; elsewhere keep)

In Kubernetes (in-cluster service account) the agent also publishes its node checks as the
node annotation weft.io/node-checks at start and whenever a result changes.`,
  options: {
    node: { type: 'string' },
    controller: { type: 'string' },
    'token-file': { type: 'string' },
    'ca-root': { type: 'string' },
    'trust-domain': { type: 'string' },
    admin: { type: 'string' },
    metrics: { type: 'string' },
    readiness: { type: 'string' },
    'bpffs-dir': { type: 'string' },
    'cgroup-root': { type: 'string' },
    proc: { type: 'string' },
    'drain-deadline': { type: 'string' },
    'ready-file': { type: 'string' },
    'no-redirect': { type: 'boolean' },
    'on-exit': { type: 'string' },
    workers: { type: 'string' },
  },
  run: async (args, io) => {
    const opts = agentOptionsFromFlags(args.values as RawAgentFlags);
    const log = logger('agent');
    // A bad packet or peer must never take the node's data plane down.
    const onUncaught = (err: unknown) => log.error({ err: (err as Error)?.stack ?? String(err) }, 'uncaught error (kept running)');
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    try {
      const agent = await Agent.start(opts);
      io.err(`weft agent: node ${opts.node}, admin ${opts.admin.host}:${opts.admin.port}, readiness :${opts.readiness.port}, pid ${process.pid}\n`);
      const signal = await new Promise<string>((done) => {
        process.once('SIGINT', () => done('SIGINT'));
        process.once('SIGTERM', () => done('SIGTERM'));
      });
      log.info({ signal }, 'stopping');
      await agent.stop();
      flushLogs();
      // gRPC channels and pools may keep the loop alive a while longer; the work is done.
      setTimeout(() => process.exit(0), 200).unref();
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    }
    return 0;
  },
};
