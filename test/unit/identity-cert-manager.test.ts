// The agent's certificate manager against the real CA over gRPC/TLS: fetch, rotation at
// half-life with a short TTL, keeping a valid certificate while the CA is down, recovery,
// dropping unused identities, and refusing a chain with the wrong SAN.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority } from '../../agent/src/identity/ca.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { certificateServiceImplementation } from '../../agent/src/identity/ca-service.js';
import { CaClient } from '../../agent/src/identity/ca-client.js';
import { CertificateManager, checkChain, type WorkloadCertificate } from '../../agent/src/identity/cert-manager.js';
import { startGrpcServer, type RunningServer } from '../../agent/src/controller/grpc-server.js';
import { istioCertificateService } from '../../agent/src/xds/grpc-services.js';
import { generateP256, privateKeyToPem } from '../../agent/src/identity/keys.js';
import { createCsr } from '../../agent/src/identity/csr.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';

describe('certificate manager against the CA over gRPC/TLS', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let tokens: HmacNodeTokens;
  let server: RunningServer;
  let port: number;
  let client: CaClient;
  const managers: CertificateManager[] = [];
  const serve = async (listen: string) => {
    server = await startGrpcServer(ca, listen, [{ definition: istioCertificateService, implementation: certificateServiceImplementation(ca, tokens, { hasIdentityOnNode: (n) => n === 'node1' }) }]);
    port = server.port;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-certs-'));
    ca = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    tokens = await HmacNodeTokens.fromStateDir(dir);
    await serve('127.0.0.1:0');
    client = new CaClient({ address: `127.0.0.1:${port}`, rootCertPem: ca.rootsPem, token: () => tokens.issue('node1') });
  });
  after(async () => {
    for (const m of managers) m.stop();
    client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches ahead of need and rotates at half-life (2 s TTL)', async () => {
    const m = new CertificateManager({ signer: client, ttlSeconds: 2, backoff: { initialMs: 50, maxMs: 200 } });
    managers.push(m);
    const issued: WorkloadCertificate[] = [];
    m.on('issued', (c) => issued.push(c));
    m.setWanted([WEB]);
    const [first] = (await once(m, 'issued')) as [WorkloadCertificate];
    assert.equal(new X509Certificate(first.certChainPem).subjectAltName, `URI:${WEB}`);
    assert.equal((first.notAfter.getTime() - first.notBefore.getTime()) / 1000, 2);
    assert.equal(m.list()[0]!.refreshAt, new Date(first.notBefore.getTime() + 1000).toISOString(), 'refresh at half-life');
    const [second] = (await once(m, 'issued')) as [WorkloadCertificate];
    assert.notEqual(second.serial, first.serial, 'a new certificate');
    assert.notEqual(second.keyPem, first.keyPem, 'with a new key');
    assert.ok(second.notAfter > first.notAfter);
    assert.equal((await m.get(WEB)).serial, m.current(WEB)!.serial);
    m.stop();
  });

  it('keeps the valid certificate while the CA is down, retries with backoff, and recovers', async () => {
    const m = new CertificateManager({ signer: client, ttlSeconds: 4, backoff: { initialMs: 50, maxMs: 300 } });
    managers.push(m);
    m.setWanted([WEB]);
    const [cert] = (await once(m, 'issued')) as [WorkloadCertificate];
    await server.close();
    const failures: string[] = [];
    m.on('failed', (f) => failures.push(f.error));
    // refresh is due at 2 s; the CA is gone, so it fails and retries
    while (failures.length < 2) await new Promise((r) => setTimeout(r, 50));
    assert.equal(m.current(WEB)?.serial, cert.serial, 'still serving the valid certificate');
    assert.equal(m.list()[0]!.state, 'valid');
    assert.ok(m.list()[0]!.lastError);
    await serve(`127.0.0.1:${port}`);
    const [renewed] = (await once(m, 'issued')) as [WorkloadCertificate];
    assert.notEqual(renewed.serial, cert.serial);
    assert.equal(m.list()[0]!.lastError, undefined);
    m.stop();
  });

  it('drops certificates no pod needs any more', async () => {
    const m = new CertificateManager({ signer: client });
    managers.push(m);
    m.setWanted([WEB, DB]);
    await Promise.all([m.get(WEB), m.get(DB)]);
    assert.deepEqual(m.list().map((i) => i.identity), [DB, WEB]);
    const dropped = once(m, 'dropped');
    m.setWanted([DB]);
    assert.deepEqual(await dropped, [WEB]);
    assert.equal(m.current(WEB), undefined);
    assert.deepEqual(m.list().map((i) => i.identity), [DB]);
    m.stop();
  });

  it('refuses a chain whose SAN is not the identity asked for', async () => {
    // a signer that answers with a certificate for another identity
    const liar = { createCertificate: async (_csr: string, _id: string, ttl: number) => {
      const keys = await generateP256();
      return ca.sign(await createCsr(keys, DB), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'db' }, ttl);
    } };
    const m = new CertificateManager({ signer: liar, backoff: { initialMs: 10_000, maxMs: 10_000 } });
    managers.push(m);
    m.setWanted([WEB]);
    const [f] = (await once(m, 'failed')) as [{ error: string }];
    assert.match(f.error, /SAN is 'URI:spiffe:\/\/cluster.local\/ns\/shop\/sa\/db', not URI:spiffe:\/\/cluster.local\/ns\/shop\/sa\/web/);
    assert.equal(m.current(WEB), undefined);
    m.stop();
  });

  it('checkChain refuses a leaf that does not hold the CSR key', async () => {
    const keys = await generateP256();
    const other = await generateP256();
    const chain = await ca.sign(await createCsr(keys, WEB), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' }, 60);
    assert.doesNotThrow(() => checkChain(WEB, chain, privateKeyToPem(keys.privateKey), Date.now()));
    assert.throws(() => checkChain(WEB, chain, privateKeyToPem(other.privateKey), Date.now()), /does not carry the key/);
    assert.throws(() => checkChain(WEB, chain.slice(0, 1), privateKeyToPem(keys.privateKey), Date.now()), /chain has 1 element/);
  });

  it('serves a waiting connection (RealTime) before prefetches, with at most maxConcurrent requests in flight', async () => {
    const order: string[] = [];
    const pending: Array<() => void> = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = { createCertificate: async (csr: string, id: string, ttl: number) => {
      order.push(id.split('/').pop()!);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((r) => pending.push(r));
      inFlight--;
      return client.createCertificate(csr, id, ttl);
    } };
    const m = new CertificateManager({ signer: slow, maxConcurrent: 1 });
    managers.push(m);
    const id = (sa: string) => `spiffe://cluster.local/ns/shop/sa/${sa}`;
    m.setWanted([id('a'), id('b'), id('c')]);
    while (order.length < 1) await new Promise((r) => setTimeout(r, 5));
    const urgent = m.get(id('d'));
    const release = async (n: number) => {
      while (order.length < n) {
        pending.shift()?.();
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await release(4);
    pending.shift()?.();
    await urgent;
    assert.deepEqual(order, ['a', 'd', 'b', 'c'], 'the connection-driven request jumps the prefetch queue');
    assert.equal(maxInFlight, 1);
    m.stop();
  });
});
