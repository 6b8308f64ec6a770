// Runs INSIDE a lab pod (its cgroup and netns), so the pod's cgroup programs see its connects.
// argv[2]: JSON {targets: [{host, port, mark?}], timeoutMs?, mark?}. Opens every connection at
// once, reads one line from each, prints JSON [{host, port, reply | error}] and exits. With a
// `mark` (the target's, else the global one), the socket is made natively, of the target's
// address family, with that SO_MARK before connect (as the agent's own are).
import { connect, isIPv6, Socket } from 'node:net';

interface Target { host: string; port: number; mark?: number }
const { targets, timeoutMs = 20_000, mark } = JSON.parse(process.argv[2] ?? '{}') as { targets: Target[]; timeoutMs?: number; mark?: number };
const native = mark === undefined && targets.every((t) => t.mark === undefined) ? undefined : await import('../../agent/src/native/index.js');

async function open(t: Target): Promise<Socket> {
  const m = t.mark ?? mark;
  if (!native || m === undefined) return connect({ host: t.host, port: t.port });
  return new Socket({ fd: await native.socketInNetns({ mark: m, family: isIPv6(t.host) ? 6 : 4 }) }).connect(t.port, t.host);
}

async function one(t: Target): Promise<{ host: string; port: number; reply?: string; error?: string }> {
  const s = await open(t);
  return new Promise((resolve) => {
    let buf = '';
    const done = (r: { reply?: string; error?: string }) => { s.destroy(); resolve({ host: t.host, port: t.port, ...r }); };
    s.setTimeout(timeoutMs, () => done({ error: 'timeout' }));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done({ reply: buf.slice(0, nl) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    s.on('end', () => done({ error: buf ? `eof after ${JSON.stringify(buf)}` : 'eof' }));
  });
}

const results = await Promise.all(targets.map(one));
process.stdout.write(JSON.stringify(results));
