// What telemetry knows about one proxied connection: who talked to whom, and how it ended.
// The proxy fills these in; metrics and the access log only read them.

/** A workload's metadata as it appears in labels and logs; unknown fields stay undefined. */
export interface PeerInfo {
  workload?: string | undefined;
  namespace?: string | undefined;
  /** SPIFFE ID; for a source only when it was authenticated by mTLS */
  identity?: string | undefined;
  app?: string | undefined;
  version?: string | undefined;
  cluster?: string | undefined;
}

export interface ServiceInfo {
  /** FQDN, e.g. echo.default.svc.cluster.local */
  hostname: string;
  namespace: string;
  name: string;
}

export type Direction = 'inbound' | 'outbound';

export interface ConnectionInfo {
  direction: Direction;
  /** source ip:port */
  srcAddr: string;
  /** the address this proxy connected to (pod ip:15008 for HBONE, the app for inbound) */
  dstAddr: string;
  /** the HBONE :authority, when the connection went through a tunnel */
  hboneAddr?: string | undefined;
  src: PeerInfo;
  dst: PeerInfo;
  service?: ServiceInfo | undefined;
  security: 'mutual_tls' | 'unknown';
}

/** Istio's response flags ('-' when none). */
export type ResponseFlag =
  | '-'
  | 'DENY'
  | 'CONNECT'
  | 'TLS_FAILURE'
  | 'H2_HANDSHAKE_FAILURE'
  | 'IDENTITY_ERROR'
  | 'NETWORK_POLICY';

export interface ConnectionOutcome {
  /** bytes from the source towards the destination */
  bytesSent: number;
  /** bytes from the destination back to the source */
  bytesRecv: number;
  durationMs: number;
  responseFlags: ResponseFlag;
  error?: string | undefined;
}
