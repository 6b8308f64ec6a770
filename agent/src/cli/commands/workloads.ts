// `weft workloads`: the workloads an agent knows, with their enrolment (HBONE or none).
import { outputFormat, outputOption, table, type Command } from '../command.js';
import { loadConfigDump } from '../../telemetry/admin-client.js';
import { dumpTargetOptions, dumpTarget } from './certs.js';

export const workloadsCommand: Command = {
  name: 'workloads',
  summary: 'List the workloads an agent knows (name, IP, node, protocol, identity)',
  usage: ['weft workloads [--node NAME [--lab NAME] | --admin URL] [-o table|json]'],
  options: { ...outputOption, ...dumpTargetOptions },
  run: async (args, io) => {
    const format = outputFormat(args);
    const dump = await loadConfigDump(dumpTarget(args));
    if (format === 'json') {
      io.out(JSON.stringify(dump.workloads, null, 2) + '\n');
      return 0;
    }
    // ENROLMENT: what this node's agent did with its own mesh pods (enrolled/pending/failed).
    io.out(table(['NAMESPACE', 'NAME', 'ADDRESS', 'NODE', 'PROTOCOL', 'SERVICE ACCOUNT', 'STATUS', 'ENROLMENT'],
      dump.workloads.map((w) => [w.namespace, w.name, w.addresses.join(',') || '-', w.node || '-', w.protocol, w.serviceAccount, w.status, (w as { enrolment?: string }).enrolment ?? '-'])));
    return 0;
  },
};
