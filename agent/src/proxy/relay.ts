// Copies bytes both ways between two duplex streams (net.Socket ↔ http2 stream, or two
// sockets) with back-pressure and per-direction half-close: a FIN read on one side becomes an
// end() on the other, and the relay finishes only when both sides have closed. An error or a
// reset on either side tears both down (a reset, not a FIN, so the peer sees the failure).
// Per chunk the only JS work is a write, a length addition and, when the writer is full, a pause;
// in bulk, the chunks of one event-loop iteration are corked into one write.
import type { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import { constants as h2c, type Http2Stream } from 'node:http2';

export interface RelayResult {
  /** bytes read from `a` and written to `b` */
  aToB: number;
  /** bytes read from `b` and written to `a` */
  bToA: number;
  durationMs: number;
  /** the first error seen on either side; undefined for a clean close */
  error?: Error | undefined;
}

export interface RelayHandle {
  readonly aToB: number;
  readonly bToA: number;
  /** Tears both sides down (reset), finishing the relay with `reason` as its error. */
  abort(reason: Error): void;
}

// http2 does not export its stream class as a value.
function isH2Stream(s: Duplex): s is Duplex & Http2Stream {
  return 'rstCode' in s && 'session' in s && typeof (s as { close?: unknown }).close === 'function';
}

/** Resets a stream the way its peer will see as a failure rather than an orderly close. */
export function resetStream(s: Duplex): void {
  if (s.destroyed) return;
  if (s instanceof Socket) {
    // RST instead of FIN; only possible on a connected TCP handle that has not been shut down:
    // after end() libuv refuses the reset (EINVAL) and Node then never closes the handle (an fd
    // leak, and a process that cannot exit). A FIN already went out then, so destroy() suffices.
    if (typeof s.resetAndDestroy === 'function' && (s as { _handle?: unknown })._handle && !s.writableEnded && !s.connecting) {
      try {
        s.resetAndDestroy();
        return;
      } catch {
        /* fall through to destroy */
      }
    }
    s.destroy();
  } else if (isH2Stream(s)) {
    // RFC 9113 8.5: a TCP error on a CONNECT tunnel is signalled with CONNECT_ERROR.
    s.close(h2c.NGHTTP2_CONNECT_ERROR);
  } else {
    s.destroy();
  }
}

/**
 * Bytes a relay direction may hold in a socket writer's buffer before it pauses its reader.
 * Higher than a stream's default high-water mark (16 KiB) so that a batch of chunks corked
 * together is not cut short by a pause after the first one. Towards an HTTP/2 stream the reader
 * pauses at the stream's own mark: a peer that keeps its window shut must not make us hold
 * 256 KiB for each of its up to 200 streams.
 */
export const RELAY_MAX_BUFFERED = 256 * 1024;

/** A chunk at least this large starts a corked batch; smaller ones (requests, replies) go at once. */
const BULK_CHUNK = 4096;
/** A batch that carried this much keeps the next batch corked from its first chunk. */
const BULK_BATCH = 16 * 1024;

function pump(src: Duplex, dst: Duplex, add: (n: number) => void): void {
  const pauseAt = isH2Stream(dst) ? 0 : RELAY_MAX_BUFFERED;
  // In bulk, chunks that arrive in one event-loop iteration (several HTTP/2 DATA frames decoded
  // from one TLS read, a frame split across two TLS records) are corked and leave in one writev
  // in the check phase, instead of one syscall (and one TCP push) per piece. Not
  // process.nextTick: Node drains that queue after every native callback, i.e. after every
  // chunk. Small chunks of an interactive exchange are written at once, as latency wants.
  let corked = false;
  let bulk = false;
  let batch = 0;
  const uncork = () => {
    corked = false;
    bulk = batch >= BULK_BATCH;
    batch = 0;
    dst.uncork();
  };
  src.on('data', (chunk: Buffer) => {
    add(chunk.length);
    if (!corked && (bulk || chunk.length >= BULK_CHUNK)) {
      corked = true;
      dst.cork();
      setImmediate(uncork);
    }
    if (corked) batch += chunk.length;
    // write() says false once the buffer passes the writer's high-water mark; 'drain' follows
    // either way, so pausing can wait until the buffer is really large.
    if (!dst.write(chunk) && dst.writableLength >= pauseAt) src.pause();
  });
  dst.on('drain', () => src.resume());
  // 'end' and 'close' fire at most once: plain listeners, since each once() costs a wrapper
  // object and a bound function for as long as the connection lives (10,000 idle ones add up).
  src.on('end', () => {
    if (!dst.destroyed && !dst.writableEnded) dst.end();
  });
}

/**
 * Relays between `a` and `b` until both have closed; `done` runs exactly once.
 * Both streams must have been created with allowHalfOpen (net) — http2 streams always are.
 */
export function relay(a: Duplex, b: Duplex, done: (r: RelayResult) => void): RelayHandle {
  const start = performance.now();
  let aToB = 0;
  let bToA = 0;
  let error: Error | undefined;
  let closed = 0;
  let finished = false;

  for (const s of [a, b]) if (s instanceof Socket) s.setNoDelay(true);

  const finish = () => {
    if (finished) return;
    finished = true;
    done({ aToB, bToA, durationMs: performance.now() - start, error });
  };
  const fail = (err: Error) => {
    error ??= err;
    resetStream(a);
    resetStream(b);
  };
  const onClose = (s: Duplex, other: Duplex) => () => {
    closed++;
    // A side that closed without finishing both directions was torn down: the other must go too.
    const clean = s.readableEnded && (s.writableFinished || s.writableEnded);
    if (!clean && !other.destroyed) {
      error ??= streamCloseError(s);
      resetStream(other);
    }
    if (closed === 2) finish();
  };

  pump(a, b, (n) => (aToB += n));
  pump(b, a, (n) => (bToA += n));
  a.on('error', fail);
  b.on('error', fail);
  a.on('close', onClose(a, b));
  b.on('close', onClose(b, a));
  // A side already torn down before the relay started may never emit 'close' to us again.
  if (a.destroyed || b.destroyed) {
    fail(Object.assign(new Error('one side was closed before the relay started'), { code: 'ECONNRESET' }));
    setImmediate(finish);
  }

  return {
    get aToB() {
      return aToB;
    },
    get bToA() {
      return bToA;
    },
    abort(reason: Error) {
      fail(reason);
    },
  };
}

function streamCloseError(s: Duplex): Error {
  if (isH2Stream(s) && s.rstCode !== undefined && s.rstCode !== h2c.NGHTTP2_NO_ERROR) {
    return Object.assign(new Error(`HTTP/2 stream reset (code ${s.rstCode})`), { code: 'ERR_HTTP2_STREAM_RESET' });
  }
  return Object.assign(new Error('connection reset by peer'), { code: 'ECONNRESET' });
}
