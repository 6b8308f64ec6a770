// Runs INSIDE a lab pod (its cgroup and netns), so the pod's cgroup programs see its connects.
// argv[2]: JSON {targets: [{host, port}], timeoutMs?, mark?}. Opens every connection at once,
// reads one line from each, prints JSON [{host, port, reply | error}] and exits. With `mark`,
// each socket is made natively with that SO_MARK before connect (as the agent's own are).
import { connect, Socket } from 'node:net';

interface Target { host: string; port: number }
const { targets, timeoutMs = 20_000, mark } = JSON.parse(process.argv[2] ?? '{}') as { targets: Target[]; timeoutMs?: number; mark?: number };
const native = mark === undefined ? undefined : await import('../../agent/src/native/index.js');

async function open(t: Target): Promise<Socket> {
  if (!native) return connect({ host: t.host, port: t.port });
  return new Socket({ fd: await native.socketInNetns({ mark }) }).connect(t.port, t.host);
}

async function one(t: Target): Promise<{ host: string; port: number; reply?: string; error?: string }> {
  const s = await open(t);
  return new Promise((resolve) => {
    let buf = '';
    const done = (r: { reply?: string; error?: string }) => { s.destroy(); resolve({ ...t, ...r }); };
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
