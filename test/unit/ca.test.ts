// The CA end to end over real gRPC and real TLS on 127.0.0.1: issuing, node authorization and
// CSR checks; plus root persistence and loading an operator's intermediate.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { CertificateAuthority, CaStateError } from '../../agent/src/identity/ca.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { certificateServiceImplementation, type NodeIdentityIndex } from '../../agent/src/identity/ca-service.js';
import { CaClient } from '../../agent/src/identity/ca-client.js';
import { createCsr } from '../../agent/src/identity/csr.js';
import { generateP256, privateKeyToPem, ECDSA_SHA256 } from '../../agent/src/identity/keys.js';
import { x509 } from '../../agent/src/identity/x509.js';
import { startGrpcServer, type RunningServer } from '../../agent/src/controller/grpc-server.js';
import { istioCertificateService } from '../../agent/src/xds/grpc-services.js';
import type { Identity } from '../../agent/src/identity/spiffe.js';

const SHOP_WEB = 'spiffe://cluster.local/ns/shop/sa/web';

/** node1 runs shop/web; node2 runs shop/db. */
const pods: NodeIdentityIndex = {
  hasIdentityOnNode: (node: string, id: Identity) =>
    (node === 'node1' && id.namespace === 'shop' && id.serviceAccount === 'web') ||
    (node === 'node2' && id.namespace === 'shop' && id.serviceAccount === 'db'),
};

