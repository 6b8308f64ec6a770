// Istio's stable TCP metrics, with the label names ztunnel exports (reference/istio-protocols.md
// 6.1), so existing Istio dashboards read Weft unchanged. Byte counters follow Istio's
// convention for both reporters: "sent" is what the destination sent back (response direction),
// "received" what the source sent (istio/istio#32399).
import type { Counter, Gauge, Labels, Registry } from './registry.js';
import type { ConnectionInfo, ConnectionOutcome, PeerInfo, ResponseFlag } from './connection-info.js';

export const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

const UNKNOWN = 'unknown';
const v = (s: string | undefined) => (s === undefined || s === '' ? UNKNOWN : s);

function peerLabels(prefix: 'source' | 'destination', p: PeerInfo, out: Labels): void {
  out[`${prefix}_workload`] = v(p.workload);
  out[`${prefix}_canonical_service`] = v(p.app);
  out[`${prefix}_canonical_revision`] = v(p.version);
  out[`${prefix}_workload_namespace`] = v(p.namespace);
  out[`${prefix}_principal`] = v(p.identity);
  out[`${prefix}_app`] = v(p.app);
  out[`${prefix}_version`] = v(p.version);
  out[`${prefix}_cluster`] = v(p.cluster);
}

export function tcpLabels(info: ConnectionInfo, flags: ResponseFlag): Labels {
  const l: Labels = { reporter: info.direction === 'inbound' ? 'destination' : 'source' };
  peerLabels('source', info.src, l);
  l.destination_service = v(info.service?.hostname);
  l.destination_service_namespace = v(info.service?.namespace);
  l.destination_service_name = v(info.service?.name);
  peerLabels('destination', info.dst, l);
  l.request_protocol = 'tcp';
  l.response_flags = flags;
  l.connection_security_policy = info.security;
  return l;
}

export class TcpMetrics {
  readonly opened: Counter;
  readonly closed: Counter;
  readonly sent: Counter;
  readonly received: Counter;
  readonly failed: Counter;
  readonly open: Gauge;

  constructor(registry: Registry) {
    this.opened = registry.counter('istio_tcp_connections_opened_total', 'The total number of TCP connections opened', TCP_LABELS);
    this.closed = registry.counter('istio_tcp_connections_closed_total', 'The total number of TCP connections closed', TCP_LABELS);
    this.sent = registry.counter('istio_tcp_sent_bytes_total', 'The size of total bytes sent during response in case of a TCP connection', TCP_LABELS);
    this.received = registry.counter('istio_tcp_received_bytes_total', 'The size of total bytes received during request in case of a TCP connection', TCP_LABELS);
    this.failed = registry.counter(
      'istio_tcp_connections_failed_total',
      'The total number of connections that failed before any stream was proxied (TLS, HTTP/2)',
      ['reporter', 'destination_workload', 'destination_workload_namespace', 'response_flags'],
    );
    this.open = registry.gauge('istio_tcp_sockets_open', 'The number of proxied connections open now', ['reporter']);
  }

  connectionOpened(info: ConnectionInfo): void {
    this.opened.inc(tcpLabels(info, '-'));
    this.open.inc({ reporter: info.direction === 'inbound' ? 'destination' : 'source' });
  }

  /** Every opened connection is closed exactly once, refused ones too (with their flag). */
  connectionClosed(info: ConnectionInfo, outcome: ConnectionOutcome): void {
    const l = tcpLabels(info, outcome.responseFlags);
    this.closed.inc(l);
    if (outcome.bytesRecv) this.sent.inc(l, outcome.bytesRecv);
    if (outcome.bytesSent) this.received.inc(l, outcome.bytesSent);
    this.open.dec({ reporter: l.reporter! });
  }

  connectionFailed(reporter: 'source' | 'destination', dst: PeerInfo, flags: ResponseFlag): void {
    this.failed.inc({
      reporter,
      destination_workload: v(dst.workload),
      destination_workload_namespace: v(dst.namespace),
      response_flags: flags,
    });
  }
}
