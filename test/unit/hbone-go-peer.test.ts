// Drives our :15008 server with an HBONE client that shares no code with it (Go crypto/tls +
// golang.org/x/net/http2, test/peers/hbone-client), so a bug common to both ends of our own
// implementation cannot hide. Go is preinstalled on the project's machines; without it the
// test skips locally and fails under CI=true.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { Mesh, policy, waitFor, type TestNode, type TestPod } from '../helpers/proxy-harness.js';
import { createTestCa, type TestCert } from '../helpers/certs.js';

const root = resolve(import.meta.dirname, '../../..');
const src = join(root, 'test/peers/hbone-client');
const bin = join(root, 'build/peers/hbone-client');

function findGo(): string | undefined {
  for (const p of ['/usr/local/go/bin/go', '/usr/bin/go']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function goSkip(): string | false {
  if (findGo()) return false;
  const reason = 'Go is not installed (looked in /usr/local/go/bin and PATH); install Go ≥ 1.22 to build test/peers/hbone-client';
  if (process.env.CI === 'true') throw new Error(`${reason}. Under CI=true this is a failure, not a skip.`);
  return reason;
}

/** Builds the peer unless the binary is newer than every source file. */
function buildPeer(): void {
  const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs));
  if (existsSync(bin) && statSync(bin).mtimeMs >= newest) return;
  mkdirSync(join(root, 'build/peers'), { recursive: true });
  execFileSync(findGo()!, ['build', '-o', bin, '.'], { cwd: src, stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
}

interface PeerResult {
  status: number;
  reply: string;
  serverIdentity: string;
  tlsVersion: string;
  alpn: string;
  error?: string;
}

function runPeer(args: Record<string, string>): Promise<PeerResult> {
  const argv = Object.entries(args).flatMap(([k, v]) => [`-${k}`, v]);
  return new Promise((resolvePeer, reject) => {
    execFile(bin, argv, { timeout: 20_000 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolvePeer(JSON.parse(line) as PeerResult);
      } catch {
        reject(new Error(`hbone-client printed no JSON (${err?.message ?? ''}): ${stdout} ${stderr}`));
      }
    });
  });
}

describe('HBONE interop with an independent Go client', { skip: goSkip() }, () => {
  let mesh: Mesh;
  let node: TestNode;
  let server: TestPod;
  let dir: string;

  before(async () => {
    buildPeer();
    mesh = await Mesh.create();
    node = mesh.node('node-b');
    server = await mesh.pod(node, { namespace: 'shop', serviceAccount: 'cart' });
    dir = mkdtempSync(join(tmpdir(), 'weft-go-peer-'));
    const cert = await mesh.ca.issue('spiffe://cluster.local/ns/shop/sa/go-client');
    writeFileSync(join(dir, 'cert.pem'), cert.certChainPem);
    writeFileSync(join(dir, 'key.pem'), cert.keyPem);
    writeFileSync(join(dir, 'ca.pem'), mesh.ca.rootPem);
  });
  after(async () => {
    await mesh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const args = (over: Record<string, string> = {}) => ({
    addr: `${server.ip}:${server.hbonePort}`,
    authority: `${server.ip}:${server.app!.port}`,
    cert: join(dir, 'cert.pem'),
    key: join(dir, 'key.pem'),
    ca: join(dir, 'ca.pem'),
    'expect-id': server.identity,
    marker: `weft-marker-${process.pid}`,
    ...over,
  });

  it('tunnels bytes both ways over TLS 1.3 + h2 CONNECT and half-closes cleanly', async () => {
    const r = await runPeer(args());
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.status, 200);
    assert.equal(r.reply, `weft-marker-${process.pid}`, 'the echo came back through the tunnel after END_STREAM');
    assert.equal(r.tlsVersion, 'TLS 1.3');
    assert.equal(r.alpn, 'h2');
    assert.equal(r.serverIdentity, server.identity, 'the server presented the pod certificate');
    await waitFor(() => /source_principal="spiffe:\/\/cluster.local\/ns\/shop\/sa\/go-client"/.test(node.telemetry.metricsText()));
  });

  // A refused client chain must fail the handshake with the TLS alert that says why (as
  // ztunnel/rustls does), not a bare close: Go reports the alert it received.
  const withCert = (name: string, cert: TestCert) => {
    writeFileSync(join(dir, `${name}-cert.pem`), cert.certChainPem);
    writeFileSync(join(dir, `${name}-key.pem`), cert.keyPem);
    return args({ cert: join(dir, `${name}-cert.pem`), key: join(dir, `${name}-key.pem`) });
  };

  it('gets a certificate_expired alert for an expired client certificate', async () => {
    const expired = await mesh.ca.issue('spiffe://cluster.local/ns/shop/sa/go-client', {
      notBefore: new Date(Date.now() - 7200_000),
      notAfter: new Date(Date.now() - 3600_000),
    });
    const r = await runPeer(withCert('expired', expired));
    assert.ok(!r.status, `no CONNECT was answered (${r.error})`);
    assert.match(r.error ?? '', /remote error: tls: expired certificate/);
  });

  it('gets an unknown_ca alert for a client certificate from a foreign root', async () => {
    const otherCa = await createTestCa('Foreign root');
    const foreign = await otherCa.issue('spiffe://cluster.local/ns/shop/sa/go-client');
    const r = await runPeer(withCert('foreign', foreign));
    assert.ok(!r.status, `no CONNECT was answered (${r.error})`);
    assert.match(r.error ?? '', /remote error: tls: unknown certificate authority/);
  });

  it('gets a handshake_failure alert for a client identity in another trust domain', async () => {
    const other = await mesh.ca.issue('spiffe://evil.example/ns/shop/sa/go-client');
    const r = await runPeer(withCert('other-td', other));
    assert.ok(!r.status, `no CONNECT was answered (${r.error})`);
    assert.match(r.error ?? '', /remote error: tls: handshake failure/);
  });

  it('gets 400 for an authority that is not this pod', async () => {
    const bad = await runPeer(args({ authority: `127.0.0.1:${server.app!.port}` }));
    assert.equal(bad.status, 400);
  });

  it('gets 401 when policy denies it', async () => {
    mesh.view.putPolicy(policy('deny-go', 'shop', 'DENY', ['cluster.local/ns/shop/sa/go-client']));
    try {
      await new Promise((r) => setImmediate(r));
      const denied = await runPeer(args());
      assert.equal(denied.status, 401);
    } finally {
      mesh.view.removePolicy('shop/deny-go');
    }
  });
});
