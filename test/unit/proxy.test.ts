// Path selection and lifecycle of the node proxy, in process over loopback: services, same-node,
// passthrough, plaintext inbound with STRICT/PERMISSIVE, policy changes, readiness.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Mesh, nextIp, policy, roundTrip, strictPolicy, waitFor, type TestNode, type TestPod } from '../helpers/proxy-harness.js';

async function plaintextListener(mesh: Mesh, pod: TestPod): Promise<number> {
  // Stands in for the :15006 capture: the original destination is the pod's app.
  const srv = net.createServer({ allowHalfOpen: true }, (s) => pod.proxy.handleInboundPlaintext(s, { ip: pod.ip, port: pod.app!.port }));
  srv.listen(0, pod.ip);
  await once(srv, 'listening');
  after(() => srv.close());
  return (srv.address() as net.AddressInfo).port;
}

describe('node proxy paths', () => {
  let mesh: Mesh;
  let nodeA: TestNode;
  let nodeB: TestNode;
  let client: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    nodeA = mesh.node('node-a');
    nodeB = mesh.node('node-b');
    client = await mesh.pod(nodeA, { namespace: 'web', serviceAccount: 'frontend', name: 'frontend' });
  });
  after(() => mesh.close());

  it('spreads connections to a Service VIP over endpoints on both nodes', async () => {
    const a = await mesh.pod(nodeA, { namespace: 'shop', serviceAccount: 'cart', name: 'cart-a' });
    const b = await mesh.pod(nodeB, { namespace: 'shop', serviceAccount: 'cart', name: 'cart-b' });
    const key = 'shop/cart.shop.svc.cluster.local';
    for (const p of [a, b]) {
      p.workload.services = { [key]: { ports: [{ servicePort: 80, targetPort: p.app!.port }] } } as never;
      mesh.view.putWorkload(p.workload);
    }
    const vip = nextIp();
    mesh.service('cart', 'shop', vip, [{ servicePort: 80, targetPort: 0 }]);
    const port = await mesh.outboundListener(client, { ip: vip, port: 80 });
    for (let i = 0; i < 6; i++) {
      const { reply, error } = await roundTrip(port, `req-${i}`);
      assert.equal(error, undefined);
      assert.equal(reply.toString(), `req-${i}`);
    }
    assert.equal(a.app!.sources.length, 3, 'same-node endpoint got its share');
    assert.equal(b.app!.sources.length, 3, 'remote endpoint got its share');
    // The destination side learns the service from forwarded host= (ztunnel's inbound guess).
    assert.match(nodeB.telemetry.metricsText(), /reporter="destination"[^}]*destination_service="cart.shop.svc.cluster.local",destination_service_namespace="shop",destination_service_name="cart"/);
    assert.match(nodeA.telemetry.metricsText(), /reporter="source"[^}]*destination_service="cart.shop.svc.cluster.local"/);
  });

  it('refuses a connection to a Service with no healthy endpoint', async () => {
    const vip = nextIp();
    mesh.service('empty', 'shop', vip, [{ servicePort: 80, targetPort: 8080 }]);
    const port = await mesh.outboundListener(client, { ip: vip, port: 80 });
    const { reply, error } = await roundTrip(port, 'x');
    assert.equal(reply.length, 0);
    assert.ok(error, 'the client sees its connection refused/reset');
  });

  it('passes traffic to a destination outside the mesh through as plain TCP', async () => {
    const out = await mesh.outsider();
    const port = await mesh.outboundListener(client, { ip: out.ip, port: out.app.port });
    const { reply, error } = await roundTrip(port, 'plain');
    assert.equal(error, undefined);
    assert.equal(reply.toString(), 'plain');
    assert.equal(out.app.sources.at(-1), client.ip, 'it leaves from the source pod');
    assert.match(nodeA.telemetry.metricsText(), /reporter="source"[^}]*connection_security_policy="unknown"/);
  });

  it('keeps same-node traffic in process, without TLS, and still enforces the destination policy', async () => {
    const local = await mesh.pod(nodeA, { namespace: 'billing', serviceAccount: 'ledger', name: 'ledger' });
    const poolBefore = nodeA.proxy.pool.connectionCount;
    const port = await mesh.outboundListener(client, { ip: local.ip, port: local.app!.port });
    const ok = await roundTrip(port, 'same-node');
    assert.equal(ok.reply.toString(), 'same-node');
    assert.equal(local.app!.sources.at(-1), client.ip);
    assert.equal(nodeA.proxy.pool.connectionCount, poolBefore, 'no HBONE connection was opened');
    assert.match(nodeA.telemetry.metricsText(), /reporter="destination"[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/web\/sa\/frontend"[^}]*destination_workload="ledger"/);
    mesh.view.putPolicy(policy('only-admin', 'billing', 'ALLOW', ['cluster.local/ns/ops/sa/admin']));
    await new Promise((r) => setImmediate(r));
    const denied = await roundTrip(port, 'x');
    assert.ok(denied.error);
    assert.equal(denied.reply.length, 0);
    mesh.view.removePolicy('billing/only-admin');
  });

  it('lets plaintext in under PERMISSIVE and refuses it under STRICT (:15006)', async () => {
    const pod = await mesh.pod(nodeB, { namespace: 'legacy', serviceAccount: 'api', name: 'api' });
    const port = await plaintextListener(mesh, pod);
    const out = await mesh.outsider();
    const send = () =>
      new Promise<{ reply: string; error?: string }>((resolve) => {
        const c = net.connect({ host: pod.ip, port, localAddress: out.ip, allowHalfOpen: true });
        let reply = '';
        c.on('data', (d) => (reply += d));
        c.on('connect', () => c.end('plain-in'));
        c.on('end', () => resolve({ reply }));
        c.on('error', (e) => resolve({ reply, error: e.message }));
      });
    const permissive = await send();
    assert.equal(permissive.reply, 'plain-in');
    assert.equal(pod.app!.sources.at(-1), out.ip, 'the app sees the outside client IP');
    mesh.view.putPolicy(strictPolicy('legacy'));
    await new Promise((r) => setImmediate(r));
    const strict = await send();
    assert.equal(strict.reply, '');
    assert.ok(strict.error, 'STRICT refuses plaintext');
    // mTLS from an enrolled pod still gets through STRICT.
    const viaMesh = await roundTrip(await mesh.outboundListener(client, { ip: pod.ip, port: pod.app!.port }), 'mtls');
    assert.equal(viaMesh.reply.toString(), 'mtls');
    mesh.view.removePolicy('legacy/converted_peer_authentication_strict');
  });

  it('closes established connections a policy change no longer allows, with the reason', async () => {
    const pod = await mesh.pod(nodeB, { namespace: 'vault', serviceAccount: 'secrets', name: 'secrets' });
    const port = await mesh.outboundListener(client, { ip: pod.ip, port: pod.app!.port });
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('error', () => {});
    c.write('first');
    await once(c, 'data');
    const closed = once(c, 'close');
    mesh.view.putPolicy(policy('deny-frontend', 'vault', 'DENY', ['cluster.local/ns/web/sa/frontend']));
    await closed;
    await waitFor(() => !nodeB.proxy.connections().some((x) => x.dst.workload === 'secrets'));
    assert.match(nodeB.telemetry.metricsText(), /istio_tcp_connections_closed_total\{reporter="destination"[^}]*destination_workload="secrets"[^}]*response_flags="DENY"/);
    // New connections are refused at once.
    const again = await roundTrip(port, 'x');
    assert.ok(again.error);
    mesh.view.removePolicy('vault/deny-frontend');
    const allowed = await roundTrip(port, 'back');
    assert.equal(allowed.reply.toString(), 'back');
  });

  it('finds the original destination through the hook on a real :15001-style listener', async () => {
    const target = await mesh.pod(nodeB, { namespace: 'shop', serviceAccount: 'search', name: 'search' });
    const p = nodeA.proxy.addPod({
      uid: 'hooked',
      ips: [nextIp()],
      identity: client.identity,
      hooks: { dialOut: mesh.dialOutFrom(client.ip), dialApp: mesh.dialApp, originalDst: () => ({ ip: target.ip, port: target.app!.port }) },
    });
    const addrs = await p.listen({ outbound: { host: '127.0.0.1', port: 0 } });
    const { reply } = await roundTrip(addrs.outbound!.port, 'hooked');
    assert.equal(reply.toString(), 'hooked');
    await nodeA.proxy.removePod('hooked');
  });
});

