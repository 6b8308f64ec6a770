// Outbound HBONE: mTLS HTTP/2 connections to <pod IP>:15008, pooled by (source identity,
// destination identity, destination address, source IP) like ztunnel's WorkloadKey. A
// connection carries at most maxStreams CONNECT streams (checked at checkout; beyond it a new
// connection opens), is closed after idleMs without streams, and is PINGed so a dead peer is
// found. The TLS client presents the source's certificate from one reused SecureContext and
// accepts the server only if its URI SAN is the expected identity (no hostname check, no SNI).
import http2 from 'node:http2';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { logger } from '../common/log.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import { certIdentity } from './peer-identity.js';
import { BASE_TLS_OPTIONS, type TlsContexts } from './tls-contexts.js';
import { HBONE_CONNECTION_WINDOW, HBONE_MAX_FRAME_SIZE, HBONE_STREAM_WINDOW } from './hbone-server.js';
import { formatAddr, type SocketAddr } from './addresses.js';
import { HboneConnectError, HboneStatusError, PeerIdentityError } from './errors.js';

const log = logger('hbone-pool');

export interface PoolKey {
  srcIdentity: string;
  dstIdentity: string;
  /** next hop, normally <pod IP>:15008 */
  dst: SocketAddr;
  /** the source pod's IP (connections leave from the pod's netns) */
  srcIp: string;
}

export interface HbonePoolOptions {
  maxStreamsPerConnection: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  connectTimeoutMs: number;
}

export const DEFAULT_POOL_OPTIONS: HbonePoolOptions = {
  maxStreamsPerConnection: 100,
  idleTimeoutMs: 5 * 60_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 20_000,
  connectTimeoutMs: 10_000,
};

/** Creates the TCP connection for a pooled HBONE connection (in a pod's netns in production). */
export type TcpDialer = (dst: SocketAddr) => Promise<Socket>;

export interface ConnectTarget {
  /** :authority, `podIP:port` */
  authority: string;
  headers?: Record<string, string>;
}

function keyString(k: PoolKey): string {
  return `${k.srcIdentity}|${k.dstIdentity}|${formatAddr(k.dst)}|${k.srcIp}`;
}

class PooledConnection {
  streams = 0;
  closing = false;
  session?: http2.ClientHttp2Session;
  readonly ready: Promise<http2.ClientHttp2Session>;
  private idleTimer?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;

  constructor(
    readonly key: PoolKey,
    private readonly pool: HbonePool,
    dial: TcpDialer,
  ) {
    this.ready = this.open(dial);
    this.ready.catch(() => this.pool.forget(this));
  }

