// Errors the proxy reports. Data-path failures never throw out of a handler: they end one
// connection with a status, a response flag and a log line. These classes name the cause.
import { WeftError } from '../common/errors.js';

/** The HBONE peer answered a CONNECT with something other than 200. */
export class HboneStatusError extends WeftError {
  constructor(readonly status: number, authority: string) {
    super('WEFT_E_HBONE_STATUS', `HBONE CONNECT ${authority} was answered with ${status}`, {
      hint: status === 401 ? 'an AuthorizationPolicy at the destination denies this source' : status === 503 ? 'the destination app is not listening on that port' : undefined,
    });
  }
}

/** No certificate is loaded yet for an identity the proxy must present. */
export class NoCertificateError extends WeftError {
  constructor(identity: string) {
    super('WEFT_E_NO_CERTIFICATE', `no workload certificate for ${identity} yet`, {
      hint: 'the certificate manager has not issued it; check the controller connection (weft check)',
    });
  }
}

/** The TLS peer's certificate is not an acceptable mesh identity. */
export class PeerIdentityError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_PEER_IDENTITY', message, { hint: 'the peer must present a certificate issued by this mesh, with one spiffe:// URI SAN in our trust domain' });
  }
}

/** An HBONE connection could not be established (TCP, TLS or HTTP/2 handshake). */
export class HboneConnectError extends WeftError {
  constructor(target: string, cause: unknown) {
    super('WEFT_E_HBONE_CONNECT', `cannot open HBONE to ${target}: ${(cause as Error)?.message ?? String(cause)}`, {
      cause,
      hint: 'check that port 15008 of the destination pod is reachable (a NetworkPolicy may block it) and that both sides trust the same root',
    });
  }
}

/** The proxy has been asked to wait for readiness and the wait ran out. */
export class NotReadyError extends WeftError {
  constructor(waitedMs: number) {
    super('WEFT_E_PROXY_NOT_READY', `the proxy was not ready (certificates and workload state) after ${waitedMs} ms`, {
      hint: 'check the controller connection and the certificate manager (weft check)',
    });
  }
}

/** A Service had no healthy endpoint to send a connection to. */
export class NoHealthyEndpointError extends WeftError {
  constructor(service: string) {
    super('WEFT_E_NO_ENDPOINT', `service ${service} has no healthy endpoint`, { hint: 'check the pods behind the service (weft workloads)' });
  }
}

/** The proxy received a request it will not handle: a bad authority, a wrong method. */
export class BadRequestError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_HBONE_BAD_REQUEST', message);
  }
}
