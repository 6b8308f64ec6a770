// CSRs as ztunnel makes them: ECDSA P-256 key, SHA-256 signature, empty subject, exactly one
// URI SAN with the SPIFFE ID. Written as DER here (a PKCS#10 request is a few nested
// SEQUENCEs), so the agent, which makes CSRs but never parses them, does not load an X.509
// library: @peculiar/x509 costs ~2.7 MB of heap, which every major GC of the data plane marks.
// The CA side parses and checks them with @peculiar/x509 (csr-inspect.ts), an independent
// reading of what is written here.
import { webcrypto } from 'node:crypto';
import { WeftError } from '../common/errors.js';
import { ECDSA_SHA256, type CryptoKeyPair } from './keys.js';

export class CsrRejectedError extends WeftError {
  constructor(reason: string) {
    super('WEFT_E_CSR_REJECTED', `certificate signing request refused: ${reason}`, {
      hint: 'send a PEM PKCS#10 CSR for an ECDSA P-256 key with exactly one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>',
    });
  }
}

/** DER TLV: tag, definite length, value. */
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

const seq = (...parts: Uint8Array[]) => tlv(0x30, ...parts);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) groups.unshift((v & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A non-negative INTEGER from big-endian bytes: leading zeros dropped, a 0x00 added when the top bit is set. */
function uint(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = Buffer.from(bytes.subarray(i));
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

export async function createCsr(keys: CryptoKeyPair, spiffeId: string): Promise<string> {
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  // GeneralNames with one uniformResourceIdentifier ([6] IA5String); critical, as the subject is empty.
  const san = seq(tlv(0x86, Buffer.from(spiffeId, 'ascii')));
  const extension = seq(oid(OID_SUBJECT_ALT_NAME), tlv(0x01, Buffer.from([0xff])), tlv(0x04, san));
  const attributes = tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), tlv(0x31, seq(extension))));
  const info = seq(tlv(0x02, Buffer.from([0])), seq(), spki, attributes);
  // WebCrypto signs as r || s (32 bytes each); X.509 wants ECDSA-Sig-Value, a SEQUENCE of two INTEGERs.
  const rs = new Uint8Array(await webcrypto.subtle.sign(ECDSA_SHA256, keys.privateKey, info));
  const signature = seq(uint(rs.subarray(0, 32)), uint(rs.subarray(32)));
  const der = seq(info, seq(oid(OID_ECDSA_WITH_SHA256)), tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}
