// The agent's workload certificates: one ECDSA P-256 key and certificate per identity used on
// this node. Fetched ahead of need (setWanted), refreshed at half-life, retried with capped
// exponential backoff, kept while still valid when the CA is unreachable, dropped when no pod
// needs them. Every returned chain is checked: one URI SAN equal to the identity asked for,
// the leaf holds our key, each certificate is signed by the next.
import { EventEmitter } from 'node:events';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { WeftError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { generateP256, privateKeyToPem, splitPemCertificates } from './keys.js';
import { createCsr } from './csr.js';
import { formatSpiffeId, type Identity } from './spiffe.js';
import { backoffDelay, type Backoff } from '../xds/client.js';

export interface CertificateSigner {
  createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number): Promise<string[]>;
}

export interface WorkloadCertificate {
  identity: string;
  keyPem: string;
  /** leaf then intermediates, PEM, for TLS `cert` */
  certChainPem: string;
  /** trust bundle (the chain's last element), PEM, for TLS `ca` */
  rootsPem: string;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

export interface CertificateInfo {
  identity: string;
  state: 'fetching' | 'valid' | 'expired' | 'failed';
  notBefore?: string;
  notAfter?: string;
  refreshAt?: string;
  serial?: string;
  lastError?: string;
}

export class CertificateChainError extends WeftError {
  constructor(identity: string, reason: string) {
    super('WEFT_E_CERT_CHAIN', `certificate for ${identity} refused: ${reason}`, { hint: 'the CA returned a certificate this agent cannot use; check the CA configuration' });
  }
}

export interface CertificateManagerOptions {
  signer: CertificateSigner;
  ttlSeconds?: number;
  backoff?: Backoff;
  maxConcurrent?: number;
  now?: () => number;
}

interface Entry {
  id: string;
  cert?: WorkloadCertificate;
  inflight?: Promise<WorkloadCertificate>;
  timer?: NodeJS.Timeout;
  attempt: number;
  lastError?: string;
  nextAt?: number;
}

/** As ztunnel: a connection waiting (RealTime) before prefetch (Warmup) before refresh (Background). */
export enum Priority {
  RealTime = 0,
  Warmup = 1,
  Background = 2,
}

export const CERT_BACKOFF: Backoff = { initialMs: 500, maxMs: 150_000 };

/** Checks a returned chain; returns the parsed leaf. Throws CertificateChainError. */
export function checkChain(identity: string, chain: string[], keyPem: string, now: number): X509Certificate {
  if (chain.length < 2) throw new CertificateChainError(identity, `the chain has ${chain.length} element(s); expected leaf … root`);
  const certs = chain.flatMap((c) => splitPemCertificates(c));
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0]!);
  } catch (err) {
    throw new CertificateChainError(identity, `the leaf cannot be parsed: ${(err as Error).message}`);
  }
  const sans = (leaf.subjectAltName ?? '').split(', ').filter(Boolean);
  if (sans.length !== 1 || sans[0] !== `URI:${identity}`) {
    throw new CertificateChainError(identity, `the leaf's SAN is '${leaf.subjectAltName ?? ''}', not URI:${identity}`);
  }
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) throw new CertificateChainError(identity, 'the leaf does not carry the key of our CSR');
  if (Date.parse(leaf.validTo) <= now) throw new CertificateChainError(identity, `the leaf expired at ${leaf.validTo}`);
  // each intermediate signs the previous; the leaf chains to one of the roots in the last element
  const inter = chain.slice(1, -1).flatMap((c) => splitPemCertificates(c)).map((c) => new X509Certificate(c));
  const roots = splitPemCertificates(chain[chain.length - 1]!).map((c) => new X509Certificate(c));
  let cur = leaf;
  for (const next of inter) {
    if (!cur.verify(next.publicKey)) throw new CertificateChainError(identity, `'${cur.subject || cur.subjectAltName}' is not signed by '${next.subject}'`);
    cur = next;
  }
  if (!roots.some((r) => cur.verify(r.publicKey))) throw new CertificateChainError(identity, 'the chain does not end at the returned root');
  return leaf;
}

export class CertificateManager extends EventEmitter<{ issued: [WorkloadCertificate]; failed: [{ identity: string; error: string }]; dropped: [string] }> {
  private readonly log = logger('cert-manager');
  private readonly entries = new Map<string, Entry>();
  private readonly ttl: number;
  private readonly backoff: Backoff;
  private readonly maxConcurrent: number;
  private readonly now: () => number;
  private running = 0;
  /** fetches waiting for a slot, served by priority then arrival */
  private readonly waiting: Array<{ e: Entry; prio: Priority; go: () => void }> = [];
  private stopped = false;

  constructor(private readonly opts: CertificateManagerOptions) {
    super();
    this.ttl = opts.ttlSeconds ?? 24 * 3600;
    this.backoff = opts.backoff ?? CERT_BACKOFF;
    this.maxConcurrent = opts.maxConcurrent ?? 8;
    this.now = opts.now ?? Date.now;
  }

