// Runs inside a lab pod for test/netns/proxy-lab.test.ts and prints one JSON line.
//   bulk <host> <port> <bytes>: sends <bytes> to an echo server while reading the echo back,
//     half-closes, reads to EOF; reports SHA-256 of what went out and what came back.
//   concurrent <host> <port> <n>: opens n connections at once, holds them all open until each
//     has echoed its own marker, then closes them; reports how many echoed correctly.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const [mode, host, portText, nText] = process.argv.slice(2);
const port = Number(portText);
const n = Number(nText);

async function bulk(): Promise<unknown> {
  const c = net.connect({ host, port, allowHalfOpen: true });
  await new Promise((r, j) => c.once('connect', r).once('error', j));
  const sent = createHash('sha256');
  const recv = createHash('sha256');
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    c.on('data', (d: Buffer) => {
      received += d.length;
      recv.update(d);
    });
    c.once('end', () => resolve());
    c.once('error', reject);
  });
  const seed = randomBytes(1 << 20);
  const t0 = Date.now();
  for (let off = 0, i = 0; off < n; off += seed.length, i++) {
    const buf = Buffer.from(seed.subarray(0, Math.min(seed.length, n - off)));
    buf.writeUInt32BE(i, 0);
    sent.update(buf);
    if (!c.write(buf)) await new Promise((r) => c.once('drain', r));
  }
  c.end();
  await done;
  c.destroy();
  return { sent: n, received, sentSha: sent.digest('hex'), receivedSha: recv.digest('hex'), seconds: (Date.now() - t0) / 1000 };
}

async function concurrent(): Promise<unknown> {
  const sockets: net.Socket[] = [];
  const errors: Record<string, number> = {};
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<boolean>((resolve) => {
        const c = net.connect({ host, port });
        sockets.push(c);
        const marker = `m-${i}-${randomBytes(4).toString('hex')};`;
        let got = '';
        c.setTimeout(60_000, () => c.destroy(new Error('ETIMEDOUT')));
        c.once('connect', () => c.write(marker));
        c.on('data', (d) => {
          got += d;
          if (got.length >= marker.length) resolve(got === marker);
        });
        c.once('error', (e: NodeJS.ErrnoException) => {
          errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1;
          resolve(false);
        });
      }),
    ),
  );
  const open = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  return { ok: results.filter(Boolean).length, openAtOnce: open, errors };
}

const run = mode === 'bulk' ? bulk : concurrent;
run().then(
  (r) => process.stdout.write(JSON.stringify(r) + '\n'),
  (e: Error) => {
    process.stdout.write(JSON.stringify({ error: e.message }) + '\n');
    process.exitCode = 1;
  },
);
