// Memory per idle proxied connection, in process: N connections held open through the mesh
// (outbound relay -> HBONE mTLS/h2 -> inbound relay -> echo app), heap and RSS measured before
// and after with GC forced, divided by N. Everything (both agents' proxies and both app ends)
// runs in this one process, so the figure is an upper bound for the two agents together.
// Optional: a heap snapshot to see which objects each connection costs.
//   node --expose-gc dist/bench/connection-memory.js [N=2000] [snapshot.heapsnapshot]
import net from 'node:net';
import v8 from 'node:v8';
import { once } from 'node:events';
import { Mesh } from '../test/helpers/proxy-harness.js';

const N = Number(process.argv[2] ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const settle = async () => {
  gc();
  await new Promise((r) => setTimeout(r, 300));
  gc();
};

const mesh = await Mesh.create();
const sockets: net.Socket[] = [];
try {
  const client = await mesh.pod(mesh.node('node-a'), { namespace: 'bench', serviceAccount: 'client' });
  const server = await mesh.pod(mesh.node('node-b'), { namespace: 'bench', serviceAccount: 'server' });
  const via = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
  const open = async () => {
    const c = net.connect({ port: via });
    await once(c, 'connect');
    c.write('x'); // one echo round trip: the tunnel is fully set up, then idle
    await once(c, 'data');
    sockets.push(c);
  };
  await open(); // the HBONE connection and certificates exist before the baseline
  await settle();
  const m0 = process.memoryUsage();
  for (let i = 0; i < N; i++) await open();
  await settle();
  const m1 = process.memoryUsage();
  const per = (k: keyof NodeJS.MemoryUsage) => Math.round(((m1[k] - m0[k]) / N / 1024) * 10) / 10;
  process.stdout.write(JSON.stringify({ connections: N, perConnectionKB: { rss: per('rss'), heapUsed: per('heapUsed'), external: per('external') } }, null, 2) + '\n');
  if (process.argv[3]) v8.writeHeapSnapshot(process.argv[3]);
} finally {
  for (const s of sockets) s.destroy();
  await mesh.close();
}
process.exit(0);
