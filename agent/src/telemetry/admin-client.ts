// Reads an agent's /config_dump, either directly (an admin URL) or, in the lab, from inside a
// node's network namespace, where that node's agent listens on localhost.
import { WeftError } from '../common/errors.js';
import { run } from '../common/exec.js';
import type { ConfigDump } from '../state/dump.js';
import { ADMIN_PORT } from './admin-server.js';

export class AdminUnreachableError extends WeftError {
  constructor(where: string, reason: string) {
    super('WEFT_E_ADMIN_UNREACHABLE', `cannot read the agent's config_dump at ${where}: ${reason}`, {
      hint: 'is the agent running? In the lab use --node <name> (weft lab status lists nodes); elsewhere --admin http://127.0.0.1:15000',
    });
  }
}

export async function fetchConfigDump(adminUrl = `http://127.0.0.1:${ADMIN_PORT}`): Promise<ConfigDump> {
  const url = new URL('/config_dump', adminUrl).toString();
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new AdminUnreachableError(url, (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message);
  }
  if (!res.ok) throw new AdminUnreachableError(url, `HTTP ${res.status}`);
  return (await res.json()) as ConfigDump;
}

/** Lab: runs the fetch inside /run/netns/<netns> with nsenter (needs root). */
export async function fetchConfigDumpInNetns(netns: string, port = ADMIN_PORT): Promise<ConfigDump> {
  const script = `fetch('http://127.0.0.1:${port}/config_dump',{signal:AbortSignal.timeout(5000)}).then(async r=>{if(!r.ok){console.error('HTTP '+r.status);process.exit(3)}process.stdout.write(await r.text())},e=>{console.error(e.cause?.message??e.message);process.exit(2)})`;
  const r = await run('nsenter', [`--net=/run/netns/${netns}`, process.execPath, '-e', script], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new AdminUnreachableError(`netns ${netns}`, r.stderr.trim() || `exit ${r.code}`);
  return JSON.parse(r.stdout) as ConfigDump;
}

export interface DumpTarget {
  admin?: string;
  /** lab node whose agent to ask */
  node?: string;
  lab?: string;
}

/** Where `weft workloads|services|policies|certs` read from: --node (lab) or --admin. */
export async function loadConfigDump(t: DumpTarget): Promise<ConfigDump> {
  if (t.node) {
    const { nodeNetns, validateLabName, DEFAULT_LAB_NAME } = await import('../lab/names.js');
    const lab = validateLabName(t.lab ?? DEFAULT_LAB_NAME);
    return fetchConfigDumpInNetns(nodeNetns(lab, t.node));
  }
  return fetchConfigDump(t.admin);
}
