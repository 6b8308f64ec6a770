// The node proxy in process over loopback, side by side with the direct path in the same run:
// single-stream throughput (client → app, MB/s) and 1 KiB echo latency (p50/p99) on one
// connection, direct vs through the mesh (outbound relay → HBONE mTLS/h2 → inbound relay).
// Results are ratios, never thresholds (DESIGN.md). Usage:
//   node dist/bench/proxy-loopback.js [--bytes 536870912] [--rtts 5000]
import net from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Mesh } from '../test/helpers/proxy-harness.js';

const { values } = parseArgs({ options: { bytes: { type: 'string', default: String(512 * 1024 * 1024) }, rtts: { type: 'string', default: '5000' } } });
const BYTES = Number(values.bytes);
const RTTS = Number(values.rtts);

async function sink(ip: string): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('data', () => {});
    s.on('end', () => s.end());
  });
  srv.listen(0, ip);
  await once(srv, 'listening');
  return (srv.address() as net.AddressInfo).port;
}

/** Throughput (MB/s) and CPU of this whole process per MB moved (µs/MB): every hop of the path
 * runs here, so the CPU figure holds even when other work on the machine slows the wall clock. */
async function throughput(port: number, host = '127.0.0.1'): Promise<{ mbps: number; cpuUsPerMB: number }> {
  const c = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
  await once(c, 'connect');
  const chunk = Buffer.alloc(256 * 1024, 1);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let sent = 0; sent < BYTES; sent += chunk.length) if (!c.write(chunk)) await once(c, 'drain');
  c.end();
  c.resume();
  await once(c, 'end');
  c.destroy();
  const cpu = process.cpuUsage(cpu0);
  return { mbps: BYTES / ((performance.now() - t0) / 1000) / 1e6, cpuUsPerMB: (cpu.user + cpu.system) / (BYTES / 1e6) };
}

async function latency(port: number, host = '127.0.0.1'): Promise<{ p50: number; p99: number }> {
  const c = net.connect({ host, port, noDelay: true });
  await once(c, 'connect');
  const msg = Buffer.alloc(1024, 2);
  const us: number[] = [];
  for (let i = 0; i < RTTS; i++) {
    const t0 = performance.now();
    c.write(msg);
    let got = 0;
    while (got < msg.length) got += ((await once(c, 'data')) as [Buffer])[0].length;
    us.push((performance.now() - t0) * 1000);
  }
  c.destroy();
  us.sort((a, b) => a - b);
  return { p50: us[Math.floor(us.length * 0.5)]!, p99: us[Math.floor(us.length * 0.99)]! };
}

const mesh = await Mesh.create();
try {
  const client = await mesh.pod(mesh.node('node-a'), { namespace: 'bench', serviceAccount: 'client' });
  const server = await mesh.pod(mesh.node('node-b'), { namespace: 'bench', serviceAccount: 'server' });
  const sinkPort = await sink(server.ip);
  const viaMeshSink = await mesh.outboundListener(client, { ip: server.ip, port: sinkPort });
  const viaMeshEcho = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
  const direct = { ...(await throughput(sinkPort, server.ip)), ...(await latency(server.app!.port, server.ip)) };
  const meshed = { ...(await throughput(viaMeshSink)), ...(await latency(viaMeshEcho)) };
  const r = (x: number) => Math.round(x * 100) / 100;
  process.stdout.write(
    JSON.stringify({
      bytes: BYTES,
      roundTrips: RTTS,
      direct: { throughputMBps: r(direct.mbps), cpuUsPerMB: r(direct.cpuUsPerMB), p50us: r(direct.p50), p99us: r(direct.p99) },
      mesh: { throughputMBps: r(meshed.mbps), cpuUsPerMB: r(meshed.cpuUsPerMB), p50us: r(meshed.p50), p99us: r(meshed.p99) },
      ratios: { throughput: r(meshed.mbps / direct.mbps), cpuPerMB: r(meshed.cpuUsPerMB / direct.cpuUsPerMB), p50: r(meshed.p50 / direct.p50), p99: r(meshed.p99 / direct.p99) },
      note: 'one process, loopback, both proxies and both ends on the same event loop; see bench/ README for the lab version',
    }, null, 2) + '\n',
  );
} finally {
  await mesh.close();
}
process.exit(0);
