// 1 GiB each way at the same time through the whole path (outbound relay → mTLS HTTP/2 CONNECT
// → inbound relay → app), with SHA-256 of what each side sent and received compared, and the
// half-close honoured: the app keeps sending after the client's FIN and only then ends.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { Mesh, type TestPod } from '../helpers/proxy-harness.js';

const TOTAL = Number(process.env.WEFT_BULK_BYTES ?? 1024 * 1024 * 1024);
const CHUNK = 1024 * 1024;

/** Writes TOTAL bytes of distinct chunks (a counter in each) and resolves with their SHA-256. */
async function sendAll(s: net.Socket, seed: Buffer): Promise<string> {
  const h = createHash('sha256');
  for (let off = 0, i = 0; off < TOTAL; off += CHUNK, i++) {
    const n = Math.min(CHUNK, TOTAL - off);
    const buf = Buffer.from(seed.subarray(0, n));
    buf.writeUInt32BE(i, 0);
    h.update(buf);
    if (!s.write(buf)) await once(s, 'drain');
  }
  return h.digest('hex');
}

function receiveAll(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  s.on('data', (d: Buffer) => {
    bytes += d.length;
    h.update(d);
  });
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve({ sha: h.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

describe('HBONE bulk transfer', () => {
  let mesh: Mesh;
  let client: TestPod;
  let server: TestPod;
  let app: net.Server;
  let appResult: Promise<{ received: { sha: string; bytes: number }; sent: string; sawFinBeforeEnd: boolean }>;

  before(async () => {
    mesh = await Mesh.create();
    client = await mesh.pod(mesh.node('node-a'), { namespace: 'bulk', serviceAccount: 'up' });
    server = await mesh.pod(mesh.node('node-b'), { namespace: 'bulk', serviceAccount: 'down', app: false });
    appResult = new Promise((resolve, reject) => {
      app = net.createServer({ allowHalfOpen: true }, (s) => {
        const seed = randomBytes(CHUNK);
        const received = receiveAll(s);
        const sent = sendAll(s, seed);
        Promise.all([received, sent]).then(([r, sha]) => {
          // The client's FIN has arrived (received resolved on 'end') while our side is still
          // open: only now do we end it, so the half-close must have been carried through.
          const sawFinBeforeEnd = !s.writableEnded;
          s.end();
          resolve({ received: r, sent: sha, sawFinBeforeEnd });
        }, reject);
      });
    });
    app.listen(0, server.ip);
    await once(app, 'listening');
  });
  after(async () => {
    app?.close();
    await mesh?.close();
  });

  it(`moves ${TOTAL} bytes each way with equal SHA-256 and honours half-close`, { timeout: 600_000 }, async () => {
    const port = await mesh.outboundListener(client, { ip: server.ip, port: (app.address() as net.AddressInfo).port });
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await once(c, 'connect');
    const t0 = performance.now();
    const received = receiveAll(c);
    const sent = await sendAll(c, randomBytes(CHUNK));
    c.end();
    const got = await received;
    const seconds = (performance.now() - t0) / 1000;
    const fromApp = await appResult;
    assert.equal(fromApp.received.bytes, TOTAL);
    assert.equal(fromApp.received.sha, sent, 'client → app bytes arrive intact');
    assert.equal(got.bytes, TOTAL);
    assert.equal(got.sha, fromApp.sent, 'app → client bytes arrive intact');
    assert.ok(fromApp.sawFinBeforeEnd, "the app saw the client's FIN while its own side was still open");
    process.stderr.write(`bulk: ${((2 * TOTAL) / seconds / 1e6).toFixed(0)} MB/s both ways combined (${seconds.toFixed(1)} s)\n`);
    c.destroy();
  });
});
