// `weft connections`: the connections an agent is proxying right now, with both identities.
import { outputFormat, outputOption, table, type Command } from '../command.js';
import { loadAdmin } from '../../telemetry/admin-client.js';
import type { ConnectionSnapshot } from '../../proxy/connection-tracker.js';
import { dumpTarget, dumpTargetOptions } from './certs.js';

const who = (p: { workload?: string | undefined; namespace?: string | undefined }) => (p.workload ? `${p.namespace}/${p.workload}` : '-');

export const connectionsCommand: Command = {
  name: 'connections',
  summary: 'List the live connections an agent proxies (direction, workloads, SPIFFE identities, bytes)',
  usage: ['weft connections [--node NAME [--lab NAME] | --admin URL] [-o table|json]'],
  help: `Reads the agent's admin endpoint /connections: every connection it is proxying now, inbound
and outbound, with source and destination workload and SPIFFE identity (for mTLS), the
security policy (mutual_tls or unknown for plaintext), bytes each way and age.

Options:
  --node NAME        in the lab: ask the agent of this node (reads it inside the node's netns)
  --lab NAME         the lab (default lab)
  --admin URL        elsewhere: the agent's admin address (default http://127.0.0.1:15000)
  -o, --output table|json`,
  options: { ...outputOption, ...dumpTargetOptions },
  run: async (args, io) => {
    const format = outputFormat(args);
    const conns = await loadAdmin<ConnectionSnapshot[]>(dumpTarget(args), '/connections');
    if (format === 'json') {
      io.out(JSON.stringify(conns, null, 2) + '\n');
      return 0;
    }
    io.out(table(['DIRECTION', 'SOURCE', 'SOURCE IDENTITY', 'DESTINATION', 'DESTINATION IDENTITY', 'SECURITY', 'SENT', 'RECEIVED', 'AGE'],
      conns.map((c) => [
        c.direction, `${who(c.src)} ${c.srcAddr}`, c.src.identity ?? '-', `${who(c.dst)} ${c.hboneAddr ?? c.dstAddr}`, c.dst.identity ?? '-',
        c.security, String(c.bytesSent), String(c.bytesRecv), `${(c.durationMs / 1000).toFixed(1)}s`,
      ])));
    return 0;
  },
};
