// The agent's three HTTP ports: admin (localhost: /config_dump, /connections, /logging),
// metrics (/metrics, /stats/prometheus) and readiness (/healthz/ready). Each listens with
// SO_REUSEPORT so a new agent can bind beside the old one during a restart.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenInNetns } from '../native/index.js';
import { logger, setLogLevel } from '../common/log.js';
import type { HostPort } from './options.js';

const log = logger('admin');

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

export interface Endpoint {
  name: string;
  server: Server;
  port: number;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n');
}

export async function serve(name: string, at: HostPort, routes: Record<string, Handler>): Promise<Endpoint> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const h = routes[url.pathname];
    if (!h) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`endpoints: ${Object.keys(routes).join(' ')}\n`);
      return;
    }
    try {
      h(req, res, url);
    } catch (err) {
      log.error({ endpoint: name, path: url.pathname, err: (err as Error).message }, 'handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
    }
  });
  server.keepAliveTimeout = 2000;
  const fd = await listenInNetns({ host: at.host, port: at.port, reusePort: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ endpoint: name, host: at.host, port }, 'listening');
  return {
    name, server, port,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

export const handlers = {
  json,
  getOnly(h: Handler): Handler {
    return (req, res, url) => {
      if (req.method !== 'GET' && !(req.method === 'POST' && url.pathname === '/logging')) {
        res.writeHead(405, { allow: 'GET' }).end();
        return;
      }
      h(req, res, url);
    };
  },
  logging: ((_req, res, url) => {
    const level = url.searchParams.get('level');
    if (level) {
      if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(level)) return json(res, 400, { error: `unknown level '${level}'` });
      setLogLevel(level);
      log.info({ level }, 'log level changed');
    }
    json(res, 200, { level: level ?? process.env.WEFT_LOG_LEVEL ?? 'info' });
  }) as Handler,
};
