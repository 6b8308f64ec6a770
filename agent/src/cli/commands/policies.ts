// `weft policies`: the L4 authorization policies an agent enforces.
import { outputFormat, outputOption, table, type Command } from '../command.js';
import { loadConfigDump } from '../../telemetry/admin-client.js';
import { dumpTargetOptions, dumpTarget } from './certs.js';

interface PolicyJson { name?: string; namespace?: string; scope?: string; action?: string; rules?: unknown[]; dryRun?: boolean }

export const policiesCommand: Command = {
  name: 'policies',
  summary: 'List the authorization policies an agent enforces (scope, action, rules)',
  usage: ['weft policies [--node NAME [--lab NAME] | --admin URL] [-o table|json]'],
  options: { ...outputOption, ...dumpTargetOptions },
  run: async (args, io) => {
    const format = outputFormat(args);
    const dump = await loadConfigDump(dumpTarget(args));
    if (format === 'json') {
      io.out(JSON.stringify(dump.policies, null, 2) + '\n');
      return 0;
    }
    const rows = (dump.policies as PolicyJson[]).map((p) => [p.namespace ?? '', p.name ?? '', p.scope ?? '', p.action ?? '', String(p.rules?.length ?? 0), p.dryRun ? 'yes' : 'no']);
    io.out(table(['NAMESPACE', 'NAME', 'SCOPE', 'ACTION', 'RULES', 'DRY-RUN'], rows));
    return 0;
  },
};
