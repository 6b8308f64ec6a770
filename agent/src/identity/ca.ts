// The mesh certificate authority. On first start it creates an ECDSA P-256 root and keeps it in
// the state directory (ca-key.pem + ca-cert.pem, mode 0600); later starts load it. An operator
// may instead put their own CA there, Istio "cacerts" style: ca-cert.pem + ca-key.pem of an
// intermediate, cert-chain.pem (intermediate up to root) and root-cert.pem.
// Certificates are built with @peculiar/x509 over Node's webcrypto; node-forge is not used
// because it cannot sign ECDSA.
import { mkdir, readFile, writeFile, chmod, stat } from 'node:fs/promises';
import { randomBytes, createPrivateKey, createPublicKey, X509Certificate as NodeX509 } from 'node:crypto';
import { join } from 'node:path';
import { x509 } from './x509.js';
import { WeftError } from '../common/errors.js';
import { logger } from '../common/log.js';
import {
  ECDSA_SHA256, generateP256, importP256Pem, privateKeyToPem, splitPemCertificates, type CryptoKeyPair,
} from './keys.js';
import { CsrRejectedError } from './csr.js';
import { inspectCsr } from './csr-inspect.js';
import { DEFAULT_TRUST_DOMAIN, formatSpiffeId, tryParseSpiffeId, type Identity } from './spiffe.js';

export const DEFAULT_CERT_TTL_SECONDS = 24 * 3600;
export const DEFAULT_MAX_CERT_TTL_SECONDS = 90 * 24 * 3600;
const ROOT_TTL_DAYS = 10 * 365;

export class CaStateError extends WeftError {
  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super('WEFT_E_CA_STATE', message, {
      ...options,
      hint: options?.hint ?? 'remove the broken CA files to let the controller create a new root (existing certificates stop being trusted), or fix them',
    });
  }
}

export interface CaOptions {
  trustDomain?: string;
  defaultTtlSeconds?: number;
  maxTtlSeconds?: number;
  now?: () => Date;
}

export interface ServingCertificate {
  keyPem: string;
  /** leaf first, then intermediates (no root) */
  certChainPem: string;
}

/** File names in the state directory, and key names in a Kubernetes Secret (Istio's cacerts layout). */
export const FILES = { key: 'ca-key.pem', cert: 'ca-cert.pem', chain: 'cert-chain.pem', root: 'root-cert.pem' } as const;

export interface CaMaterial {
  keyPem: string;
  certPem: string;
  chainPem?: string;
  rootPem?: string;
}

