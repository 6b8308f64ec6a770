// The agent writes its PKCS#10 CSRs as DER by hand (identity/csr.ts); two independent readers
// must accept them: the OpenSSL CLI and @peculiar/x509 (the CA's inspectCsr).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCsr } from '../../agent/src/identity/csr.js';
import { inspectCsr } from '../../agent/src/identity/csr-inspect.js';
import { generateP256 } from '../../agent/src/identity/keys.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';

function openssl(pem: string): { ok: boolean; text: string } {
  const r = spawnSync('openssl', ['req', '-verify', '-noout', '-text'], { input: pem, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl CLI not runnable (${r.error.message}); npm run setup installs it`);
  return { ok: r.status === 0 && /verify OK/.test(r.stdout + r.stderr), text: r.stdout + r.stderr };
}

test('a CSR: empty subject, P-256 key, one critical URI SAN, ecdsa-with-SHA256, signature verifies', async () => {
  for (let i = 0; i < 20; i++) {
    // several keys: r or s with a high bit set (a 0x00 pad) or a leading zero byte must both encode right
    const pem = await createCsr(await generateP256(), ID);
    const o = openssl(pem);
    assert.ok(o.ok, o.text);
    assert.match(o.text, /Subject: *\n/);
    assert.match(o.text, /NIST CURVE: P-256/);
    assert.match(o.text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web\n/);
    assert.match(o.text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.equal((await inspectCsr(pem)).uriSan, ID);
  }
});

test('a CSR whose signed part was altered is refused by both readers', async () => {
  const pem = await createCsr(await generateP256(), ID);
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const at = der.indexOf(Buffer.from('shop'));
  der[at] = 'x'.charCodeAt(0); // spiffe://cluster.local/ns/xhop/...: same length, signature now wrong
  const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  assert.equal(openssl(bad).ok, false);
  await assert.rejects(inspectCsr(bad), /the CSR signature does not verify/);
});
