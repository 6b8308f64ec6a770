// What the bench needs before it builds anything: root and the tools of each mode.
import { WeftError, PrivilegeError } from '../../agent/src/common/errors.js';
import { hasCommand } from '../../agent/src/common/exec.js';

export class BenchToolMissingError extends WeftError {
  constructor(missing: string[]) {
    super('WEFT_E_BENCH_TOOL_MISSING', `the bench needs ${missing.join(', ')}, not found on PATH`, {
      hint: 'run `npm run setup` as root (Debian packages haproxy, iperf3, nftables, openssl), or install them yourself',
    });
  }
}

export const BENCH_TOOLS = ['haproxy', 'iperf3', 'nft', 'openssl', 'nsenter', 'getconf'];

export async function benchPreflight(tools: readonly string[] = BENCH_TOOLS, uid = process.getuid?.()): Promise<void> {
  if (uid !== 0) throw new PrivilegeError('the bench builds a lab (network namespaces, cgroups, BPF): run it as root', { hint: 'sudo npm run bench' });
  const missing: string[] = [];
  for (const t of tools) if (!(await hasCommand(t))) missing.push(t);
  if (missing.length) throw new BenchToolMissingError(missing);
}
