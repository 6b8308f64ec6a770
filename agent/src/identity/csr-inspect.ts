// The CA's side of a CSR: parse it, verify its signature, and find its single URI SAN. Uses
// @peculiar/x509 (loaded by the controller only; the agent writes CSRs in csr.ts).
import { x509 } from './x509.js';
import { CsrRejectedError } from './csr.js';

export interface InspectedCsr {
  csr: x509.Pkcs10CertificateRequest;
  uriSan: string;
}

/** Parses and verifies a CSR; throws CsrRejectedError naming the problem. */
export async function inspectCsr(pem: string): Promise<InspectedCsr> {
  if (!pem || !pem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw new CsrRejectedError('the csr field is not a PEM CERTIFICATE REQUEST');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new CsrRejectedError(`the CSR cannot be parsed (${(err as Error).message})`);
  }
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new CsrRejectedError(`the key is ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}; only ECDSA P-256 is accepted`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrRejectedError('the CSR signature does not verify');
  const sanExt = csr.getExtension('2.5.29.17');
  const names = sanExt ? new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.items : [];
  const uris = names.filter((n) => n.type === 'url');
  if (names.length !== 1 || uris.length !== 1) {
    throw new CsrRejectedError(`the CSR must carry exactly one SAN, a spiffe:// URI; it has ${names.length} (${names.map((n) => `${n.type}:${n.value}`).join(', ') || 'none'})`);
  }
  return { csr, uriSan: uris[0]!.value };
}
