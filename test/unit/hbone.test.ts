// HBONE end to end in process: two "nodes", pods on loopback addresses, real TLS 1.3 + HTTP/2.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Mesh, policy, roundTrip, waitFor, type TestNode, type TestPod } from '../helpers/proxy-harness.js';

describe('HBONE between nodes', () => {
  let mesh: Mesh;
  let nodeA: TestNode;
  let nodeB: TestNode;
  let client: TestPod;
  let server: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    nodeA = mesh.node('node-a');
    nodeB = mesh.node('node-b');
    client = await mesh.pod(nodeA, { namespace: 'shop', serviceAccount: 'frontend', name: 'frontend' });
    server = await mesh.pod(nodeB, { namespace: 'shop', serviceAccount: 'cart', name: 'cart' });
  });
  after(() => mesh.close());

  it('carries bytes both ways over mTLS between two identities, keeping the client pod IP', async () => {
    const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
    const { reply, error } = await roundTrip(port, 'marker-123');
    assert.equal(error, undefined);
    assert.equal(reply.toString(), 'marker-123');
    assert.equal(server.app!.sources.at(-1), client.ip, 'the app sees the client pod IP as the source');
    // The destination side authenticated the client's certificate identity.
    await waitFor(() => nodeB.telemetry.tcp.closed.get({}) >= 0 && /reporter="destination"/.test(nodeB.telemetry.metricsText()));
    const text = nodeB.telemetry.metricsText();
    const line = text.split('\n').find((l) => l.startsWith('istio_tcp_connections_closed_total{reporter="destination"'));
    assert.ok(line, text);
    assert.match(line, /source_principal="spiffe:\/\/cluster.local\/ns\/shop\/sa\/frontend"/);
    assert.match(line, /destination_principal="spiffe:\/\/cluster.local\/ns\/shop\/sa\/cart"/);
    assert.match(line, /source_workload="frontend"/);
    assert.match(line, /destination_workload="cart"/);
    assert.match(line, /connection_security_policy="mutual_tls"/);
    assert.match(line, /response_flags="-"/);
    const src = nodeA.telemetry.metricsText();
    assert.match(src, /istio_tcp_connections_opened_total\{reporter="source",source_workload="frontend"/);
    assert.match(src, /istio_tcp_received_bytes_total\{reporter="source".*\} 10\n/);
  });

  it('answers 401 when policy denies the peer principal; the client sees a reset', async () => {
    mesh.view.putPolicy(policy('deny-frontend', 'shop', 'DENY', ['cluster.local/ns/shop/sa/frontend']));
    try {
      const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
      const before = server.app!.sources.length;
      const { reply, error } = await roundTrip(port, 'nope');
      assert.equal(reply.length, 0);
      assert.ok(error, 'the client connection fails');
      assert.equal(server.app!.sources.length, before, 'the app never saw the connection');
      await waitFor(() => /response_flags="DENY"/.test(nodeB.telemetry.metricsText()));
      assert.match(nodeA.telemetry.metricsText(), /istio_tcp_connections_closed_total\{reporter="source"[^}]*response_flags="DENY"/);
    } finally {
      mesh.view.removePolicy('shop/deny-frontend');
    }
  });

  it('answers 503 when nothing listens on the app port', async () => {
    const closed = net.createServer();
    closed.listen(0, server.ip);
    await once(closed, 'listening');
    const deadPort = (closed.address() as net.AddressInfo).port;
    closed.close();
    const port = await mesh.outboundListener(client, { ip: server.ip, port: deadPort });
    const { error } = await roundTrip(port, 'x');
    assert.ok(error);
    await waitFor(() => /istio_tcp_connections_closed_total\{reporter="destination"[^}]*response_flags="CONNECT"/.test(nodeB.telemetry.metricsText()));
  });

  it('lists live connections with both identities while they are open', async () => {
    const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
    const c = net.connect({ port, host: '127.0.0.1' });
    c.write('hold');
    await once(c, 'data');
    const inbound = nodeB.proxy.connections().find((x) => x.direction === 'inbound' && x.src.identity === client.identity);
    assert.ok(inbound, JSON.stringify(nodeB.proxy.connections()));
    assert.equal(inbound.dst.identity, server.identity);
    assert.equal(inbound.state, 'established');
    assert.equal(inbound.hboneAddr, `${server.ip}:${server.app!.port}`);
    const outbound = nodeA.proxy.connections().find((x) => x.direction === 'outbound');
    assert.ok(outbound);
    assert.equal(outbound.dstAddr, `${server.ip}:15008`);
    c.destroy();
    await waitFor(() => nodeB.proxy.connections().length === 0 && nodeA.proxy.connections().length === 0);
  });
});