  /** The identities pods on this node use: fetch the new ones, drop the rest. */
  setWanted(identities: Iterable<Identity | string>): void {
    const want = new Set([...identities].map((i) => (typeof i === 'string' ? i : formatSpiffeId(i))));
    for (const [id, e] of this.entries) {
      if (!want.has(id)) {
        clearTimeout(e.timer);
        this.entries.delete(id);
        this.log.info({ identity: id }, 'dropped certificate: no pod on this node needs it');
        this.emit('dropped', id);
      }
    }
    for (const id of want) if (!this.entries.has(id)) this.start(id, Priority.Warmup);
  }

  /** A valid certificate for the identity, fetching it now if needed (a connection waits). */
  async get(identity: Identity | string): Promise<WorkloadCertificate> {
    const id = typeof identity === 'string' ? identity : formatSpiffeId(identity);
    let e = this.entries.get(id);
    if (!e) e = this.start(id, Priority.RealTime);
    if (e.cert && e.cert.notAfter.getTime() > this.now()) return e.cert;
    for (const w of this.waiting) if (w.e === e) w.prio = Priority.RealTime; // someone waits now
    return e.inflight ?? this.fetch(e, Priority.RealTime);
  }

  current(identity: Identity | string): WorkloadCertificate | undefined {
    const id = typeof identity === 'string' ? identity : formatSpiffeId(identity);
    const c = this.entries.get(id)?.cert;
    return c && c.notAfter.getTime() > this.now() ? c : undefined;
  }

  list(): CertificateInfo[] {
    return [...this.entries.values()].map((e) => {
      const c = e.cert;
      const state: CertificateInfo['state'] = e.inflight && !c ? 'fetching' : c ? (c.notAfter.getTime() > this.now() ? 'valid' : 'expired') : 'failed';
      return {
        identity: e.id, state,
        ...(c ? { notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), serial: c.serial } : {}),
        ...(e.nextAt ? { refreshAt: new Date(e.nextAt).toISOString() } : {}),
        ...(e.lastError ? { lastError: e.lastError } : {}),
      };
    }).sort((a, b) => a.identity.localeCompare(b.identity));
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }

  private start(id: string, prio: Priority): Entry {
    const e: Entry = { id, attempt: 0 };
    this.entries.set(id, e);
    this.fetch(e, prio).catch(() => {}); // failures are retried and reported by fetch
    return e;
  }

  private async slot<T>(e: Entry, prio: Priority, f: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) await new Promise<void>((go) => this.waiting.push({ e, prio, go }));
    this.running++;
    try {
      return await f();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    if (this.waiting.length === 0) return;
    let best = 0;
    for (let i = 1; i < this.waiting.length; i++) if (this.waiting[i]!.prio < this.waiting[best]!.prio) best = i;
    this.waiting.splice(best, 1)[0]!.go();
  }

  private fetch(e: Entry, prio: Priority): Promise<WorkloadCertificate> {
    if (e.inflight) return e.inflight;
    clearTimeout(e.timer);
    e.inflight = this.slot(e, prio, async () => {
      const keys = await generateP256();
      const keyPem = privateKeyToPem(keys.privateKey);
      const chain = await this.opts.signer.createCertificate(await createCsr(keys, e.id), e.id, this.ttl);
      const leaf = checkChain(e.id, chain, keyPem, this.now());
      const certs = chain.flatMap((c) => splitPemCertificates(c));
      const roots = chain[chain.length - 1]!;
      const rootCount = splitPemCertificates(roots).length;
      return {
        identity: e.id, keyPem,
        certChainPem: certs.slice(0, certs.length - rootCount).join(''),
        rootsPem: roots,
        notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), serial: leaf.serialNumber,
      };
    }).then(
      (cert) => {
        e.inflight = undefined;
        if (this.stopped || this.entries.get(e.id) !== e) return cert; // dropped meanwhile
        e.cert = cert;
        e.attempt = 0;
        delete e.lastError;
        const half = cert.notBefore.getTime() + (cert.notAfter.getTime() - cert.notBefore.getTime()) / 2;
        this.schedule(e, half, Priority.Background);
        this.log.info({ identity: e.id, notAfter: cert.notAfter.toISOString(), refreshAt: new Date(half).toISOString() }, 'certificate ready');
        this.emit('issued', cert);
        return cert;
      },
      (err: Error & { details?: string }) => {
        e.inflight = undefined;
        const reason = err.details ?? err.message;
        if (this.stopped || this.entries.get(e.id) !== e) throw err;
        e.lastError = reason;
        // the current certificate (if any) stays in use until it expires
        const at = this.now() + backoffDelay(e.attempt++, this.backoff);
        this.schedule(e, at, e.cert ? Priority.Background : Priority.Warmup);
        this.log.warn({ identity: e.id, reason, retryAt: new Date(at).toISOString(), keepingValid: !!this.current(e.id) }, 'certificate request failed');
        this.emit('failed', { identity: e.id, error: reason });
        throw err;
      },
    );
    return e.inflight;
  }

  private schedule(e: Entry, at: number, prio: Priority): void {
    clearTimeout(e.timer);
    e.nextAt = at;
    e.timer = setTimeout(() => void this.fetch(e, prio).catch(() => {}), Math.max(0, at - this.now()));
    e.timer.unref();
  }
}
