// The inbound HBONE endpoint of one pod (:15008): TLS 1.3 mutual auth with the pod's own
// certificate, ALPN h2, the client's SPIFFE identity checked against our trust domain, then
// one HTTP/2 CONNECT stream per proxied connection. This file owns TLS, HTTP/2 and request
// validation (400s); what a valid CONNECT leads to (policy, dialling the app) is onConnect's.
import http2 from 'node:http2';
import { constants } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { logger } from '../common/log.js';
import { formatSpiffeId, type Identity } from '../identity/spiffe.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { PeerInfo } from '../telemetry/connection-info.js';
import { BASE_TLS_OPTIONS } from './tls-contexts.js';
import { normalizeIp, parseAuthority, parseForwardedFor, parseForwardedHost, formatAddr, type SocketAddr } from './addresses.js';
import { peerIdentity, uriSans } from './peer-identity.js';
import { BadRequestError } from './errors.js';
import type tls from 'node:tls';
import { verifyClientChainInHandshake } from '../native/index.js';

const log = logger('hbone');

/** ztunnel's numbers (reference/istio-protocols.md 1.7). */
export const HBONE_STREAM_WINDOW = 4 * 1024 * 1024;
export const HBONE_CONNECTION_WINDOW = 16 * 1024 * 1024;
export const HBONE_MAX_FRAME_SIZE = 1024 * 1024;
export const HBONE_SERVER_MAX_STREAMS = 200;
export const HBONE_SERVER_MAX_HEADER_LIST = 64 * 1024;

export interface ConnectRequest {
  stream: http2.ServerHttp2Stream;
  /** the parsed :authority, already checked to be one of this pod's IPs */
  target: SocketAddr;
  authority: string;
  peer: Identity;
  peerId: string;
  /** the TCP peer of the TLS connection (the client pod's IP inside the mesh) */
  peerAddr: SocketAddr;
  forwardedFor?: SocketAddr | undefined;
  /** the service FQDN the source meant (forwarded host=), informational */
  forwardedHost?: string | undefined;
  baggage?: string | undefined;
}

export interface HboneServerOptions {
  /** key, cert and ca of this pod, as TlsContexts.serverOptions gives them */
  tls: tls.SecureContextOptions;
  trustDomain: string;
  isLocalIp(ip: string): boolean;
  onConnect(req: ConnectRequest): void;
  telemetry: Telemetry;
  /** this pod, for labels on failures */
  local(): PeerInfo;
  handshakeTimeoutMs?: number;
}

export type RejectReason =
  | 'tls_handshake'
  | 'handshake_timeout'
  | 'peer_identity'
  | 'peer_certificate'
  | 'alpn'
  | 'http2_session'
  | 'stream_flood'
  | 'bad_method'
  | 'bad_authority'
  | 'wrong_destination';

interface SessionFacts {
  peer: Identity;
  peerId: string;
  peerAddr: SocketAddr;
  /** streams the peer reset before we answered, in the current window */
  earlyResets: number;
  windowStart: number;
}

/**
 * Rapid-reset guard (CVE-2023-44487 style): a session whose peer resets this many streams
 * before they are answered within EARLY_RESET_WINDOW_MS gets GOAWAY(ENHANCE_YOUR_CALM). Our own
 * client only cancels a stream when its app gave up while connecting, far below this.
 */
export const EARLY_RESET_LIMIT = 50;
export const EARLY_RESET_WINDOW_MS = 10_000;

/**
 * Answers a CONNECT with a final non-200 status and ends the stream. The request side is then
 * reset with NO_ERROR (RFC 9113 8.1: the server needs no more of it); leaving it half-open
 * keeps a pending shutdown in Node's http2 that never completes once the peer goes away.
 */
export function refuseStream(stream: http2.ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.headersSent) return;
  try {
    stream.respond({ ':status': status }, { endStream: true });
    setImmediate(() => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
  } catch {
    stream.destroy();
  }
}

let warnedNoAlert = false;

/** Why native in-handshake verification refused a client ('CERT_HAS_EXPIRED', 'TRUST_DOMAIN', …), and its detail, from the error text. */
function nativeRefusal(err: Error): { reason: string; detail: string } | undefined {
  const m = /weft-verify=([A-Z_0-9]+) \((.*)\)/.exec(err.message);
  return m ? { reason: m[1]!, detail: m[2]! } : undefined;
}

/**
 * TLS settings of every server context: TLS 1.3 only, and no resumption (as ztunnel), so every
 * connection proves its identity with a full handshake. Node ignores sessionTimeout: 0; without
 * tickets (and with no 'resumeSession' handler) nothing can resume. The native in-handshake
 * check also turns tickets and the session cache off in OpenSSL.
 */
