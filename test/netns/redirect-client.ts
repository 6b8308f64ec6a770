// Runs INSIDE a lab pod (its cgroup and netns), so the pod's cgroup programs see its connects.
// argv[2]: JSON {targets: [{host, port}], timeoutMs?}. Opens every connection at once, reads one
// line from each, prints JSON [{host, port, reply | error}] and exits.
import { connect } from 'node:net';

interface Target { host: string; port: number }
const { targets, timeoutMs = 20_000 } = JSON.parse(process.argv[2] ?? '{}') as { targets: Target[]; timeoutMs?: number };

function one(t: Target): Promise<{ host: string; port: number; reply?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: t.host, port: t.port });
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
