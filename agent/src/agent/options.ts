// `weft agent` settings: parsed and checked once, before anything starts, so a bad flag is a
// clear usage error and never a half-started agent.
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { UsageError } from '../common/errors.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { ON_EXIT_MODES, type OnExit } from './exit-policy.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface AgentOptions {
  /** this node's name, as pods' spec.nodeName has it */
  node: string;
  /** controller host:port (xDS and CA) */
  controller: string;
  /** file holding the bearer token naming this node (re-read on every request: rotation) */
  tokenFile: string;
  /** PEM roots: the controller's TLS and the mesh trust bundle */
  caRoot: string;
  trustDomain: string;
  admin: HostPort;
  metrics: HostPort;
  readiness: HostPort;
  /** bpffs mount and the agent's pin directory name under it (agent id, starts with weft) */
  bpffs: string;
  agentId: string;
  /** cgroup directory below which this node's pods live; undefined: the whole cgroup v2 mount */
  cgroupRoot?: string | undefined;
  /** procfs to scan for pod processes */
  proc: string;
  /** how long SIGTERM waits for established connections before closing them */
  drainDeadlineMs: number;
  /** false: no redirection or pod listeners (control plane only) */
  redirect: boolean;
  /**
   * what SIGTERM does with the pods: keep them captured for a successor, release them
   * (uninstall), or auto: in Kubernetes release only when the agent DaemonSet is gone or
   * being deleted, elsewhere keep
   */
  onExit: OnExit;
  /** written (JSON: pid, time) the first time the agent is ready, removed when it stops */
  readyFile?: string | undefined;
  /** data-plane worker threads besides the main thread (0: the main thread alone) */
  workers: number;
}

export const MAX_WORKERS = 16;

/** CPUs - 1 (the main thread also proxies), at most 3, at least 0. */
export function defaultWorkers(cpus = availableParallelism()): number {
  return Math.max(0, Math.min(3, cpus - 1));
}

/** 'HOST:PORT', ':PORT' (all addresses) or '[v6]:PORT'. */
export function parseHostPort(flag: string, v: string, defaultHost: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v);
  if (!m) throw new UsageError(`--${flag} must be HOST:PORT or :PORT, not '${v}'`);
  const host = m[1] ?? (m[2] || defaultHost);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--${flag}: port ${port} is out of range`);
  if (!isIP(host)) throw new UsageError(`--${flag}: '${host}' is not an IP address`);
  return { host, port };
}

/** '5s', '500ms', '2m', or a plain number of seconds. */
export function parseDuration(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--${flag} must be a duration like 5s, 500ms or 2m, not '${v}'`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

export interface RawAgentFlags {
  node?: string;
  controller?: string;
  'token-file'?: string;
  'ca-root'?: string;
  'trust-domain'?: string;
  admin?: string;
  metrics?: string;
  readiness?: string;
  'bpffs-dir'?: string;
  'cgroup-root'?: string;
  proc?: string;
  'drain-deadline'?: string;
  'ready-file'?: string;
  'no-redirect'?: boolean;
  'on-exit'?: string;
  workers?: string;
}

export function agentOptionsFromFlags(f: RawAgentFlags): AgentOptions {
  const req = (k: keyof RawAgentFlags) => {
    const v = f[k];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${k} is required`);
    return v;
  };
  const node = req('node');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node)) throw new UsageError(`--node '${node}' is not a valid node name (lowercase letters, digits, '-', '.')`);
  const controller = req('controller');
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(controller)) throw new UsageError(`--controller must be HOST:PORT, not '${controller}'`);
  const pinDir = resolve(f['bpffs-dir'] ?? `/sys/fs/bpf/weft-${node}`);
  const agentId = basename(pinDir);
  if (!agentId.startsWith('weft')) throw new UsageError(`--bpffs-dir: the last path element must start with 'weft' (it names the agent's pins), not '${agentId}'`);
  const cgroupRoot = f['cgroup-root'];
  if (cgroupRoot !== undefined && !isAbsolute(cgroupRoot)) throw new UsageError(`--cgroup-root must be an absolute path, not '${cgroupRoot}'`);
  const onExit = (f['on-exit'] ?? 'auto') as OnExit;
  if (!ON_EXIT_MODES.includes(onExit)) throw new UsageError(`--on-exit must be one of ${ON_EXIT_MODES.join(', ')}, not '${f['on-exit']}'`);
  const workersFlag = f.workers ?? String(defaultWorkers());
  if (!/^\d+$/.test(workersFlag) || Number(workersFlag) > MAX_WORKERS) throw new UsageError(`--workers must be a whole number from 0 to ${MAX_WORKERS}, not '${f.workers}'`);
  const td = f['trust-domain'] ?? DEFAULT_TRUST_DOMAIN;
  if (!/^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$/.test(td)) throw new UsageError(`--trust-domain '${td}' is not a valid trust domain`);
  return {
    node,
    controller,
    tokenFile: resolve(req('token-file')),
    caRoot: resolve(req('ca-root')),
    trustDomain: td,
    admin: parseHostPort('admin', f.admin ?? '127.0.0.1:15000', '127.0.0.1'),
    metrics: parseHostPort('metrics', f.metrics ?? ':15020', '0.0.0.0'),
    readiness: parseHostPort('readiness', f.readiness ?? ':15021', '0.0.0.0'),
    bpffs: dirname(pinDir),
    agentId,
    cgroupRoot: cgroupRoot ? resolve(cgroupRoot) : undefined,
    proc: resolve(f.proc ?? '/proc'),
    drainDeadlineMs: parseDuration('drain-deadline', f['drain-deadline'] ?? '5s'),
    redirect: !f['no-redirect'],
    onExit,
    readyFile: f['ready-file'] ? resolve(f['ready-file']) : undefined,
    workers: Number(workersFlag),
  };
}
