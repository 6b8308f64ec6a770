// A throwaway mesh CA for tests: an ECDSA P-256 root and workload leaves with one SPIFFE URI
// SAN, shaped like the ones the mesh CA issues (empty subject, digitalSignature, client and
// server auth). Lets tests make expired, foreign-trust-domain and foreign-root certificates.
import { randomBytes, webcrypto, KeyObject } from 'node:crypto';
import { x509 } from '../../agent/src/identity/x509.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface TestCert {
  keyPem: string;
  /** leaf first, then the CA (the root itself is not sent) */
  certChainPem: string;
  spiffeId: string;
}

export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
}

export interface TestCa {
  rootPem: string;
  issue(spiffeId: string, opts?: IssueOptions): Promise<TestCert>;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

export async function createTestCa(name = 'Weft test root'): Promise<TestCa> {
  const keys = await keyPair();
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    keys: keys as never,
    signingAlgorithm: ALG,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const rootPem = root.toString('pem') + '\n';
  return {
    rootPem,
    async issue(spiffeId, opts = {}) {
      const leafKeys = await keyPair();
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: '',
        issuer: root.subjectName,
        notBefore: opts.notBefore ?? new Date(Date.now() - 60_000),
        notAfter: opts.notAfter ?? new Date(Date.now() + 3600_000),
        publicKey: leafKeys.publicKey as never,
        signingKey: keys.privateKey as never,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
        ],
      });
      const keyPem = KeyObject.from(leafKeys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
      return { keyPem, certChainPem: leaf.toString('pem') + '\n' + rootPem, spiffeId };
    },
  };
}
