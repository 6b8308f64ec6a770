// A tiny client the lab runs inside a pod (via exec) for tests and demos: prints one JSON line.
//   probe-client http <url> [timeoutMs]           → {"ok":true,"status":200,"body":"…"}
//   probe-client echo <host> <port> <text> [ms]   → {"ok":true,"reply":"…"}
//   probe-client connect <host> <port> [ms]       → {"ok":true} or {"ok":false,"code":"ECONNREFUSED"}
import { connect } from 'node:net';
import { request } from 'node:http';

const [mode, ...args] = process.argv.slice(2);
const out = (v: Record<string, unknown>) => {
  process.stdout.write(JSON.stringify(v) + '\n');
  process.exit(v.ok ? 0 : 1);
};
const fail = (err: NodeJS.ErrnoException | Error) => out({ ok: false, code: (err as NodeJS.ErrnoException).code ?? 'ERROR', error: err.message });

if (mode === 'http') {
  const timeout = Number(args[1] ?? 5000);
  const req = request(args[0]!, { timeout }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => out({ ok: true, status: res.statusCode, body }));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
  req.on('error', fail);
  req.end();
} else if (mode === 'echo' || mode === 'connect') {
  const [host, port] = args;
  const text = mode === 'echo' ? args[2] ?? '' : '';
  const timeout = Number(args[mode === 'echo' ? 3 : 2] ?? 5000);
  const s = connect({ host: host!, port: Number(port), timeout });
  let reply = '';
  s.on('timeout', () => s.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
  s.on('error', fail);
  s.on('connect', () => {
    if (mode === 'connect') {
      s.destroy();
      out({ ok: true, local: `${s.localAddress}:${s.localPort}` });
    } else s.end(text);
  });
  s.setEncoding('utf8').on('data', (d: string) => (reply += d));
  s.on('end', () => out({ ok: true, reply }));
} else {
  out({ ok: false, code: 'USAGE', error: 'modes: http URL | echo HOST PORT TEXT | connect HOST PORT' });
}
