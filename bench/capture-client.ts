// Runs INSIDE a lab pod for bench/capture.ts. argv[2]: JSON {host, port, connections,
// roundTrips, payload}. Measures, against an echo server:
//   setup: connect + one 1-byte echo, on `connections` fresh connections one after another
//          (through the capture path this includes the relay's own upstream connect);
//   rtt:   `roundTrips` sequential echoes of `payload` bytes on one connection.
// Prints JSON {setupUs: number[], rttUs: number[]}.
import { connect, type Socket } from 'node:net';

const o = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number; connections: number; roundTrips: number; payload: number };
const now = () => Number(process.hrtime.bigint()) / 1000;

function echo(s: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (d: Buffer) => {
      got += d.length;
      if (got >= data.length) { s.off('data', onData); s.off('error', reject); resolve(); }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(data);
  });
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: o.host, port: o.port, noDelay: true });
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

const setupUs: number[] = [];
for (let i = 0; i < o.connections; i++) {
  const t0 = now();
  const s = await open();
  await echo(s, Buffer.from('x'));
  setupUs.push(now() - t0);
  s.destroy();
}
const rttUs: number[] = [];
const s = await open();
const payload = Buffer.alloc(o.payload, 'p');
for (let i = 0; i < o.roundTrips; i++) {
  const t0 = now();
  await echo(s, payload);
  rttUs.push(now() - t0);
}
s.destroy();
process.stdout.write(JSON.stringify({ setupUs, rttUs }));
