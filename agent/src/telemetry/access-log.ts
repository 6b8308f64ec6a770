// One access-log line per finished connection, with ztunnel's field names (reference 6.3), as
// pino JSON under component "access". Failures log at warn, clean completions at info.
import { logger, type Logger } from '../common/log.js';
import type { ConnectionInfo, ConnectionOutcome } from './connection-info.js';

export function accessLogFields(info: ConnectionInfo, outcome: ConnectionOutcome): Record<string, unknown> {
  const f: Record<string, unknown> = {
    'src.addr': info.srcAddr,
    'src.workload': info.src.workload,
    'src.namespace': info.src.namespace,
    'src.identity': info.src.identity,
    'dst.addr': info.dstAddr,
    'dst.hbone_addr': info.hboneAddr,
    'dst.service': info.service?.hostname,
    'dst.workload': info.dst.workload,
    'dst.namespace': info.dst.namespace,
    'dst.identity': info.dst.identity,
    direction: info.direction,
    bytes_sent: outcome.bytesSent,
    bytes_recv: outcome.bytesRecv,
    duration: `${Math.round(outcome.durationMs)}ms`,
    response_flags: outcome.responseFlags,
    error: outcome.error,
  };
  for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k];
  return f;
}

export class AccessLog {
  constructor(private readonly log: Logger = logger('access')) {}

  write(info: ConnectionInfo, outcome: ConnectionOutcome): void {
    const fields = accessLogFields(info, outcome);
    if (outcome.error || outcome.responseFlags !== '-') this.log.warn(fields, 'connection failed');
    else this.log.info(fields, 'connection complete');
  }
}
