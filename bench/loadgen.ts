// The bench's load generator, run inside the client pod (so the mesh captures it like any app).
// Prints one JSON object on stdout.
//   latency HOST PORT RATE CONNS SECONDS WARMUP  open loop: request i is due at start + i/RATE on
//            connection i % CONNS (pipelined if the previous one is still out); its latency is
//            measured from that due time, so a stall counts against every request it delays.
//   churn   HOST PORT WORKERS SECONDS            each worker: connect, one request, close, again.
//   idle    HOST PORT COUNT                      open COUNT connections (one request each so they
//            are really through), print {"open":n}, hold them until SIGTERM or stdin closes.
//   tls     HOST PORT WORKERS SECONDS CERT KEY CA full TLS 1.3 handshakes with a client cert.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { requestBytes, responseBytes } from './lib/http-wire.js';
import { correctedLatencies, intendedTime } from './lib/stats.js';

const [mode, host = '', portText = '0', ...rest] = process.argv.slice(2);
const port = Number(portText);
const RESP_LEN = responseBytes(1024).length;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const round3 = (x: number) => Math.round(x * 1000) / 1000;

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

async function latency(rate: number, conns: number, seconds: number, warmup: number): Promise<void> {
  const req = requestBytes(host);
  const sockets: Socket[] = [];
  const pending: number[][] = [];
  const intended: number[] = [];
  const done: number[] = [];
  let errors = 0;
  let measureFrom = Infinity;
  for (let c = 0; c < conns; c++) {
    const s = await open();
    const q: number[] = [];
    let got = 0;
    s.on('data', (chunk: Buffer) => {
      got += chunk.length;
      const now = performance.now();
      while (got >= RESP_LEN) {
        got -= RESP_LEN;
        const t = q.shift();
        if (t === undefined) { errors++; continue; }
        if (t >= measureFrom) { intended.push(t); done.push(now); }
      }
    });
    s.on('error', () => { errors++; });
    s.on('close', () => { errors += q.length; q.length = 0; });
    sockets.push(s);
    pending.push(q);
  }
  const start = performance.now() + 10;
  measureFrom = start + warmup * 1000;
  const total = Math.round(rate * (warmup + seconds));
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && intendedTime(start, rate, i) <= now) {
        const c = i % conns;
        const s = sockets[c]!;
        pending[c]!.push(intendedTime(start, rate, i));
        if (!s.destroyed) s.write(req);
        i++;
      }
      if (i >= total) return resolve();
      setTimeout(tick, Math.max(0, intendedTime(start, rate, i) - performance.now()));
    };
    tick();
  });
  // Let the last responses in (at most 5 s), then count what never came as errors.
  const deadline = performance.now() + 5000;
  while (pending.some((q) => q.length) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const lost = pending.reduce((n, q) => n + q.length, 0);
  for (const s of sockets) s.destroy();
  const lat = correctedLatencies(intended, done).map(round3);
  out({ mode: 'latency', rate, conns, seconds, warmup, sent: total, completed: lat.length, errors: errors + lost, achievedRate: lat.length / seconds, latenciesMs: lat });
}

async function churn(workers: number, seconds: number): Promise<void> {
  const req = requestBytes(host, true);
  let ok = 0;
  let errors = 0;
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  const one = () => new Promise<void>((resolve) => {
    const t0 = performance.now();
    const s = connect({ host, port, noDelay: true });
    let got = 0;
    s.once('connect', () => s.write(req));
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= RESP_LEN) { ok++; lat.push(round3(performance.now() - t0)); s.destroy(); resolve(); }
    });
    s.on('error', () => { errors++; s.destroy(); resolve(); });
    s.on('close', () => { if (got < RESP_LEN) { errors++; resolve(); } });
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => { while (performance.now() < end) await one(); }));
  const wall = (performance.now() - t0) / 1000;
  out({ mode: 'churn', workers, seconds: wall, completed: ok, errors, connectionsPerSec: ok / wall, latenciesMs: lat });
}

async function idle(count: number): Promise<void> {
  const req = requestBytes(host);
  const held: Socket[] = [];
  let errors = 0;
  const oneHeld = () => new Promise<void>((resolve) => {
    const s = connect({ host, port, noDelay: true });
    let got = 0;
    s.once('connect', () => s.write(req));
    s.on('data', (c: Buffer) => { got += c.length; if (got >= RESP_LEN) { held.push(s); resolve(); } });
    s.on('error', () => { errors++; resolve(); });
  });
  let next = 0;
  await Promise.all(Array.from({ length: 100 }, async () => { while (next++ < count) await oneHeld(); }));
  out({ mode: 'idle', open: held.filter((s) => !s.destroyed).length, errors });
  const stop = () => { for (const s of held) s.destroy(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

async function tls(workers: number, seconds: number, cert: string, key: string, ca: string): Promise<void> {
  const opts = { host, port, cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), rejectUnauthorized: false, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' as const, servername: '' };
  let ok = 0;
  let errors = 0;
  let lastError = '';
  const end = performance.now() + seconds * 1000;
  const one = () => new Promise<void>((resolve) => {
    const s = tlsConnect(opts, () => { ok++; s.destroy(); resolve(); });
    s.on('error', (e) => { errors++; lastError = e.message; s.destroy(); resolve(); });
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => { while (performance.now() < end) await one(); }));
  const wall = (performance.now() - t0) / 1000;
  out({ mode: 'tls', workers, seconds: wall, completed: ok, errors, lastError, handshakesPerSec: ok / wall });
}

const n = rest.map(Number);
const main = async () => {
  switch (mode) {
    case 'latency': return latency(n[0]!, n[1]!, n[2]!, n[3] ?? 1);
    case 'churn': return churn(n[0]!, n[1]!);
    case 'idle': return idle(n[0]!);
    case 'tls': return tls(n[0]!, n[1]!, rest[2]!, rest[3]!, rest[4]!);
    default: throw new Error(`unknown mode '${mode}': latency | churn | idle | tls`);
  }
};
main().then(() => { if (mode !== 'idle') process.exit(0); }, (err: Error) => { process.stderr.write(`loadgen: ${err.message}\n`); process.exit(1); });
