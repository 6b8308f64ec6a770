// Bad input on :15008: each is refused with the right status or TLS alert, counted, logged,
// and traffic from well-behaved clients carries on.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { Mesh, nextIp, waitFor, type TestNode, type TestPod } from '../helpers/proxy-harness.js';
import { createTestCa, type TestCert } from '../helpers/certs.js';

interface RawSession {
  session: http2.ClientHttp2Session;
  connect(headers: http2.OutgoingHttpHeaders): Promise<number>;
}

/** A raw HTTP/2-over-mTLS client of our own, to send what the proxy's client never would. */
async function rawSession(pod: TestPod, cert: TestCert, roots: string): Promise<RawSession> {
  const session = http2.connect(`https://${pod.ip}:${pod.hbonePort}`, {
    createConnection: () =>
      tls.connect({ host: pod.ip, port: pod.hbonePort, key: cert.keyPem, cert: cert.certChainPem, ca: roots, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }),
  });
  session.on('error', () => {});
  await once(session, 'connect');
  return {
    session,
    connect: (headers) =>
      new Promise((resolve, reject) => {
        const s = session.request(headers, { endStream: false });
        s.on('response', (h) => {
          resolve(Number(h[':status']));
          s.close();
        });
        s.on('error', reject);
        s.on('close', () => reject(Object.assign(new Error(`stream closed, code ${s.rstCode}`), { rstCode: s.rstCode })));
      }),
  };
}

/** Resolves with the TLS error (alert) the handshake fails with, or undefined if it succeeded and the server then closed. */
function handshake(pod: TestPod, cert: TestCert | undefined, roots: string): Promise<{ error?: NodeJS.ErrnoException; closedAfter?: boolean }> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: pod.ip,
      port: pod.hbonePort,
      ...(cert ? { key: cert.keyPem, cert: cert.certChainPem } : {}),
      ca: roots,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    s.once('error', (error) => resolve({ error }));
    s.once('secureConnect', () => {
      // TLS 1.3: the server verifies the client certificate after the client's Finished, so a
      // rejection arrives as an alert on the first read.
      s.once('close', () => resolve({ closedAfter: true }));
      s.once('data', () => {});
    });
  });
}