  private async open(dial: TcpDialer): Promise<http2.ClientHttp2Session> {
    const { key } = this;
    const o = this.pool.options;
    const target = formatAddr(key.dst);
    let raw: Socket | undefined;
    try {
      raw = await dial(key.dst);
      raw.setNoDelay(true);
      const tlsSock = tls.connect({
        socket: raw,
        secureContext: this.pool.tls.clientContext(key.srcIdentity),
        ...BASE_TLS_OPTIONS,
        ALPNProtocols: ['h2'],
        rejectUnauthorized: true,
        // The server is identified by its URI SAN alone: no hostname check, no SNI.
        checkServerIdentity: (_host, cert) => {
          try {
            const got = formatSpiffeId(certIdentity(cert));
            if (got !== key.dstIdentity) return new PeerIdentityError(`server identity ${got} is not the expected ${key.dstIdentity}`);
          } catch (err) {
            return err as Error;
          }
          return undefined;
        },
      });
      const session = http2.connect(`https://${target}`, {
        createConnection: () => tlsSock,
        settings: {
          initialWindowSize: HBONE_STREAM_WINDOW,
          maxFrameSize: HBONE_MAX_FRAME_SIZE,
          maxHeaderListSize: 16 * 1024,
          enablePush: false,
        },
        maxSessionMemory: 64,
      });
      this.session = session;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${o.connectTimeoutMs} ms (maybe a NetworkPolicy is blocking HBONE port 15008)`)), o.connectTimeoutMs);
        session.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        session.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        session.once('close', () => {
          clearTimeout(timer);
          reject(new Error('the connection closed during the handshake'));
        });
      });
      session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
      session.on('error', (err) => log.debug({ target, err: err.message }, 'HBONE connection error'));
      session.once('goaway', () => {
        this.closing = true;
        this.pool.forget(this);
      });
      session.once('close', () => {
        this.closing = true;
        this.stopTimers();
        this.pool.forget(this);
      });
      this.startPing(session);
      if (this.streams === 0) this.armIdle();
      return session;
    } catch (err) {
      this.closing = true;
      this.session?.destroy();
      raw?.destroy();
      throw new HboneConnectError(target, err);
    }
  }

  private startPing(session: http2.ClientHttp2Session): void {
    const o = this.pool.options;
    this.pingTimer = setInterval(() => {
      if (session.closed || session.destroyed) return;
      const deadline = setTimeout(() => {
        log.warn({ target: formatAddr(this.key.dst) }, 'HBONE peer did not answer PING; closing the connection');
        session.destroy(new Error('HBONE keepalive timed out'));
      }, o.pingTimeoutMs);
      deadline.unref();
      try {
        session.ping(() => clearTimeout(deadline));
      } catch {
        clearTimeout(deadline);
      }
    }, o.pingIntervalMs);
    this.pingTimer.unref();
  }

  private stopTimers(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.idleTimer);
  }

  armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.streams === 0) this.close();
    }, this.pool.options.idleTimeoutMs);
    this.idleTimer.unref();
  }

  checkout(): void {
    this.streams++;
    clearTimeout(this.idleTimer);
  }

  release(): void {
    this.streams--;
    if (this.streams === 0 && !this.closing) this.armIdle();
  }

  close(): void {
    this.closing = true;
    this.stopTimers();
    this.pool.forget(this);
    this.session?.close();
  }

  destroy(): void {
    this.closing = true;
    this.stopTimers();
    this.session?.destroy();
  }
}

export class HbonePool {
  readonly options: HbonePoolOptions;
  private readonly conns = new Map<string, PooledConnection[]>();

  constructor(
    readonly tls: TlsContexts,
    options: Partial<HbonePoolOptions> = {},
  ) {
    this.options = { ...DEFAULT_POOL_OPTIONS, ...options };
  }

  /**
   * Opens a CONNECT stream to `target` over a pooled connection for `key`. Resolves once the
   * peer answered 200; rejects with HboneStatusError (other status) or HboneConnectError.
   */
  async connect(key: PoolKey, target: ConnectTarget, dial: TcpDialer, attempt = 0): Promise<http2.ClientHttp2Stream> {
    const conn = this.checkout(key, dial);
    // REFUSED_STREAM means the peer did not process the stream (RFC 9113 8.7): a draining peer
    // (agent restart) refuses streams that crossed its GOAWAY. Retry once on a new connection.
    const refused = (s: http2.ClientHttp2Stream) => s.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && attempt === 0;
    const retry = () => {
      conn.closing = true;
      this.forget(conn);
      return this.connect(key, target, dial, attempt + 1);
    };
    let session: http2.ClientHttp2Session;
    try {
      session = await conn.ready;
    } catch (err) {
      conn.release();
      throw err;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':method': 'CONNECT', ':authority': target.authority, ...target.headers }, { endStream: false });
    } catch (err) {
      conn.release();
      conn.closing = true;
      this.forget(conn);
      throw new HboneConnectError(formatAddr(key.dst), err);
    }
    stream.on('close', () => conn.release()); // fires once; on() keeps no once-wrapper per stream
    return new Promise((resolve, reject) => {
      const onResponse = (headers: http2.IncomingHttpHeaders) => {
        stream.off('error', onError);
        stream.off('close', onClose);
        const status = Number(headers[':status']);
        if (status === 200) return resolve(stream);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new HboneStatusError(status, target.authority));
      };
      const onError = (err: Error) => {
        stream.off('response', onResponse);
        stream.off('close', onClose);
        if (refused(stream)) return resolve(retry());
        reject(new HboneConnectError(formatAddr(key.dst), err));
      };
      const onClose = () => {
        stream.off('response', onResponse);
        stream.off('error', onError);
        if (refused(stream)) return resolve(retry());
        reject(new HboneConnectError(formatAddr(key.dst), new Error(`stream closed before a response (code ${stream.rstCode})`)));
      };
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClose);
    });
  }

  private checkout(key: PoolKey, dial: TcpDialer): PooledConnection {
    const k = keyString(key);
    let list = this.conns.get(k);
    if (!list) this.conns.set(k, (list = []));
    let conn = list.find((c) => !c.closing && c.streams < this.options.maxStreamsPerConnection);
    if (!conn) {
      conn = new PooledConnection(key, this, dial);
      list.push(conn);
    }
    conn.checkout();
    return conn;
  }

  /** Takes a connection out of the pool (it stays open for the streams it carries). */
  forget(conn: PooledConnection): void {
    const k = keyString(conn.key);
    const list = this.conns.get(k);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.conns.delete(k);
  }

  /** Connections per pool key, with their stream counts (admin, tests). */
  stats(): { key: string; streams: number[] }[] {
    return [...this.conns].map(([key, list]) => ({ key, streams: list.map((c) => c.streams) }));
  }

  get connectionCount(): number {
    let n = 0;
    for (const l of this.conns.values()) n += l.length;
    return n;
  }

  /** Closes every connection for which `pred` holds (e.g. a source pod that went away). */
  closeWhere(pred: (k: PoolKey) => boolean): void {
    for (const list of [...this.conns.values()]) for (const c of [...list]) if (pred(c.key)) c.close();
  }

  close(): void {
    for (const list of [...this.conns.values()]) for (const c of [...list]) c.destroy();
    this.conns.clear();
  }
}
