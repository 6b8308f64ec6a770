// Reads an agent's /config_dump, either directly (an admin URL) or, in the lab, from inside a
// node's network namespace, where that node's agent listens on localhost.
import { WeftError } from '../common/errors.js';
import { run } from '../common/exec.js';
import type { ConfigDump } from '../state/dump.js';
import { ADMIN_PORT } from './admin-server.js';

export class AdminUnreachableError extends WeftError {
  constructor(path: string, where: string, reason: string) {
    super('WEFT_E_ADMIN_UNREACHABLE', `cannot read the agent's ${path.replace(/^\//, '')} at ${where}: ${reason}`, {
      hint: 'is the agent running? In the lab use --node <name> (weft lab status lists nodes); elsewhere --admin http://127.0.0.1:15000',
    });
  }
}

/** GET an admin path (e.g. /config_dump, /connections) as JSON. */
export async function fetchAdmin<T>(path: string, adminUrl = `http://127.0.0.1:${ADMIN_PORT}`): Promise<T> {
  const url = new URL(path, adminUrl).toString();
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new AdminUnreachableError(path, url, (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message);
  }
  if (!res.ok) throw new AdminUnreachableError(path, url, `HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** Lab: the same GET run inside /run/netns/<netns> with nsenter (needs root). */
export async function fetchAdminInNetns<T>(netns: string, path: string, port = ADMIN_PORT): Promise<T> {
  const target = JSON.stringify(`http://127.0.0.1:${port}${path}`);
  const script = `fetch(${target},{signal:AbortSignal.timeout(5000)}).then(async r=>{if(!r.ok){console.error('HTTP '+r.status);process.exit(3)}process.stdout.write(await r.text())},e=>{console.error(e.cause?.message??e.message);process.exit(2)})`;
  const r = await run('nsenter', [`--net=/run/netns/${netns}`, process.execPath, '-e', script], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new AdminUnreachableError(path, `netns ${netns}`, r.stderr.trim() || `exit ${r.code}`);
  return JSON.parse(r.stdout) as T;
}

export function fetchConfigDump(adminUrl?: string): Promise<ConfigDump> {
  return fetchAdmin<ConfigDump>('/config_dump', adminUrl);
}

export function fetchConfigDumpInNetns(netns: string, port = ADMIN_PORT): Promise<ConfigDump> {
  return fetchAdminInNetns<ConfigDump>(netns, '/config_dump', port);
}

export interface DumpTarget {
  admin?: string;
  /** lab node whose agent to ask */
  node?: string;
  lab?: string;
}

/** Where `weft workloads|services|policies|certs|connections` read from: --node (lab) or --admin. */
export async function loadAdmin<T>(t: DumpTarget, path: string): Promise<T> {
  if (t.node) {
    const { nodeNetns, validateLabName, DEFAULT_LAB_NAME } = await import('../lab/names.js');
    const lab = validateLabName(t.lab ?? DEFAULT_LAB_NAME);
    return fetchAdminInNetns<T>(nodeNetns(lab, t.node), path);
  }
  return fetchAdmin<T>(path, t.admin);
}

export function loadConfigDump(t: DumpTarget): Promise<ConfigDump> {
  return loadAdmin<ConfigDump>(t, '/config_dump');
}