/** A new self-signed ECDSA P-256 root, valid for ten years. */
export async function createRootMaterial(opts: CaOptions = {}): Promise<CaMaterial> {
  const keys = await generateP256();
  const td = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const now = opts.now?.() ?? new Date();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=${td}, CN=Weft root CA`,
    keys: keys as never,
    signingAlgorithm: ECDSA_SHA256,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ROOT_TTL_DAYS * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { keyPem: privateKeyToPem(keys.privateKey), certPem: root.toString('pem') + '\n' };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  b[0]! |= 0x01; // no leading zero byte
  return b.toString('hex');
}

function sameCert(a: string, b: string): boolean {
  return new NodeX509(a).fingerprint256 === new NodeX509(b).fingerprint256;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  private readonly log = logger('ca');
  private readonly now: () => Date;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;

  private constructor(
    private readonly keys: CryptoKeyPair,
    private readonly caCert: x509.X509Certificate,
    /** certificates between the leaf and the roots: the CA cert then its parents (empty for a root CA) */
    private readonly intermediates: string[],
    /** the trust bundle: one or more root PEMs */
    readonly rootsPem: string,
    opts: CaOptions,
  ) {
    this.trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.defaultTtlSeconds = opts.defaultTtlSeconds ?? DEFAULT_CERT_TTL_SECONDS;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? DEFAULT_MAX_CERT_TTL_SECONDS;
    this.now = opts.now ?? (() => new Date());
  }

  /** Loads the CA from `dir`, creating a new self-signed root there on first start. */
  static async loadOrCreate(dir: string, opts: CaOptions = {}): Promise<CertificateAuthority> {
    const log = logger('ca');
    const p = (f: string) => join(dir, f);
    const haveKey = await exists(p(FILES.key));
    const haveCert = await exists(p(FILES.cert));
    if (haveKey !== haveCert) {
      throw new CaStateError(`${dir} has ${haveKey ? FILES.key : FILES.cert} but not ${haveKey ? FILES.cert : FILES.key}`);
    }
    if (!haveKey) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const m = await createRootMaterial(opts);
      await writeFile(p(FILES.key), m.keyPem, { mode: 0o600 });
      await writeFile(p(FILES.cert), m.certPem, { mode: 0o600 });
      await chmod(p(FILES.key), 0o600);
      log.info({ dir, trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN }, 'created a new root CA');
      return CertificateAuthority.fromMaterial(m, dir, opts);
    }
    const read = async (f: string) => ((await exists(p(f))) ? readFile(p(f), 'utf8') : undefined);
    const m: CaMaterial = { keyPem: (await read(FILES.key))!, certPem: (await read(FILES.cert))! };
    const chainPem = await read(FILES.chain);
    const rootPem = await read(FILES.root);
    if (chainPem) m.chainPem = chainPem;
    if (rootPem) m.rootPem = rootPem;
    return CertificateAuthority.fromMaterial(m, dir, opts);
  }

  /**
   * Builds the CA from PEM material (from files or a Kubernetes Secret), checking that the key
   * belongs to the certificate, that it is a CA and still valid, and that an intermediate
   * comes with its roots. `where` names the source in errors.
   */
  static async fromMaterial(m: CaMaterial, where: string, opts: CaOptions = {}): Promise<CertificateAuthority> {
    const log = logger('ca');
    try {
      const keys = await importP256Pem(m.keyPem);
      const caCert = new x509.X509Certificate(m.certPem);
      const nodeCert = new NodeX509(m.certPem);
      if (!nodeCert.ca) throw new CaStateError(`${where}: ${FILES.cert} is not a CA certificate (basicConstraints CA is not set)`);
      if (!nodeCert.checkPrivateKey(createPrivateKey(m.keyPem))) throw new CaStateError(`${where}: ${FILES.key} does not belong to ${FILES.cert}`);
      if (new Date(nodeCert.validTo) < new Date()) throw new CaStateError(`${where}: ${FILES.cert} expired on ${nodeCert.validTo}`);
      const selfSigned = nodeCert.subject === nodeCert.issuer && nodeCert.verify(createPublicKey(m.certPem));
      let roots = selfSigned ? m.certPem : '';
      let intermediates: string[] = [];
      if (!selfSigned) {
        if (!m.rootPem) throw new CaStateError(`${where}: ${FILES.cert} is an intermediate but ${FILES.root} is missing`);
        roots = m.rootPem;
        const rootList = splitPemCertificates(roots);
        const chain = m.chainPem ? splitPemCertificates(m.chainPem) : [m.certPem];
        intermediates = chain.filter((c) => !rootList.some((r) => sameCert(r, c)));
        if (!intermediates.length || !sameCert(intermediates[0]!, m.certPem)) intermediates.unshift(m.certPem);
      }
      log.info({ from: where, intermediate: !selfSigned }, 'loaded CA');
      return new CertificateAuthority(keys, caCert, intermediates, roots.endsWith('\n') ? roots : roots + '\n', opts);
    } catch (err) {
      if (err instanceof CaStateError) throw err;
      throw new CaStateError(`cannot load the CA from ${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Signs a workload CSR for `identity`. The CSR must carry exactly that SPIFFE ID.
   * Returns the chain leaf first, root(s) last.
   */
  async sign(csrPem: string, identity: Identity, requestedTtlSeconds = 0): Promise<string[]> {
    const { csr, uriSan } = await inspectCsr(csrPem);
    const want = formatSpiffeId(identity);
    const parsed = tryParseSpiffeId(uriSan);
    if (!parsed) throw new CsrRejectedError(`the URI SAN '${uriSan}' is not spiffe://<td>/ns/<ns>/sa/<sa>`);
    if (uriSan !== want) throw new CsrRejectedError(`the URI SAN '${uriSan}' is not the identity being requested ('${want}')`);
    if (identity.trustDomain !== this.trustDomain) {
      throw new CsrRejectedError(`trust domain '${identity.trustDomain}' is not this CA's ('${this.trustDomain}')`);
    }
    if (!Number.isFinite(requestedTtlSeconds) || requestedTtlSeconds < 0) throw new CsrRejectedError(`validity_duration ${requestedTtlSeconds} is negative`);
    const ttl = Math.min(requestedTtlSeconds > 0 ? requestedTtlSeconds : this.defaultTtlSeconds, this.maxTtlSeconds);
    const notBefore = new Date(Math.floor(this.now().getTime() / 1000) * 1000);
    let notAfter = new Date(notBefore.getTime() + ttl * 1000);
    if (notAfter > this.caCert.notAfter) notAfter = this.caCert.notAfter;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: '',
      issuer: this.caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.keys.privateKey as never,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: want }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey as never),
      ],
    });
    this.log.info({ identity: want, notAfter: notAfter.toISOString() }, 'issued workload certificate');
    return [leaf.toString('pem') + '\n', ...this.intermediates, this.rootsPem];
  }

  /** A TLS serving certificate for the controller itself (xDS/CA port). */
  async issueServing(dnsNames: string[], ips: string[], ttlSeconds = 365 * 86400): Promise<ServingCertificate> {
    const keys = await generateP256();
    const notBefore = new Date(this.now().getTime() - 60_000);
    let notAfter = new Date(notBefore.getTime() + ttlSeconds * 1000);
    if (notAfter > this.caCert.notAfter) notAfter = this.caCert.notAfter;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${dnsNames[0] ?? 'weft-controller'}`,
      issuer: this.caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey as never,
      signingKey: this.keys.privateKey as never,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
          ...ips.map((value) => ({ type: 'ip' as const, value })),
        ]),
      ],
    });
    return { keyPem: privateKeyToPem(keys.privateKey), certChainPem: [cert.toString('pem') + '\n', ...this.intermediates].join('') };
  }
}
