// HBONE pooling: ≤100 streams per connection (1,000 concurrent connections → 10 HBONE
// connections), idle connections closed, and a new connection opened after one went away.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Mesh, waitFor, type TestNode, type TestPod } from '../helpers/proxy-harness.js';

describe('HBONE pool', () => {
  let mesh: Mesh;
  let nodeA: TestNode;
  let nodeB: TestNode;
  let client: TestPod;
  let server: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    nodeA = mesh.node('node-a', { pool: { idleTimeoutMs: 300 } });
    nodeB = mesh.node('node-b');
    client = await mesh.pod(nodeA, { namespace: 'load', serviceAccount: 'gen' });
    server = await mesh.pod(nodeB, { namespace: 'load', serviceAccount: 'sink' });
  });
  after(() => mesh.close());

  it('carries 1,000 concurrent connections on 10 HBONE connections of ≤100 streams', async () => {
    const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
    const N = 1000;
    const sockets: net.Socket[] = [];
    await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        sockets.push(c);
        await once(c, 'connect');
        c.write(`conn-${i};`);
        const [d] = (await once(c, 'data')) as [Buffer];
        assert.equal(d.toString(), `conn-${i};`);
      }),
    );
    // All 1,000 are open at once here.
    assert.equal(nodeB.proxy.connections().filter((x) => x.state === 'established').length, N);
    const stats = nodeA.proxy.pool.stats();
    assert.equal(stats.length, 1, 'one pool key: same source identity, destination identity and address');
    const streams = stats[0]!.streams;
    assert.equal(streams.length, 10, `connections: ${JSON.stringify(streams)}`);
    assert.ok(streams.every((n) => n <= 100));
    assert.equal(streams.reduce((a, b) => a + b, 0), N);
    assert.equal(nodeB.proxy.hboneSessions(), 10);
    for (const c of sockets) c.end();
    await waitFor(() => nodeA.proxy.connections().length === 0 && nodeB.proxy.connections().length === 0, 20_000, 'all relays finished');
    // Idle connections are closed after the (shortened) idle timeout.
    await waitFor(() => nodeA.proxy.pool.connectionCount === 0, 5000, 'idle HBONE connections closed');
    await waitFor(() => nodeB.proxy.hboneSessions() === 0, 5000, 'server sessions gone');
  });

  it('opens a fresh connection after the idle one was closed', async () => {
    const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
    const c = net.connect({ host: '127.0.0.1', port });
    await once(c, 'connect');
    c.write('again');
    const [d] = (await once(c, 'data')) as [Buffer];
    assert.equal(d.toString(), 'again');
    assert.equal(nodeA.proxy.pool.connectionCount, 1);
    c.destroy();
  });
});
