// `weft certs`: the workload certificates an agent holds, with expiry and next refresh.
// Also home of the --node/--lab/--admin options the four state views share.
import { outputFormat, outputOption, table, type Command, type OptionSpec, type Parsed } from '../command.js';
import { loadConfigDump, type DumpTarget } from '../../telemetry/admin-client.js';

export const dumpTargetOptions: OptionSpec = {
  node: { type: 'string' },
  lab: { type: 'string' },
  admin: { type: 'string' },
};

export function dumpTarget(args: Parsed): DumpTarget {
  const t: DumpTarget = {};
  if (typeof args.values.node === 'string') t.node = args.values.node;
  if (typeof args.values.lab === 'string') t.lab = args.values.lab;
  if (typeof args.values.admin === 'string') t.admin = args.values.admin;
  return t;
}

export const certsCommand: Command = {
  name: 'certs',
  summary: 'List the workload certificates an agent holds (identity, expiry, refresh)',
  usage: ['weft certs [--node NAME [--lab NAME] | --admin URL] [-o table|json]'],
  options: { ...outputOption, ...dumpTargetOptions },
  run: async (args, io) => {
    const format = outputFormat(args);
    const dump = await loadConfigDump(dumpTarget(args));
    if (format === 'json') {
      io.out(JSON.stringify(dump.certificates, null, 2) + '\n');
      return 0;
    }
    io.out(table(['IDENTITY', 'STATE', 'NOT AFTER', 'REFRESH AT', 'ERROR'],
      dump.certificates.map((c) => [c.identity, c.state, c.notAfter ?? '-', c.refreshAt ?? '-', c.lastError ?? ''])));
    return 0;
  },
};
