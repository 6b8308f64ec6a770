// The controller's readiness endpoint (GET /healthz/ready, port 15021 in a cluster): 200 once
// the CA is loaded, the cluster source has listed everything and the gRPC port is up; 503
// with what it still waits for otherwise. It listens before the rest starts, so a probe
// during a slow first sync gets an answer that says why instead of a refused connection.
import { createServer, type Server } from 'node:http';
import { logger } from '../common/log.js';
import { parseHostPort, type HostPort } from '../agent/options.js';
import { ListenError } from './grpc-server.js';

export const READY_PATH = '/healthz/ready';
export const DEFAULT_READINESS_PORT = 15021;

export interface ReadinessState {
  ready: boolean;
  /** what is missing, in words, when not ready */
  waiting: string[];
}

export interface ReadinessServer {
  port: number;
  close(): Promise<void>;
}

/** `HOST:PORT` or `:PORT` (all IPv4 addresses); throws UsageError naming the flag. */
export function parseReadiness(v: string, flag = 'readiness'): HostPort {
  return parseHostPort(flag, v, '0.0.0.0');
}

export async function startReadinessServer(at: HostPort, state: () => ReadinessState): Promise<ReadinessServer> {
  const log = logger('controller');
  let wasReady = false;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== READY_PATH) return void res.writeHead(404, { 'content-type': 'text/plain' }).end(`endpoints: ${READY_PATH}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
    const s = state();
    if (s.ready !== wasReady) log.info({ ready: s.ready, waiting: s.waiting }, s.ready ? 'controller ready' : 'controller not ready');
    wasReady = s.ready;
    res.writeHead(s.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(s.ready ? 'ready\n' : `not ready: waiting for ${s.waiting.join(', ')}\n`);
  });
  server.keepAliveTimeout = 2000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ListenError(`${at.host}:${at.port}`, err, 'readiness')));
    server.listen(at.port, at.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ host: at.host, port, path: READY_PATH }, 'readiness listening');
  return {
    port,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}
