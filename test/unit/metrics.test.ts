import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Registry } from '../../agent/src/telemetry/registry.js';
import { Telemetry } from '../../agent/src/telemetry/telemetry.js';
import { TCP_LABELS } from '../../agent/src/telemetry/tcp-metrics.js';
import { accessLogFields } from '../../agent/src/telemetry/access-log.js';
import { startMetricsServer } from '../../agent/src/telemetry/metrics-server.js';
import type { ConnectionInfo } from '../../agent/src/telemetry/connection-info.js';

const info: ConnectionInfo = {
  direction: 'inbound',
  srcAddr: '198.18.1.10:40000',
  dstAddr: '198.18.2.10:8080',
  hboneAddr: '198.18.2.10:8080',
  src: { workload: 'frontend', namespace: 'web', identity: 'spiffe://cluster.local/ns/web/sa/frontend', app: 'frontend', version: 'v1', cluster: 'Kubernetes' },
  dst: { workload: 'cart', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/cart' },
  service: { hostname: 'cart.shop.svc.cluster.local', namespace: 'shop', name: 'cart' },
  security: 'mutual_tls',
};

function series(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + '{'))
    .map((l) => {
      const m = /^[^{]+\{(.*)\} (\S+)$/.exec(l)!;
      const labels: Record<string, string> = {};
      for (const kv of m[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]!] = kv[2]!;
      return { labels, value: Number(m[2]) };
    });
}

describe('telemetry', () => {
  it("exports Istio's TCP metrics with Istio's label names and values", () => {
    const t = new Telemetry({ processMetrics: false });
    t.opened(info);
    t.closed(info, { bytesSent: 100, bytesRecv: 2500, durationMs: 12, responseFlags: '-' });
    t.opened(info);
    t.closed(info, { bytesSent: 0, bytesRecv: 0, durationMs: 1, responseFlags: 'DENY', error: 'denied' });
    const text = t.metricsText();
    const opened = series(text, 'istio_tcp_connections_opened_total');
    assert.equal(opened.length, 1);
    assert.deepEqual(Object.keys(opened[0]!.labels), [...TCP_LABELS]);
    const l = opened[0]!.labels;
    assert.equal(l.reporter, 'destination');
    assert.equal(l.source_principal, 'spiffe://cluster.local/ns/web/sa/frontend');
    assert.equal(l.source_workload, 'frontend');
    assert.equal(l.source_workload_namespace, 'web');
    assert.equal(l.source_app, 'frontend');
    assert.equal(l.source_version, 'v1');
    assert.equal(l.source_cluster, 'Kubernetes');
    assert.equal(l.destination_service, 'cart.shop.svc.cluster.local');
    assert.equal(l.destination_service_name, 'cart');
    assert.equal(l.destination_service_namespace, 'shop');
    assert.equal(l.destination_workload, 'cart');
    assert.equal(l.destination_principal, 'spiffe://cluster.local/ns/shop/sa/cart');
    assert.equal(l.destination_app, 'unknown', 'missing metadata is "unknown", as Istio reports it');
    assert.equal(l.request_protocol, 'tcp');
    assert.equal(l.connection_security_policy, 'mutual_tls');
    assert.equal(opened[0]!.value, 2);
    const closed = series(text, 'istio_tcp_connections_closed_total');
    assert.deepEqual(closed.map((s) => [s.labels.response_flags, s.value]).sort(), [['-', 1], ['DENY', 1]]);
    // Istio's convention: "sent" is the response direction (destination → source).
    assert.equal(series(text, 'istio_tcp_sent_bytes_total')[0]!.value, 2500);
    assert.equal(series(text, 'istio_tcp_received_bytes_total')[0]!.value, 100);
    assert.match(text, /# TYPE istio_tcp_connections_opened_total counter/);
  });

  it('reports the source side with reporter="source"', () => {
    const t = new Telemetry({ processMetrics: false });
    t.opened({ ...info, direction: 'outbound' });
    assert.equal(series(t.metricsText(), 'istio_tcp_connections_opened_total')[0]!.labels.reporter, 'source');
  });

  it('escapes label values and refuses decreasing counters', () => {
    const r = new Registry();
    const c = r.counter('x_total', 'help with \\ and\nnewline', ['v']);
    c.inc({ v: 'a"b\\c\nd' }, 2);
    assert.match(r.render(), /x_total\{v="a\\"b\\\\c\\nd"\} 2/);
    assert.match(r.render(), /# HELP x_total help with \\\\ and\\nnewline/);
    assert.throws(() => c.inc({ v: 'a' }, -1), RangeError);
  });

  it('writes access-log fields with ztunnel names', () => {
    const f = accessLogFields(info, { bytesSent: 5, bytesRecv: 7, durationMs: 13.4, responseFlags: '-' });
    assert.equal(f['src.addr'], '198.18.1.10:40000');
    assert.equal(f['src.identity'], 'spiffe://cluster.local/ns/web/sa/frontend');
    assert.equal(f['dst.hbone_addr'], '198.18.2.10:8080');
    assert.equal(f['dst.service'], 'cart.shop.svc.cluster.local');
    assert.equal(f['dst.identity'], 'spiffe://cluster.local/ns/shop/sa/cart');
    assert.equal(f.direction, 'inbound');
    assert.equal(f.bytes_sent, 5);
    assert.equal(f.bytes_recv, 7);
    assert.equal(f.duration, '13ms');
    assert.equal(f.error, undefined);
  });

  it('serves /metrics with process metrics for Prometheus', async () => {
    const t = new Telemetry();
    t.opened(info);
    const srv = await startMetricsServer({ registry: t.registry, host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain; version=0.0.4/);
      const body = await res.text();
      assert.match(body, /istio_tcp_connections_opened_total\{reporter="destination"/);
      assert.match(body, /process_resident_memory_bytes \d+/);
      assert.match(body, /process_cpu_seconds_total [\d.]+/);
      const missing = await fetch(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/nope`);
      assert.equal(missing.status, 404);
    } finally {
      srv.close();
      await once(srv, 'close');
    }
  });
});
