// Runs INSIDE a lab pod (its cgroup and netns) for redirect-ipv6.test.ts. argv[2]: JSON
// {targets: [{host, port, mark?}], timeoutMs?}. Like redirect-client.ts, but a target with `mark`
// gets a native socket of the target's family carrying that SO_MARK (as the agent's own sockets
// do), so IPv6 targets can be dialled with the bypass mark too. Prints JSON
// [{host, port, reply | error}]: the first line each connection reads, or the error code.
import { connect, isIPv6, Socket } from 'node:net';
import { socketInNetns } from '../../agent/src/native/index.js';

interface Target { host: string; port: number; mark?: number }
const { targets, timeoutMs = 10_000 } = JSON.parse(process.argv[2] ?? '{}') as { targets: Target[]; timeoutMs?: number };

async function open(t: Target): Promise<Socket> {
  if (t.mark === undefined) return connect({ host: t.host, port: t.port });
  const fd = await socketInNetns({ mark: t.mark, family: isIPv6(t.host) ? 6 : 4 });
  return new Socket({ fd }).connect(t.port, t.host);
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

process.stdout.write(JSON.stringify(await Promise.all(targets.map(one))));