describe('readiness', () => {
  it('holds connections until state and certificate are in, and refuses them after the bound', async () => {
    const mesh = await Mesh.create();
    try {
      const nodeB = mesh.node('node-b', { ready: false, readyWaitMs: 3000 });
      const nodeA = mesh.node('node-a');
      const client = await mesh.pod(nodeA, { namespace: 'a', serviceAccount: 'c' });
      const server = await mesh.pod(nodeB, { namespace: 'b', serviceAccount: 's' });
      const port = await mesh.outboundListener(client, { ip: server.ip, port: server.app!.port });
      const pending = roundTrip(port, 'waited');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(server.app!.sources.length, 0, 'nothing reaches the app before readiness');
      nodeB.proxy.setReady();
      const { reply } = await pending;
      assert.equal(reply.toString(), 'waited');

      const nodeC = mesh.node('node-c', { ready: false, readyWaitMs: 200 });
      const late = await mesh.pod(nodeC, { namespace: 'b', serviceAccount: 't' });
      const port2 = await mesh.outboundListener(client, { ip: late.ip, port: late.app!.port });
      const refused = await roundTrip(port2, 'x');
      assert.ok(refused.error, 'refused once the wait runs out');
      assert.equal(late.app!.sources.length, 0);
    } finally {
      await mesh.close();
    }
  });
});
