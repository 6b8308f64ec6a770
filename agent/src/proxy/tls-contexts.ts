// TLS material per mesh identity: the server options for a pod's :15008 listener and one
// client SecureContext per source identity, reused by every outbound HBONE connection
// (re-parsing key, chain and roots per connect costs CPU and memory: node-performance.md 2.2).
// On rotation the cert manager calls set(); listeners subscribe to swap their context.
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { NoCertificateError } from './errors.js';

export interface WorkloadCertificate {
  /** PKCS#8 PEM, ECDSA P-256 */
  keyPem: string;
  /** leaf first, then intermediates (a trailing root is harmless) */
  certChainPem: string;
}

// ztunnel: TLS 1.3 only, AES-GCM suites only (no ChaCha20).
const TLS13_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

export const BASE_TLS_OPTIONS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  // Node routes TLS_* names in `ciphers` to the TLS 1.3 suite list.
  ciphers: TLS13_CIPHERS,
} as const satisfies tls.SecureContextOptions;

interface Entry {
  cert: WorkloadCertificate;
  serverOptions: tls.SecureContextOptions;
  client?: tls.SecureContext;
}

export class TlsContexts extends EventEmitter<{ rotated: [identity: string]; deleted: [identity: string] }> {
  private readonly entries = new Map<string, Entry>();
  private roots: string;

  constructor(rootsPem: string) {
    super();
    this.roots = rootsPem;
  }

  get rootsPem(): string {
    return this.roots;
  }

  /** Installs (or rotates) the certificate of `identity` (a spiffe:// ID). */
  set(identity: string, cert: WorkloadCertificate): void {
    this.entries.set(identity, { cert, serverOptions: { ...BASE_TLS_OPTIONS, key: cert.keyPem, cert: cert.certChainPem, ca: this.roots } });
    this.emit('rotated', identity);
  }

  /** Replaces the trust bundle; every identity's contexts are rebuilt. */
  setRoots(rootsPem: string): void {
    this.roots = rootsPem;
    for (const [id, e] of [...this.entries]) this.set(id, e.cert);
  }

  has(identity: string): boolean {
    return this.entries.has(identity);
  }

  delete(identity: string): void {
    if (this.entries.delete(identity)) this.emit('deleted', identity);
  }

  /** The certificate of `identity`, if any (to hand it to a data-plane worker). */
  certificate(identity: string): WorkloadCertificate | undefined {
    return this.entries.get(identity)?.cert;
  }

  /** Every identity with a certificate. */
  identities(): string[] {
    return [...this.entries.keys()];
  }

  /** Options for tls.Server / setSecureContext: our chain, verifying clients against the roots. */
  serverOptions(identity: string): tls.SecureContextOptions {
    const e = this.entries.get(identity);
    if (!e) throw new NoCertificateError(identity);
    return e.serverOptions;
  }

  /** The one client SecureContext of `identity`, built on first use. */
  clientContext(identity: string): tls.SecureContext {
    const e = this.entries.get(identity);
    if (!e) throw new NoCertificateError(identity);
    e.client ??= tls.createSecureContext(e.serverOptions);
    return e.client;
  }
}
