// The agent's telemetry: one registry (Istio TCP metrics + process metrics) and the access log.
import { Registry, type Counter } from './registry.js';
import { TcpMetrics } from './tcp-metrics.js';
import { AccessLog } from './access-log.js';
import { registerProcessMetrics } from './process-metrics.js';
import type { ConnectionInfo, ConnectionOutcome, PeerInfo, ResponseFlag } from './connection-info.js';
import type { Logger } from '../common/log.js';

export interface TelemetryOptions {
  registry?: Registry;
  accessLog?: Logger;
  processMetrics?: boolean;
}

export class Telemetry {
  readonly registry: Registry;
  readonly tcp: TcpMetrics;
  readonly accessLog: AccessLog;
  /** HBONE connections or streams refused before any proxying, by reason (bad request, TLS, …) */
  readonly rejections: Counter;

  constructor(opts: TelemetryOptions = {}) {
    this.registry = opts.registry ?? new Registry();
    this.tcp = new TcpMetrics(this.registry);
    this.accessLog = new AccessLog(opts.accessLog);
    this.rejections = this.registry.counter('weft_hbone_rejections_total', 'HBONE connections or streams refused before proxying, by reason', ['reason']);
    if (opts.processMetrics ?? true) registerProcessMetrics(this.registry);
  }

  opened(info: ConnectionInfo): void {
    this.tcp.connectionOpened(info);
  }

  /** Counts the close and writes the access-log line. */
  closed(info: ConnectionInfo, outcome: ConnectionOutcome): void {
    this.tcp.connectionClosed(info, outcome);
    this.accessLog.write(info, outcome);
  }

  failed(reporter: 'source' | 'destination', dst: PeerInfo, flags: ResponseFlag): void {
    this.tcp.connectionFailed(reporter, dst, flags);
  }

  metricsText(): string {
    return this.registry.render();
  }
}
