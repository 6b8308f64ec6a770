import { outputFormat, outputOption, type Command } from '../command.js';
import { runNodeChecks } from '../../preflight/node-checks.js';
import { assertKubeOnlyFlags, checkKube, KUBE_CHECK_HELP, kubeCheckOptions, printChecks } from './check-kube.js';

export const checkCommand: Command = {
  name: 'check',
  summary: 'Preflight this node: kernel, BTF, cgroup v2, bpffs, capabilities, BPF features',
  usage: ['weft check [-o json]', 'weft check --kube [--kubeconfig PATH] [-n NS] [-o json]'],
  help: `Checks that this machine can run the Weft agent: kernel version, BTF, where cgroup v2 is
mounted, bpffs, the capabilities the agent needs (BPF, NET_ADMIN, SYS_ADMIN), and that each BPF
program type and helper Weft uses is accepted by this kernel (probed by loading a program).
One line per check; exit code 1 if anything required is missing.

Options:
  -o, --output table|json   output format (default table)
${KUBE_CHECK_HELP}`,
  options: { ...outputOption, ...kubeCheckOptions },
  async run(args, io) {
    assertKubeOnlyFlags(args);
    if (args.values.kube) return checkKube(args, io);
    const format = outputFormat(args);
    return printChecks(await runNodeChecks(), format, io, ['This node can run Weft.', 'This node cannot run Weft yet: fix the FAIL lines above.']);
  },
};
