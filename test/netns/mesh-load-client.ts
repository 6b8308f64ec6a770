// Runs inside a pod for the lifecycle tests: a steady stream of new HTTP connections to
// host:8080 (concurrency C, a new connection each request), plus optionally one long-lived
// echo connection on :9000 that sends a line every 100 ms for `holdMs`. On SIGTERM it stops,
// waits for what is in flight and prints one JSON line:
//   {"ok":N,"failed":N,"errors":{"ECONNRESET":n},"held":{"sent":n,"echoed":n,"error":?}}
// argv: host concurrency holdMs
import http from 'node:http';
import net from 'node:net';

const [host, conc, hold] = process.argv.slice(2);
const concurrency = Number(conc ?? 4);
const holdMs = Number(hold ?? 0);
let stopping = false;
let ok = 0;
let failed = 0;
const errors: Record<string, number> = {};
const agent = new http.Agent({ keepAlive: false });

function one(): Promise<void> {
  return new Promise((resolve) => {
    const req = http.get({ host, port: 8080, path: '/load', agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) ok++;
        else {
          failed++;
          errors[`HTTP_${res.statusCode}`] = (errors[`HTTP_${res.statusCode}`] ?? 0) + 1;
        }
        resolve();
      });
      res.on('error', () => undefined);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      failed++;
      errors[err.code ?? 'ERROR'] = (errors[err.code ?? 'ERROR'] ?? 0) + 1;
      resolve();
    });
  });
}

async function worker(): Promise<void> {
  while (!stopping) await one();
}

const held = { sent: 0, echoed: 0, error: undefined as string | undefined, done: false };
function holdConnection(): Promise<void> {
  if (!holdMs) return Promise.resolve();
  return new Promise((resolve) => {
    const s = net.connect({ host, port: 9000 });
    let buf = '';
    const end = Date.now() + holdMs;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      held.echoed = buf.split('\n').length - 1;
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      held.error = err.code ?? err.message;
    });
    s.on('close', () => {
      held.done = true;
      resolve();
    });
    s.on('connect', () => {
      const t = setInterval(() => {
        if (Date.now() > end) {
          clearInterval(t);
          s.end();
          return;
        }
        s.write(`line ${held.sent++}\n`);
      }, 100);
    });
  });
}

const heldDone = holdConnection();
const workers = Array.from({ length: concurrency }, worker);
process.stdout.write('started\n');
process.on('SIGTERM', async () => {
  stopping = true;
  await Promise.all(workers);
  await heldDone;
  process.stdout.write(JSON.stringify({ ok, failed, errors, held }) + '\n');
  process.exit(0);
});
