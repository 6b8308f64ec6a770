// The lab's sample app, one process per pod, started inside the pod's netns and cgroup:
//   TCP echo on :9000, and HTTP on :8080 answering every request with
//   {"pod","namespace","path","client"} where client is the peer address the app sees
// (tests rely on it to prove that source IPs are kept). Dependency-free to stay small.
import { createServer as createTcpServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    namespace: { type: 'string', default: 'default' },
    pod: { type: 'string', default: 'unknown' },
    'echo-port': { type: 'string', default: '9000' },
    'http-port': { type: 'string', default: '8080' },
  },
});
const pod = values.pod!;
const namespace = values.namespace!;

const log = (msg: string, extra: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, pod, namespace, ...extra }) + '\n');

const echo = createTcpServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});

// Query parameters for L7 tests: ?status=503 answers with that status, ?delay=250 waits that
// many milliseconds first (at most 30 s). The body is the same JSON either way.
const http = createHttpServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const status = Number(query.get('status') ?? 200);
    const delay = Math.min(Number(query.get('delay') ?? 0) || 0, 30_000);
    const body = JSON.stringify({ pod, namespace, path: req.url ?? '/', client: req.socket.remoteAddress ?? '' });
    const answer = () => {
      res.writeHead(Number.isInteger(status) && status >= 200 && status <= 599 ? status : 400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
});
http.on('clientError', (_err, socket) => socket.destroy());

let listening = 0;
const onListening = () => {
  if (++listening === 2) log('listening', { echo: Number(values['echo-port']), http: Number(values['http-port']), pid: process.pid });
};
echo.on('error', (err) => {
  log('echo server failed', { error: err.message });
  process.exit(1);
});
http.on('error', (err) => {
  log('http server failed', { error: err.message });
  process.exit(1);
});
// IPv4 only, so `client` is a plain dotted address rather than ::ffff:…
echo.listen(Number(values['echo-port']), '0.0.0.0', onListening);
http.listen(Number(values['http-port']), '0.0.0.0', onListening);

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
