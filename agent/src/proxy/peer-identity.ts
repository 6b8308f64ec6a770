// The peer's mesh identity is the single spiffe:// URI SAN of its leaf certificate (ztunnel
// uses nothing else: baggage and forwarded are informational).
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { tryParseSpiffeId, formatSpiffeId, type Identity } from '../identity/spiffe.js';
import { PeerIdentityError } from './errors.js';

/** URI SANs of a certificate, from Node's `subjectAltName` text (`URI:…, DNS:…`). */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out: string[] = [];
  // Values may be JSON-quoted when they contain separators (Node >= 17.3).
  const re = /(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(subjectAltName); m; m = re.exec(subjectAltName)) {
    const raw = m[1]!;
    out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return out;
}

/** The SPIFFE identity of a certificate; throws PeerIdentityError naming the problem. */
export function certIdentity(cert: Pick<X509Certificate, 'subjectAltName'> | { subjectaltname?: string } | undefined): Identity {
  if (!cert) throw new PeerIdentityError('the peer presented no certificate');
  const text = 'subjectAltName' in cert ? cert.subjectAltName : (cert as { subjectaltname?: string }).subjectaltname;
  const spiffe = uriSans(text).filter((u) => u.startsWith('spiffe://'));
  if (spiffe.length !== 1) throw new PeerIdentityError(`the peer certificate has ${spiffe.length} spiffe:// URI SANs, expected exactly one`);
  const id = tryParseSpiffeId(spiffe[0]!);
  if (!id) throw new PeerIdentityError(`the peer certificate's URI SAN '${spiffe[0]}' is not spiffe://<td>/ns/<ns>/sa/<sa>`);
  return id;
}

/** The verified peer identity of a TLS socket, checked against our trust domain. */
export function peerIdentity(socket: TLSSocket, trustDomain: string): Identity {
  const id = certIdentity(socket.getPeerX509Certificate());
  if (id.trustDomain !== trustDomain.toLowerCase()) {
    throw new PeerIdentityError(`peer ${formatSpiffeId(id)} is in trust domain '${id.trustDomain}', not ours ('${trustDomain}')`);
  }
  return id;
}
