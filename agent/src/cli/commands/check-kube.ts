// `weft check --kube`: the cluster half of `weft check` (see deploy/kube-check.ts); check.ts
// delegates here when --kube is given.
import { UsageError } from '../../common/errors.js';
import { outputFormat, type Io, type OptionSpec, type Parsed } from '../command.js';
import { DEFAULT_KUBE_TIMEOUT_MS, runKubeChecks } from '../../deploy/kube-check.js';
import { DEFAULT_NAMESPACE } from '../../deploy/render.js';
import type { CheckResult } from '../../preflight/node-checks.js';

export const kubeCheckOptions: OptionSpec = {
  kube: { type: 'boolean', default: false },
  kubeconfig: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  timeout: { type: 'string' },
};

export const KUBE_CHECK_HELP = `  --kube                    check the cluster instead of this node: server version, CRDs,
                            controller, an agent ready on every node, each node's kernel
                            checks as its agent reports them
  --kubeconfig PATH         with --kube: kubeconfig (default $KUBECONFIG, ~/.kube/config)
  -n, --namespace NS        with --kube: where Weft is installed (default ${DEFAULT_NAMESPACE})
  --timeout SECONDS         with --kube: per API request (default ${DEFAULT_KUBE_TIMEOUT_MS / 1000})`;

export function printChecks(results: CheckResult[], format: 'table' | 'json', io: Io, verdict: [string, string]): number {
  const ok = results.every((r) => r.ok || !r.required);
  if (format === 'json') {
    io.out(JSON.stringify({ ok, checks: results }, null, 2) + '\n');
  } else {
    const width = Math.max(...results.map((r) => r.name.length));
    for (const r of results) {
      io.out(`${r.ok ? 'ok  ' : r.required ? 'FAIL' : 'warn'}  ${r.name.padEnd(width)}  ${r.detail}\n`);
      if (!r.ok && r.hint) io.out(`      ${' '.repeat(width)}  hint: ${r.hint}\n`);
    }
    io.out((ok ? verdict[0] : verdict[1]) + '\n');
  }
  return ok ? 0 : 1;
}

export async function checkKube(args: Parsed, io: Io): Promise<number> {
  const format = outputFormat(args);
  const ns = (args.values.namespace as string | undefined) ?? DEFAULT_NAMESPACE;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) throw new UsageError(`--namespace '${ns}' is not a namespace name`);
  const kubeconfig = args.values.kubeconfig as string | undefined;
  const t = args.values.timeout as string | undefined;
  const seconds = t === undefined ? DEFAULT_KUBE_TIMEOUT_MS / 1000 : Number(t);
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new UsageError(`--timeout must be a positive number of seconds, not '${t}'`);
  const results = await runKubeChecks({ namespace: ns, timeoutMs: seconds * 1000, ...(kubeconfig ? { kubeconfig } : {}) });
  return printChecks(results, format, io, ['Weft is installed and ready on every node.', 'Weft is not ready on this cluster: fix the FAIL lines above.']);
}

/** Flags that only mean something with --kube. */
export function assertKubeOnlyFlags(args: Parsed): void {
  if (!args.values.kube && (args.values.kubeconfig !== undefined || args.values.namespace !== undefined || args.values.timeout !== undefined)) {
    throw new UsageError('--kubeconfig, --namespace and --timeout need --kube');
  }
}