const SERVER_TLS_OPTIONS = { ...BASE_TLS_OPTIONS, secureOptions: constants.SSL_OP_NO_TICKET } as const;

export class HboneServer {
  readonly server: http2.Http2SecureServer;
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionFacts>();
  private readonly draining = new WeakSet<http2.ServerHttp2Session>();
  /** whether a client whose chain fails verification gets a TLS alert (needs the native addon) */
  alertsOnBadChain = false;
  /** the most recent refusal, for diagnostics (admin, tests) */
  lastRejection?: { reason: RejectReason; error: string };

  constructor(private readonly opts: HboneServerOptions) {
    this.server = http2.createSecureServer({
      ...opts.tls,
      ...SERVER_TLS_OPTIONS,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
      allowHTTP1: false,
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      settings: {
        initialWindowSize: HBONE_STREAM_WINDOW,
        maxConcurrentStreams: HBONE_SERVER_MAX_STREAMS,
        maxHeaderListSize: HBONE_SERVER_MAX_HEADER_LIST,
        maxFrameSize: HBONE_MAX_FRAME_SIZE,
        enablePush: false,
      },
      maxSessionMemory: 64,
      unknownProtocolTimeout: 1000,
    });
    this.verifyInHandshake();
    this.server.on('session', (s) => this.onSession(s));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      // In-handshake verification fails the handshake with an alert and puts its reason in the
      // error text; Node's own after-handshake check (no addon) sets authorizationError.
      const native = nativeRefusal(err);
      if (native && (native.reason === 'TRUST_DOMAIN' || native.reason === 'IDENTITY')) return this.reject('peer_identity', 'IDENTITY_ERROR', native.detail, socket);
      const verify = (socket as TLSSocket & { authorizationError?: string }).authorizationError ?? native?.reason;
      if (verify) return this.reject('peer_certificate', 'TLS_FAILURE', `client certificate rejected: ${verify}`, socket);
      const timeout = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
      this.reject(timeout ? 'handshake_timeout' : 'tls_handshake', 'TLS_FAILURE', err.message.trim(), socket);
    });
    this.server.on('unknownProtocol', (socket: TLSSocket) => {
      this.reject('alpn', 'H2_HANDSHAKE_FAILURE', `the client did not negotiate ALPN h2 (got ${socket.alpnProtocol || 'none'})`, socket);
      socket.destroy();
    });
  }

  /** Hands an accepted TCP connection to the TLS server (the listener lives in PodProxy). */
  accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.server.emit('connection', socket);
  }

  /** Certificate rotation: new handshakes use the new chain, established sessions carry on. */
  setSecureContext(tlsOptions: tls.SecureContextOptions): void {
    this.server.setSecureContext({ ...tlsOptions, ...SERVER_TLS_OPTIONS });
    this.verifyInHandshake();
  }

  /**
   * Client chains are verified inside the handshake so a refused client gets the TLS alert
   * (certificate_expired, unknown_ca, ...). Without the addon Node's after-handshake check
   * still refuses it, by closing the connection without an alert.
   */
  private verifyInHandshake(): void {
    const creds = (this.server as unknown as { _sharedCreds?: tls.SecureContext })._sharedCreds;
    try {
      if (!creds) throw new Error('the TLS server has no shared SecureContext (_sharedCreds)');
      verifyClientChainInHandshake(creds, this.opts.trustDomain);
      this.alertsOnBadChain = true;
    } catch (err) {
      this.alertsOnBadChain = false;
      if (!warnedNoAlert) {
        warnedNoAlert = true;
        log.warn({ err: (err as Error).message }, 'client certificates are verified after the TLS handshake: refused clients get no TLS alert');
      }
    }
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The live inbound HTTP/2 sessions (admin, drain). */
  sessionList(): http2.ServerHttp2Session[] {
    return [...this.sessions.keys()];
  }

  /**
   * Graceful shutdown in RFC 9113 6.8 order: a GOAWAY that still admits every stream (last id
   * 2^31-1), so a stream the peer opens while it is in flight is not refused, then after
   * `graceMs` the final GOAWAY with the last processed stream; streams in flight finish and the
   * session closes when they have. Idempotent.
   */
  async drain(graceMs = 500): Promise<void> {
    const live = this.sessionList().filter((s) => !s.closed && !s.destroyed);
    const fresh = live.filter((s) => !this.draining.has(s));
    for (const s of fresh) {
      this.draining.add(s);
      try {
        s.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
      } catch {
        /* closing anyway */
      }
    }
    if (fresh.length) await new Promise((r) => setTimeout(r, graceMs));
    for (const s of live) if (!s.closed && !s.destroyed) s.close();
  }

  close(): void {
    for (const s of this.sessions.keys()) s.destroy();
    this.sessions.clear();
  }

  private reject(reason: RejectReason, flag: 'TLS_FAILURE' | 'IDENTITY_ERROR' | 'H2_HANDSHAKE_FAILURE' | undefined, error: string, from?: Socket | SocketAddr, peer?: string): void {
    this.opts.telemetry.rejections.inc({ reason });
    this.lastRejection = { reason, error };
    if (flag) this.opts.telemetry.failed('destination', this.opts.local(), flag);
    let addr: string | undefined;
    try {
      if (from && 'ip' in from) addr = formatAddr(from);
      else if (from?.remoteAddress) addr = formatAddr({ ip: normalizeIp(from.remoteAddress), port: from.remotePort ?? 0 });
    } catch {
      /* a session's socket proxy throws once the session is gone */
    }
    log.warn({ reason, response_flags: flag ?? '-', 'src.addr': addr, 'src.identity': peer, error }, 'HBONE connection refused');
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    let peer: Identity;
    try {
      peer = peerIdentity(socket, this.opts.trustDomain);
    } catch (err) {
      const san = uriSans(socket.getPeerX509Certificate?.()?.subjectAltName).join(',');
      this.reject('peer_identity', 'IDENTITY_ERROR', (err as Error).message, socket, san || undefined);
      session.destroy();
      return;
    }
    try {
      session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
    } catch {
      /* the session went away during setup */
    }
    const facts: SessionFacts = {
      peer,
      peerId: formatSpiffeId(peer),
      peerAddr: { ip: normalizeIp(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 },
      earlyResets: 0,
      windowStart: Date.now(),
    };
    this.sessions.set(session, facts);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: NodeJS.ErrnoException) => {
      // A peer that simply went away is not a refusal.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE') {
        log.debug({ 'src.addr': formatAddr(facts.peerAddr), err: err.code }, 'HBONE peer went away');
        return;
      }
      // Flood protection (rapid reset, invalid frames) and protocol errors end the session.
      this.reject('http2_session', 'H2_HANDSHAKE_FAILURE', `${err.code ?? ''} ${err.message}`.trim(), facts.peerAddr, facts.peerId);
    });
    session.on('frameError', () => {
      /* reported via the stream or session error */
    });
  }

  private countEarlyReset(session: http2.ServerHttp2Session, facts: SessionFacts): void {
    const now = Date.now();
    if (now - facts.windowStart > EARLY_RESET_WINDOW_MS) {
      facts.windowStart = now;
      facts.earlyResets = 0;
    }
    if (++facts.earlyResets !== EARLY_RESET_LIMIT) return;
    this.reject('stream_flood', 'H2_HANDSHAKE_FAILURE', `${EARLY_RESET_LIMIT} streams reset before an answer within ${EARLY_RESET_WINDOW_MS} ms`, facts.peerAddr, facts.peerId);
    try {
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      /* already closing */
    }
    session.destroy();
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const facts = this.sessions.get(stream.session as http2.ServerHttp2Session);
    if (!facts) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.on('error', () => {
      /* surfaced by the relay or the onConnect handler */
    });
    const session = stream.session as http2.ServerHttp2Session;
    const resetEarly = () => !stream.headersSent && stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
    if (stream.destroyed || stream.closed) {
      // Reset before we even saw it: nothing to answer.
      if (resetEarly()) this.countEarlyReset(session, facts);
      return;
    }
    stream.on('close', () => {
      if (resetEarly()) this.countEarlyReset(session, facts);
    });
    const method = headers[':method'];
    if (method !== 'CONNECT') {
      this.reject('bad_method', undefined, `method ${String(method).slice(0, 20)} is not CONNECT`, facts.peerAddr, facts.peerId);
      return refuseStream(stream, 400);
    }
    const authority = headers[':authority'] ?? '';
    let target: SocketAddr;
    try {
      target = parseAuthority(authority);
    } catch (err) {
      this.reject('bad_authority', undefined, (err as BadRequestError).message, facts.peerAddr, facts.peerId);
      return refuseStream(stream, 400);
    }
    if (!this.opts.isLocalIp(target.ip)) {
      this.reject('wrong_destination', undefined, `:authority ${authority} is not an address of this pod`, facts.peerAddr, facts.peerId);
      return refuseStream(stream, 400);
    }
    const baggage = headers.baggage;
    this.opts.onConnect({
      stream,
      target,
      authority,
      peer: facts.peer,
      peerId: facts.peerId,
      peerAddr: facts.peerAddr,
      forwardedFor: parseForwardedFor(headers.forwarded),
      forwardedHost: parseForwardedHost(headers.forwarded),
      baggage: Array.isArray(baggage) ? baggage.join(',') : baggage,
    });
  }
}
