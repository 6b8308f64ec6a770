// Lifecycle of the node proxy: drain for a restart, certificate rotation without dropping
// connections, and HTTP/2 PING finding a peer that went silent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { Mesh, roundTrip, waitFor } from '../helpers/proxy-harness.js';

async function holdOpen(port: number): Promise<{ c: net.Socket; echo(s: string): Promise<string> }> {
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  c.on('error', () => {});
  await once(c, 'connect');
  return {
    c,
    echo: async (s) => {
      c.write(s);
      const [d] = (await once(c, 'data')) as [Buffer];
      return d.toString();
    },
  };
}

describe('proxy lifecycle', () => {
  it('drain: stops accepting, lets established connections finish, then resolves', async () => {
    const mesh = await Mesh.create();
    try {
      const client = await mesh.pod(mesh.node('node-a'), { namespace: 'a', serviceAccount: 'c' });
      const server = await mesh.pod(mesh.node('node-b'), { namespace: 'b', serviceAccount: 's' });
      const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
      const held = await holdOpen(port);
      assert.equal(await held.echo('before'), 'before');
      const t0 = Date.now();
      const drained = server.proxy.drain(10_000);
      await new Promise((r) => setTimeout(r, 700)); // past the two GOAWAYs
      assert.equal(await held.echo('during'), 'during', 'an established connection carries on while draining');
      const fresh = await roundTrip(port, 'new');
      assert.ok(fresh.error, 'new connections are no longer accepted');
      held.c.end();
      await drained;
      assert.ok(Date.now() - t0 < 9000, 'drain resolved once the connection finished, before its deadline');
    } finally {
      await mesh.close();
    }
  });

  it('rotation: new handshakes get the new certificate, open connections keep going', async () => {
    const mesh = await Mesh.create();
    try {
      const nodeB = mesh.node('node-b');
      const client = await mesh.pod(mesh.node('node-a'), { namespace: 'a', serviceAccount: 'c' });
      const server = await mesh.pod(nodeB, { namespace: 'b', serviceAccount: 's' });
      const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
      const held = await holdOpen(port);
      assert.equal(await held.echo('x'), 'x');
      const serialNow = async () => {
        const me = await mesh.ca.issue('spiffe://cluster.local/ns/a/sa/probe');
        const s = tls.connect({ host: server.ip, port: server.hbonePort, key: me.keyPem, cert: me.certChainPem, ca: mesh.ca.rootPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
        await once(s, 'secureConnect');
        const serial = s.getPeerX509Certificate()!.serialNumber;
        s.destroy();
        return serial;
      };
      const before = await serialNow();
      const next = await mesh.ca.issue(server.identity);
      nodeB.tls.set(server.identity, next);
      const after = await serialNow();
      assert.notEqual(after, before);
      assert.equal(after.toLowerCase(), new (await import('node:crypto')).X509Certificate(next.certChainPem).serialNumber.toLowerCase());
      assert.equal(await held.echo('y'), 'y', 'the connection opened before rotation still works');
      held.c.destroy();
    } finally {
      await mesh.close();
    }
  });

  it('keepalive: a peer that stops answering PING is dropped and its streams reset', async () => {
    const mesh = await Mesh.create();
    try {
      const nodeA = mesh.node('node-a', { pool: { pingIntervalMs: 100, pingTimeoutMs: 300 } });
      const client = await mesh.pod(nodeA, { namespace: 'a', serviceAccount: 'c' });
      const server = await mesh.pod(mesh.node('node-b'), { namespace: 'b', serviceAccount: 's' });
      // A TCP forwarder in front of the server's :15008 that can go silent (a dead peer).
      let frozen = false;
      const pairs: net.Socket[] = [];
      const fwd = net.createServer((a) => {
        const b = net.connect({ host: server.ip, port: server.hbonePort });
        pairs.push(a, b);
        a.on('data', (d) => frozen || b.write(d));
        b.on('data', (d) => frozen || a.write(d));
        a.on('error', () => b.destroy());
        b.on('error', () => a.destroy());
        a.on('close', () => b.destroy());
      });
      fwd.listen(0, server.ip);
      await once(fwd, 'listening');
      mesh.hbonePorts.set(server.ip, (fwd.address() as net.AddressInfo).port);
      const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
      const held = await holdOpen(port);
      assert.equal(await held.echo('alive'), 'alive');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(nodeA.proxy.pool.connectionCount, 1, 'PINGs answered: the connection stays');
      frozen = true;
      await new Promise((r) => held.c.once('close', r)); // reset by the proxy
      await waitFor(() => nodeA.proxy.pool.connectionCount === 0, 3000, 'dead connection removed from the pool');
      for (const s of pairs) s.destroy();
      fwd.close();
    } finally {
      await mesh.close();
    }
  });
});