describe('CA over gRPC/TLS', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let tokens: HmacNodeTokens;
  let server: RunningServer;
  const clients: CaClient[] = [];
  const client = (token: string) => {
    const c = new CaClient({ address: `127.0.0.1:${server.port}`, rootCertPem: ca.rootsPem, token: () => token });
    clients.push(c);
    return c;
  };
  const csrFor = async (id: string) => createCsr(await generateP256(), id);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-ca-'));
    ca = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    tokens = await HmacNodeTokens.fromStateDir(dir);
    server = await startGrpcServer(ca, '127.0.0.1:0', [{ definition: istioCertificateService, implementation: certificateServiceImplementation(ca, tokens, pods) }]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('issues a P-256 certificate for a pod identity on the caller\'s node, leaf first and root last', async () => {
    const chain = await client(tokens.issue('node1')).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0);
    assert.equal(chain.length, 2);
    const leaf = new X509Certificate(chain[0]!);
    const root = new X509Certificate(chain[1]!);
    assert.equal(leaf.subjectAltName, `URI:${SHOP_WEB}`);
    assert.ok(leaf.verify(root.publicKey), 'leaf is signed by the returned root');
    assert.equal(root.fingerprint256, new X509Certificate(ca.rootsPem).fingerprint256);
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const life = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
    assert.equal(life, 24 * 3600, 'default TTL is 24h');
    assert.equal(leaf.ca, false);
  });

  it('after a deadline, the next request goes out on a new channel (a hung connection attempt is abandoned)', async () => {
    // A TCP front whose first connection is accepted and never answered (like a SYN to a
    // Service IP nothing forwards yet); later connections reach the CA.
    let accepted = 0;
    const held: net.Socket[] = [];
    const front = net.createServer((c) => {
      held.push(c);
      if (accepted++ === 0) return;
      const up = net.connect({ host: '127.0.0.1', port: server.port });
      held.push(up);
      c.pipe(up).pipe(c);
      up.on('error', () => c.destroy());
      c.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    const c = new CaClient({ address: `127.0.0.1:${(front.address() as net.AddressInfo).port}`, rootCertPem: ca.rootsPem, token: () => tokens.issue('node1') });
    clients.push(c);
    try {
      await assert.rejects(c.createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0, 400), (e: { code?: number }) => e.code === status.DEADLINE_EXCEEDED);
      const chain = await c.createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0, 5000);
      assert.equal(new X509Certificate(chain[0]!).subjectAltName, `URI:${SHOP_WEB}`);
      assert.ok(accepted >= 2);
    } finally {
      c.close();
      for (const s of held) s.destroy();
      front.close();
    }
  });

  it('honours a requested validity, capped at the maximum', async () => {
    const short = new X509Certificate((await client(tokens.issue('node1')).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 120))[0]!);
    assert.equal((Date.parse(short.validTo) - Date.parse(short.validFrom)) / 1000, 120);
    const long = new X509Certificate((await client(tokens.issue('node1')).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 10 * 365 * 86400))[0]!);
    assert.equal((Date.parse(long.validTo) - Date.parse(long.validFrom)) / 1000, ca.maxTtlSeconds);
  });

  const refusals: Array<[string, () => Promise<unknown>, status, RegExp]> = [
    ['no token', async () => client('').createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0), status.UNAUTHENTICATED, /not 'Bearer <token>'|authorization/],
    ['a forged token', async () => client(new HmacNodeTokens(Buffer.alloc(32, 7)).issue('node1')).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0), status.UNAUTHENTICATED, /signature is wrong/],
    ['an expired token', async () => client(new HmacNodeTokens(Buffer.from(await readFile(join(dir, 'node-token-key'), 'utf8'), 'base64'), () => Date.now() - 3600_000).issue('node1', 60)).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0), status.UNAUTHENTICATED, /expired/],
    ['the wrong node (identity runs on node1, caller is node2)', async () => client(tokens.issue('node2')).createCertificate(await csrFor(SHOP_WEB), SHOP_WEB, 0), status.PERMISSION_DENIED, /node node2 runs no pod with service account shop\/web/],
    ['an identity no pod has', async () => client(tokens.issue('node1')).createCertificate(await csrFor('spiffe://cluster.local/ns/kube-system/sa/admin'), 'spiffe://cluster.local/ns/kube-system/sa/admin', 0), status.PERMISSION_DENIED, /runs no pod/],
    ['a foreign trust domain', async () => client(tokens.issue('node1')).createCertificate(await csrFor('spiffe://evil.org/ns/shop/sa/web'), 'spiffe://evil.org/ns/shop/sa/web', 0), status.PERMISSION_DENIED, /trust domain 'evil.org'/],
    ['a CSR whose SAN differs from the impersonated identity', async () => client(tokens.issue('node1')).createCertificate(await csrFor('spiffe://cluster.local/ns/shop/sa/db'), SHOP_WEB, 0), status.INVALID_ARGUMENT, /is not the identity being requested/],
    ['a CSR that is not PEM', async () => client(tokens.issue('node1')).createCertificate('hello', SHOP_WEB, 0), status.INVALID_ARGUMENT, /not a PEM CERTIFICATE REQUEST/],
    ['a CSR for an RSA key', async () => {
      const kp = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const keys = {
        privateKey: await crypto.subtle.importKey('pkcs8', kp.privateKey.export({ type: 'pkcs8', format: 'der' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['sign']),
        publicKey: await crypto.subtle.importKey('spki', kp.publicKey.export({ type: 'spki', format: 'der' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify']),
      };
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: keys as never, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' }, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: SHOP_WEB }])] });
      return client(tokens.issue('node1')).createCertificate(csr.toString('pem'), SHOP_WEB, 0);
    }, status.INVALID_ARGUMENT, /only ECDSA P-256/],
    ['a CSR with two SANs', async () => {
      const keys = await generateP256();
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: keys as never, signingAlgorithm: ECDSA_SHA256, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: SHOP_WEB }, { type: 'dns', value: 'web.shop' }])] });
      return client(tokens.issue('node1')).createCertificate(csr.toString('pem'), SHOP_WEB, 0);
    }, status.INVALID_ARGUMENT, /exactly one SAN.*has 2/],
    ['a CSR with a broken signature', async () => {
      const pem = await csrFor(SHOP_WEB);
      const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      der[der.length - 5] ^= 0xff;
      const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
      return client(tokens.issue('node1')).createCertificate(bad, SHOP_WEB, 0);
    }, status.INVALID_ARGUMENT, /signature does not verify|cannot be parsed/],
  ];
  for (const [what, call, code, details] of refusals) {
    it(`refuses ${what} with ${status[code]}`, async () => {
      await assert.rejects(call(), (err: { code: number; details: string }) => {
        assert.equal(err.code, code, `got ${status[err.code]}: ${err.details}`);
        assert.match(err.details, details);
        return true;
      });
    });
  }

  it('refuses a request without ImpersonatedIdentity', async () => {
    const { credentials, makeGenericClientConstructor, Metadata } = await import('@grpc/grpc-js');
    const Ctor = makeGenericClientConstructor(istioCertificateService as never, 'x');
    const c = new Ctor(`127.0.0.1:${server.port}`, credentials.createSsl(Buffer.from(ca.rootsPem))) as unknown as {
      CreateCertificate: (r: unknown, m: InstanceType<typeof Metadata>, cb: (e: { code: number; details: string } | null) => void) => void; close(): void;
    };
    const md = new Metadata();
    md.set('authorization', `Bearer ${tokens.issue('node1')}`);
    const { create } = await import('@bufbuild/protobuf');
    const { IstioCertificateRequestSchema } = await import('../../agent/src/xds/gen/istio/v1/auth/ca_pb.js');
    const err = await new Promise<{ code: number; details: string } | null>((r) => c.CreateCertificate(create(IstioCertificateRequestSchema, { csr: 'x' }), md, r));
    c.close();
    assert.equal(err?.code, status.INVALID_ARGUMENT);
    assert.match(err!.details, /ImpersonatedIdentity is required/);
  });
});

