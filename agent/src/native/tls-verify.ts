// In-handshake client-chain verification for a TLS server context (native/tls-verify.cc).
// Node verifies client chains only after the handshake and then closes without an alert; this
// makes OpenSSL fail the handshake itself with the matching alert (certificate_expired,
// unknown_ca, ...), so a peer learns why it was refused.
import type { SecureContext } from 'node:tls';
import { addon } from './addon.js';
import { callNative, NativeStateError } from './errors.js';
import { requireString } from './validate.js';

/**
 * Installs in-handshake chain verification on `context` (a tls.SecureContext); with
 * `trustDomain`, the client's single spiffe:// URI SAN must also be in it (handshake_failure).
 */
export function verifyClientChainInHandshake(context: SecureContext, trustDomain?: string): void {
  // `context.context._external` is Node's handle on the SSL_CTX for addons.
  const external = (context as unknown as { context?: { _external?: unknown } } | undefined)?.context?._external;
  if (external === undefined) throw new NativeStateError('this Node.js does not expose SecureContext.context._external; client chains are verified after the handshake instead');
  const td = trustDomain === undefined ? undefined : requireString(trustDomain, 'trustDomain');
  callNative(() => (td ? addon().verifyClientChainInHandshake(external, td) : addon().verifyClientChainInHandshake(external)));
}
