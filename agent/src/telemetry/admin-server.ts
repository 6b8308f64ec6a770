// The agent's admin endpoint on localhost:15000 (as ztunnel's): /config_dump shows the
// workloads, services, policies and certificates (with expiry) the agent holds.
import { createServer, type Server } from 'node:http';
import { logger } from '../common/log.js';
import type { ConfigDump } from '../state/dump.js';

export const ADMIN_PORT = 15000;

export interface AdminServerOptions {
  host?: string;
  port?: number;
  configDump: () => ConfigDump;
}

export interface RunningAdmin {
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(opts: AdminServerOptions): Promise<RunningAdmin> {
  const log = logger('admin');
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/config_dump') {
      try {
        const body = JSON.stringify(opts.configDump(), null, 2);
        res.writeHead(200, { 'content-type': 'application/json' }).end(body + '\n');
      } catch (err) {
        log.error({ err }, 'config_dump failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`config_dump failed: ${(err as Error).message}\n`);
      }
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('endpoints: /config_dump\n');
  });
  // localhost only: the dump names every workload and identity
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? ADMIN_PORT, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ host, port }, 'admin server listening');
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}
