// Every proxied connection is a ConnectionRecord from the moment it is accepted until its
// relay finishes: counted opened/closed in metrics, written once to the access log, listed for
// the admin endpoint, and re-checked against policy when the mesh changes.
import { threadId } from 'node:worker_threads';
import type { Duplex } from 'node:stream';
import { relay, type RelayHandle } from './relay.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { ConnectionInfo, ResponseFlag } from '../telemetry/connection-info.js';
import { logger } from '../common/log.js';
import { WeftError } from '../common/errors.js';

const log = logger('proxy');

export const POLICY_CHANGE_REASON = 'connection closed due to policy change';

export class PolicyChangeError extends WeftError {
  constructor(detail: string) {
    super('WEFT_E_POLICY_LATE_REJECTION', `${POLICY_CHANGE_REASON} (${detail})`);
  }
}

export interface ConnectionSnapshot extends ConnectionInfo {
  id: number;
  /** the data-plane thread that holds it (0: the agent's main thread) */
  thread: number;
  state: 'connecting' | 'established';
  startedAt: string;
  durationMs: number;
  bytesSent: number;
  bytesRecv: number;
}

/** Returns why the connection is no longer allowed, or undefined while it still is. */
export type Recheck = () => string | undefined;

// Ids stay unique across the agent's data-plane threads (each thread has its own tracker).
let nextId = threadId * 2 ** 32 + 1;

export class ConnectionRecord {
  readonly id = nextId++;
  private readonly started = performance.now();
  private readonly startedAt = Date.now();
  private handle?: RelayHandle;
  private done = false;
  private aborter?: (err: Error) => void;
  /** the flag reported when the connection ends (set before fail/relay when known) */
  flag: ResponseFlag = '-';

  constructor(
    private readonly tracker: ConnectionTracker,
    readonly info: ConnectionInfo,
    /** for connections whose destination policy this proxy enforces */
    readonly recheck?: Recheck,
    /** a second view reported alongside (same-node: the source side's outbound record) */
    readonly mirror?: ConnectionInfo,
  ) {
    tracker.telemetry.opened(info);
    if (mirror) tracker.telemetry.opened(mirror);
    tracker.add(this);
  }

  get finished(): boolean {
    return this.done;
  }

  /** While connecting: what to do if the connection must be torn down (e.g. a policy change). */
  onAbort(fn: (err: Error) => void): void {
    this.aborter = fn;
  }

  /** Relays `src` (the side that connected to us) with `dst`, finishing the record at the end. */
  relay(src: Duplex, dst: Duplex): void {
    this.handle = relay(src, dst, (r) =>
      this.finish({ bytesSent: r.aToB, bytesRecv: r.bToA, error: r.error ? r.error.message : undefined }),
    );
  }

  /** Ends a connection that never reached the relay. */
  fail(flag: ResponseFlag, error: Error | string): void {
    this.flag = flag;
    this.finish({ bytesSent: 0, bytesRecv: 0, error: typeof error === 'string' ? error : error.message });
  }

  abort(err: Error): void {
    if (this.done) return;
    if (this.handle) this.handle.abort(err);
    else if (this.aborter) this.aborter(err);
    else this.fail(this.flag, err);
  }

  snapshot(): ConnectionSnapshot {
    return {
      id: this.id,
      thread: threadId,
      ...this.info,
      state: this.handle ? 'established' : 'connecting',
      startedAt: new Date(this.startedAt).toISOString(),
      durationMs: Math.round(performance.now() - this.started),
      bytesSent: this.handle?.aToB ?? 0,
      bytesRecv: this.handle?.bToA ?? 0,
    };
  }

  private finish(r: { bytesSent: number; bytesRecv: number; error?: string | undefined }): void {
    if (this.done) return;
    this.done = true;
    this.tracker.remove(this);
    const outcome = {
      bytesSent: r.bytesSent,
      bytesRecv: r.bytesRecv,
      durationMs: performance.now() - this.started,
      responseFlags: this.flag,
      error: r.error,
    };
    this.tracker.telemetry.closed(this.info, outcome);
    if (this.mirror) this.tracker.telemetry.closed(this.mirror, outcome);
  }
}

export class ConnectionTracker {
  private readonly live = new Set<ConnectionRecord>();

  constructor(readonly telemetry: Telemetry) {}

  open(info: ConnectionInfo, recheck?: Recheck, mirror?: ConnectionInfo): ConnectionRecord {
    return new ConnectionRecord(this, info, recheck, mirror);
  }

  add(c: ConnectionRecord): void {
    this.live.add(c);
  }

  remove(c: ConnectionRecord): void {
    this.live.delete(c);
  }

  get size(): number {
    return this.live.size;
  }

  list(): ConnectionSnapshot[] {
    return [...this.live].map((c) => c.snapshot());
  }

  /** Re-evaluates policy for every enforced connection; closes those no longer allowed. */
  recheckAll(): number {
    let closed = 0;
    for (const c of [...this.live]) {
      if (!c.recheck || c.finished) continue;
      const why = c.recheck();
      if (why === undefined) continue;
      closed++;
      log.warn({ id: c.id, 'src.addr': c.info.srcAddr, 'dst.addr': c.info.dstAddr, 'src.identity': c.info.src.identity, reason: POLICY_CHANGE_REASON, detail: why }, POLICY_CHANGE_REASON);
      c.flag = 'DENY';
      c.abort(new PolicyChangeError(why));
    }
    return closed;
  }

  /** Aborts every live connection (shutdown). */
  closeAll(reason: Error): void {
    for (const c of [...this.live]) c.abort(reason);
  }
}
