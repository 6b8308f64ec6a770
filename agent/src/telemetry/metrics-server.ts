// :15020 — Prometheus scrapes /metrics (and /stats/prometheus, ztunnel's alias). Rendering
// happens here, on scrape, never on the data path.
import http from 'node:http';
import { once } from 'node:events';
import { Registry } from './registry.js';

export interface MetricsServerOptions {
  registry: Registry;
  host?: string;
  port?: number;
  /** listen on an fd made elsewhere (e.g. in the node's netns) instead of host/port */
  fd?: number;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/metrics' || path === '/stats/prometheus')) {
      const body = opts.registry.render();
      res.writeHead(200, { 'content-type': Registry.contentType, 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /metrics\n');
  });
  if (opts.fd !== undefined) server.listen({ fd: opts.fd });
  else server.listen(opts.port ?? 15020, opts.host ?? '0.0.0.0');
  await once(server, 'listening');
  return server;
}