describe('HBONE server refuses bad input', () => {
  let mesh: Mesh;
  let node: TestNode;
  let server: TestPod;
  let good: TestCert;

  before(async () => {
    mesh = await Mesh.create();
    node = mesh.node('node-b', { handshakeTimeoutMs: 300 });
    mesh.node('node-a');
    server = await mesh.pod(node, { namespace: 'shop', serviceAccount: 'cart' });
    good = await mesh.ca.issue('spiffe://cluster.local/ns/shop/sa/frontend');
  });
  after(() => mesh.close());

  const rejections = (reason: string) => node.telemetry.rejections.get({ reason });

  it('answers 200 to a well-formed CONNECT (baseline for the cases below)', async () => {
    const raw = await rawSession(server, good, mesh.ca.rootPem);
    assert.equal(await raw.connect({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}` }), 200);
    raw.session.close();
  });

  it('answers 400 to a method other than CONNECT', async () => {
    const raw = await rawSession(server, good, mesh.ca.rootPem);
    assert.equal(await raw.connect({ ':method': 'GET', ':path': '/', ':authority': `${server.ip}:80` }), 400);
    assert.equal(await raw.connect({ ':method': 'POST', ':path': '/x', ':authority': `${server.ip}:80` }), 400);
    assert.equal(rejections('bad_method'), 2);
    // The same session still proxies.
    assert.equal(await raw.connect({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}` }), 200);
    raw.session.close();
  });

  it('answers 400 to a malformed :authority and to one naming another IP', async () => {
    const raw = await rawSession(server, good, mesh.ca.rootPem);
    for (const authority of ['not-an-address', `${server.ip}:99999`, `${server.ip}`, 'example.com:80']) {
      assert.equal(await raw.connect({ ':method': 'CONNECT', ':authority': authority }), 400, authority);
    }
    assert.equal(rejections('bad_authority'), 4);
    assert.equal(await raw.connect({ ':method': 'CONNECT', ':authority': `127.0.0.1:${server.app!.port}` }), 400);
    assert.equal(rejections('wrong_destination'), 1);
    raw.session.close();
  });

  it('refuses a client identity in a foreign trust domain (same root) with a handshake_failure alert', async () => {
    const foreign = await mesh.ca.issue('spiffe://evil.example/ns/shop/sa/frontend');
    const r = await handshake(server, foreign, mesh.ca.rootPem);
    assert.equal(r.error?.code, 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    await waitFor(() => rejections('peer_identity') === 1, 2000, 'identity rejection counted');
    assert.match(server.proxy.hbone.lastRejection!.error, /spiffe:\/\/evil\.example\/ns\/shop\/sa\/frontend is in trust domain 'evil\.example', not ours \('cluster\.local'\)$/);
    assert.match(node.telemetry.metricsText(), /istio_tcp_connections_failed_total\{reporter="destination",[^}]*response_flags="IDENTITY_ERROR"\} 1/);
  });

  // The chain is verified inside the handshake (native addon), so the client gets the alert
  // that names the problem, on its first read after its Finished (TLS 1.3).
  it('refuses a client certificate from a foreign root with an unknown_ca alert', async () => {
    assert.equal(server.proxy.hbone.alertsOnBadChain, true, 'in-handshake verification is installed');
    const otherCa = await createTestCa('Foreign root');
    const foreign = await otherCa.issue('spiffe://cluster.local/ns/shop/sa/frontend');
    const r = await handshake(server, foreign, mesh.ca.rootPem);
    assert.equal(r.error?.code, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
    await waitFor(() => rejections('peer_certificate') === 1, 2000);
    assert.match(server.proxy.hbone.lastRejection!.error, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER|VERIFY)/);
  });

  it('refuses an expired client certificate with a certificate_expired alert', async () => {
    const expired = await mesh.ca.issue('spiffe://cluster.local/ns/shop/sa/frontend', {
      notBefore: new Date(Date.now() - 7200_000),
      notAfter: new Date(Date.now() - 3600_000),
    });
    const r = await handshake(server, expired, mesh.ca.rootPem);
    assert.equal(r.error?.code, 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED');
    await waitFor(() => rejections('peer_certificate') === 2, 2000);
    assert.match(server.proxy.hbone.lastRejection!.error, /CERT_HAS_EXPIRED/);
    assert.match(node.telemetry.metricsText(), /istio_tcp_connections_failed_total\{[^}]*response_flags="TLS_FAILURE"\} [2-9]/);
  });

  it('refuses a client without a certificate with a certificate_required alert', async () => {
    const before = rejections('tls_handshake');
    const r = await handshake(server, undefined, mesh.ca.rootPem);
    assert.equal(r.error?.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    await waitFor(() => rejections('tls_handshake') === before + 1, 2000);
    assert.match(server.proxy.hbone.lastRejection!.error, /peer did not return a certificate/);
  });

  it('offers no session resumption: every connection is a full handshake with its certificate checked', async () => {
    // A resumed session would skip the chain, expiry and trust-domain checks of the handshake.
    const tickets: Buffer[] = [];
    const connectOnce = (session?: Buffer) => new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
      const s = tls.connect({
        host: server.ip, port: server.hbonePort, key: good.keyPem, cert: good.certChainPem, ca: mesh.ca.rootPem,
        ALPNProtocols: ['h2'], checkServerIdentity: () => undefined, ...(session ? { session } : {}),
      });
      s.on('session', (t: Buffer) => tickets.push(t));
      s.once('error', reject);
      s.once('secureConnect', () => {
        // TLS 1.3 tickets come after the handshake: give them time to arrive (and the server
        // time to finish its side of the handshake before we go).
        setTimeout(() => {
          const r = { reused: s.isSessionReused(), session: s.getSession() };
          s.destroy();
          resolve(r);
        }, 200);
      });
    });
    const first = await connectOnce();
    assert.equal(first.reused, false);
    assert.equal(tickets.length, 0, 'the server sent no session ticket');
    // Even a client that offers the session it has gets a full handshake.
    if (first.session) assert.equal((await connectOnce(first.session)).reused, false);
  });

  it('drops a TLS handshake that never finishes after the handshake timeout', async () => {
    const s = net.connect({ host: server.ip, port: server.hbonePort });
    await once(s, 'connect');
    const t0 = Date.now();
    s.on('error', () => {});
    await once(s, 'close');
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`);
    await waitFor(() => rejections('handshake_timeout') === 1, 2000);
  });

  it('refuses oversized request headers and keeps serving', async () => {
    const raw = await rawSession(server, good, mesh.ca.rootPem);
    const err = await raw.connect({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}`, 'x-big': 'a'.repeat(70 * 1024) }).then(
      (status) => ({ status }),
      (e: { rstCode?: number }) => ({ rstCode: e.rstCode }),
    );
    assert.ok(!('status' in err) || err.status !== 200, `oversized headers were accepted: ${JSON.stringify(err)}`);
    const again = await rawSession(server, good, mesh.ca.rootPem);
    assert.equal(await again.connect({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}` }), 200);
    again.session.close();
    raw.session.destroy();
  });

  it('absorbs a burst of streams reset right after opening, without leaking app connections', async () => {
    const raw = await rawSession(server, good, mesh.ca.rootPem);
    const appBefore = server.app!.sources.length;
    for (let i = 0; i < 5000 && !raw.session.destroyed && !raw.session.closed; i++) {
      try {
        const s = raw.session.request({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}` }, { endStream: false });
        s.on('error', () => {});
        s.close(http2.constants.NGHTTP2_CANCEL);
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    await waitFor(() => node.proxy.connections().length === 0, 5000, 'reset streams to be gone');
    assert.ok(server.app!.sources.length - appBefore < 5000, 'most reset streams never reached the app');
    assert.ok(rejections('stream_flood') <= 1);
    raw.session.destroy();
    const again = await rawSession(server, good, mesh.ca.rootPem);
    assert.equal(await again.connect({ ':method': 'CONNECT', ':authority': `${server.ip}:${server.app!.port}` }), 200);
    again.session.close();
  });

  it('cuts off a session that keeps resetting streams it opened before they are answered (rapid reset)', async () => {
    // A pod whose app answers slowly, so every stream is still pending when the client resets it.
    const slowIp = nextIp();
    const w = mesh.workload(slowIp, 'node-b', { namespace: 'shop', serviceAccount: 'cart', name: 'slow' });
    mesh.view.putWorkload(w);
    const slow = node.proxy.addPod({
      uid: w.uid,
      ips: [slowIp],
      identity: server.identity,
      hooks: { dialApp: (dst, src) => new Promise((r) => setTimeout(() => r(mesh.dialApp(dst, src)), 200)) },
    });
    const { hbone } = await slow.listen({ hbone: { host: slowIp, port: 0 } });
    const before = rejections('stream_flood');
    const session = http2.connect(`https://${slowIp}:${hbone!.port}`, {
      createConnection: () => tls.connect({ host: slowIp, port: hbone!.port, key: good.keyPem, cert: good.certChainPem, ca: mesh.ca.rootPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }),
    });
    session.on('error', () => {});
    let goaway: number | undefined;
    session.on('goaway', (code) => (goaway = code));
    await once(session, 'connect');
    for (let i = 0; i < 200 && !session.destroyed && !session.closed && goaway === undefined; i++) {
      const s = session.request({ ':method': 'CONNECT', ':authority': `${slowIp}:${server.app!.port}` }, { endStream: false });
      s.on('error', () => {});
      await new Promise((r) => setTimeout(r, 5));
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await waitFor(() => rejections('stream_flood') === before + 1, 5000, 'the flood to be counted once');
    await waitFor(() => session.destroyed || goaway !== undefined, 5000, 'the session to be cut off');
    assert.match(node.telemetry.metricsText(), /istio_tcp_connections_failed_total\{[^}]*response_flags="H2_HANDSHAKE_FAILURE"\} 1/);
    session.destroy();
    await waitFor(() => node.proxy.connections().length === 0, 5000, 'pending dials to finish');
    await node.proxy.removePod(w.uid);
  });
});
