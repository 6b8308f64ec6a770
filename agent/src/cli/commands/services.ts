// `weft services`: services with their cluster IPs, ports and endpoint counts.
import { outputFormat, outputOption, table, type Command } from '../command.js';
import { loadConfigDump } from '../../telemetry/admin-client.js';
import { dumpTargetOptions, dumpTarget } from './certs.js';

export const servicesCommand: Command = {
  name: 'services',
  summary: 'List the services an agent knows (hostname, cluster IPs, ports, endpoints)',
  usage: ['weft services [--node NAME [--lab NAME] | --admin URL] [-o table|json]'],
  options: { ...outputOption, ...dumpTargetOptions },
  run: async (args, io) => {
    const format = outputFormat(args);
    const dump = await loadConfigDump(dumpTarget(args));
    if (format === 'json') {
      io.out(JSON.stringify(dump.services, null, 2) + '\n');
      return 0;
    }
    io.out(table(['NAMESPACE', 'HOSTNAME', 'VIPS', 'PORTS', 'ENDPOINTS'],
      dump.services.map((s) => [s.namespace, s.hostname, s.vips.join(',') || '-', s.ports.map((p) => `${p.servicePort}→${p.targetPort || 'named'}`).join(',') || '-', String(s.endpoints)])));
    return 0;
  },
};
