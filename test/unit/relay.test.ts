import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { once } from 'node:events';
import { relay, type RelayResult } from '../../agent/src/proxy/relay.js';

async function listen(onConn: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return srv;
}
const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

/** A relay in front of `upstream`; resolves each finished relay's result in order. */
async function relayTo(upstream: net.Server) {
  const results: RelayResult[] = [];
  const waiters: ((r: RelayResult) => void)[] = [];
  const srv = await listen((client) => {
    const up = net.connect({ host: '127.0.0.1', port: portOf(upstream), allowHalfOpen: true });
    relay(client, up, (r) => {
      const w = waiters.shift();
      if (w) w(r);
      else results.push(r);
    });
  });
  const next = () => new Promise<RelayResult>((res) => (results.length ? res(results.shift()!) : waiters.push(res)));
  return { srv, next };
}

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((res, rej) => {
    s.once('end', () => res(Buffer.concat(chunks)));
    s.once('error', rej);
  });
}

describe('relay', () => {
  it('forwards a FIN per direction: the upstream answers after the client half-closes', async () => {
    // The upstream replies only once it has seen the client's FIN, which only works when the
    // relay forwards the half-close and keeps the other direction open.
    const upstream = await listen(async (s) => {
      const got = await readAll(s);
      s.end(Buffer.concat([Buffer.from('got:'), got]));
    });
    const { srv, next } = await relayTo(upstream);
    const c = net.connect({ host: '127.0.0.1', port: portOf(srv), allowHalfOpen: true });
    await once(c, 'connect');
    c.end('hello');
    const reply = await readAll(c);
    assert.equal(reply.toString(), 'got:hello');
    const r = await next();
    assert.equal(r.aToB, 5);
    assert.equal(r.bToA, 9);
    assert.equal(r.error, undefined);
    assert.ok(r.durationMs >= 0);
    srv.close();
    upstream.close();
  });

  it('propagates a reset from the upstream to the client as an error', async () => {
    const upstream = await listen((s) => s.once('data', () => s.resetAndDestroy()));
    const { srv, next } = await relayTo(upstream);
    const c = net.connect({ host: '127.0.0.1', port: portOf(srv), allowHalfOpen: true });
    await once(c, 'connect');
    c.write('x');
    const [err] = (await once(c, 'error').catch((e) => [e])) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
    const r = await next();
    assert.ok(r.error, 'the relay reports the reset');
    srv.close();
    upstream.close();
  });

  it('applies back-pressure: a stalled upstream stops the relay reading from the client', async () => {
    let gotUpSock!: (s: net.Socket) => void;
    const upSockP = new Promise<net.Socket>((res) => (gotUpSock = res));
    const upstream = await listen((s) => {
      s.pause();
      gotUpSock(s);
    });
    let handle!: ReturnType<typeof relay>;
    const srv = await listen((client) => {
      const up = net.connect({ host: '127.0.0.1', port: portOf(upstream), allowHalfOpen: true });
      handle = relay(client, up, () => {});
    });
    const c = net.connect({ host: '127.0.0.1', port: portOf(srv), allowHalfOpen: true });
    await once(c, 'connect');
    const upSock = await upSockP;
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let written = 0;
    const writer = (async () => {
      while (written < total && !c.destroyed) {
        written += chunk.length;
        if (!c.write(chunk)) await once(c, 'drain');
      }
    })();
    await new Promise((r) => setTimeout(r, 600));
    // Kernel buffers on three sockets hold some MiB; without back-pressure the relay would
    // have buffered everything the client could write in that time.
    assert.ok(handle.aToB < 64 * 1024 * 1024, `relay read ${handle.aToB} bytes while the upstream was stalled`);
    const before = handle.aToB;
    // Resuming the reader lets the whole transfer through.
    let received = 0;
    upSock.on('data', (d: Buffer) => (received += d.length));
    upSock.resume();
    await writer;
    c.end();
    await once(upSock, 'end');
    assert.equal(received, total);
    assert.ok(before < total);
    upSock.destroy();
    c.destroy();
    srv.close();
    upstream.close();
  });

  // A writer that records how its writes arrive: one entry per _write, or per _writev batch.
  function recorder(): { side: Duplex; batches: number[][]; push(b: Buffer): void } {
    const batches: number[][] = [];
    const side = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        batches.push([chunk.length]);
        cb();
      },
      writev(chunks, cb) {
        batches.push(chunks.map((c) => (c.chunk as Buffer).length));
        cb();
      },
    });
    return { side, batches, push: (b) => side.push(b) };
  }

  it('in bulk, writes the chunks of one event-loop iteration as one batch; small chunks go at once', async () => {
    const src = recorder();
    const dst = recorder();
    relay(src.side, dst.side, () => {});
    await new Promise((r) => setImmediate(r)); // the source starts flowing
    // An interactive exchange: each small chunk is written when it arrives, not deferred.
    src.push(Buffer.alloc(100));
    assert.deepEqual(dst.batches, [[100]], 'a small chunk is written synchronously');
    await new Promise((r) => setImmediate(r));
    // Bulk: a 16 KB frame, then the 9-byte tail of a frame split across TLS records, then more.
    src.push(Buffer.alloc(16375));
    src.push(Buffer.alloc(9));
    src.push(Buffer.alloc(16366));
    assert.equal(dst.batches.length, 1, 'nothing written yet: corked until the check phase');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(dst.batches.slice(1), [[16375, 9, 16366]], 'one writev for the iteration');
    // Once in bulk, even a small first chunk starts a batch.
    src.push(Buffer.alloc(9));
    src.push(Buffer.alloc(16375));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(dst.batches.slice(2), [[9, 16375]]);
    src.side.destroy();
    dst.side.destroy();
  });

  it('bounds what a stalled writer holds: 256 KiB towards a socket, the stream\'s own mark towards HTTP/2', async () => {
    const stalled = (h2: boolean) => {
      const d = new Duplex({ read() {}, write(_c, _e, _cb) { /* never completes: a shut window */ }, highWaterMark: 16 * 1024 });
      if (h2) Object.assign(d, { rstCode: undefined, session: {}, close() {} });
      return d;
    };
    for (const h2 of [false, true]) {
      const src = recorder();
      const dst = stalled(h2);
      relay(src.side, dst, () => {});
      await new Promise((r) => setImmediate(r));
      for (let i = 0; i < 64 && !src.side.isPaused(); i++) {
        src.push(Buffer.alloc(16 * 1024));
        await new Promise((r) => setImmediate(r));
      }
      assert.ok(src.side.isPaused(), 'the reader is paused');
      const held = dst.writableLength;
      if (h2) assert.ok(held <= 32 * 1024, `towards HTTP/2 it holds ${held} bytes`);
      else assert.ok(held >= 256 * 1024 && held <= 256 * 1024 + 16 * 1024, `towards a socket it holds ${held} bytes`);
      src.side.destroy();
      dst.destroy();
    }
  });
});