describe('CA state', () => {
  it('keeps the root across restarts in 0600 files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-ca-'));
    try {
      const a = await CertificateAuthority.loadOrCreate(dir);
      const b = await CertificateAuthority.loadOrCreate(dir);
      assert.equal(a.rootsPem, b.rootsPem);
      for (const f of ['ca-key.pem', 'ca-cert.pem']) assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, f);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a half-present CA, naming the missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-ca-'));
    try {
      await writeFile(join(dir, 'ca-key.pem'), 'x');
      await assert.rejects(CertificateAuthority.loadOrCreate(dir), (e: unknown) => e instanceof CaStateError && /has ca-key.pem but not ca-cert.pem/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('loads an operator intermediate and returns leaf, intermediate, root', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-ca-'));
    try {
      const rootKeys = await generateP256();
      const root = await x509.X509CertificateGenerator.createSelfSigned({
        name: 'CN=Operator Root', keys: rootKeys as never, signingAlgorithm: ECDSA_SHA256,
        notAfter: new Date(Date.now() + 86400_000 * 30),
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
      });
      const interKeys = await generateP256();
      const inter = await x509.X509CertificateGenerator.create({
        subject: 'CN=Operator Intermediate', issuer: root.subjectName, publicKey: interKeys.publicKey as never, signingKey: rootKeys.privateKey as never,
        signingAlgorithm: ECDSA_SHA256, notAfter: new Date(Date.now() + 86400_000 * 20),
        extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
      });
      await writeFile(join(dir, 'ca-key.pem'), privateKeyToPem(interKeys.privateKey), { mode: 0o600 });
      await writeFile(join(dir, 'ca-cert.pem'), inter.toString('pem'));
      await writeFile(join(dir, 'cert-chain.pem'), inter.toString('pem') + '\n' + root.toString('pem'));
      await writeFile(join(dir, 'root-cert.pem'), root.toString('pem'));
      const ca = await CertificateAuthority.loadOrCreate(dir);
      const chain = await ca.sign(await createCsr(await generateP256(), SHOP_WEB), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' }, 600);
      assert.equal(chain.length, 3);
      const [leaf, mid, top] = chain.map((c) => new X509Certificate(c));
      assert.ok(leaf!.verify(mid!.publicKey));
      assert.ok(mid!.verify(top!.publicKey));
      assert.equal(top!.subject, 'CN=Operator Root');
      assert.ok(Date.parse(leaf!.validTo) <= Date.parse(mid!.validTo));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
