// Issue 5 end to end in the lab, through the real agents: enrolled pods talk cross-node and
// same-node through the mesh (HBONE/mTLS), the server sees the client pod's IP, a capture on
// the fabric never shows a marker in plaintext (and does when the pods are not enrolled), the
// SPIFFE identities show in /connections and the metrics, DENY refuses one caller, STRICT
// refuses plaintext from outside the mesh while PERMISSIVE lets it in, and traffic to a
// non-mesh pod passes through.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { captureOnFabric } from '../../agent/src/lab/capture.js';
import { cli, nodeHttp, waitFor, waitForEnrolled } from './mesh-helpers.js';

const skip = privilegedSkip();
const LOAD = fileURLToPath(new URL('./mesh-load-client.js', import.meta.url));
const CLIENT_SA = 'spiffe://cluster.local/ns/demo/sa/client';
const SERVER_SA = 'spiffe://cluster.local/ns/demo/sa/server';

function metricLines(text: string, name: string, labels: Record<string, string>): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
}

describe('mesh end to end in the lab (issue 5)', { skip }, () => {
  const name = `e${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let client: PodStatus; // demo/client-1, node1
  let server: PodStatus; // demo/server-1, node2
  let local: PodStatus; // demo/server-2, node1 (same node as client)
  let caller: PodStatus; // demo/caller-1, node1, service account default
  let outsider: PodStatus; // other/client-1, node1, not enrolled
  let plainServer: PodStatus; // other/server-1, node2, not enrolled

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true });
    local = await lab.addPod({ namespace: 'demo', name: 'server-2', node: 'node1', labels: { app: 'server' }, serviceAccount: 'server' });
    caller = await lab.addPod({ namespace: 'demo', name: 'caller-1', node: 'node1', labels: { app: 'caller' } });
    client = lab.pod('demo/client-1');
    server = lab.pod('demo/server-1');
    outsider = lab.pod('other/client-1');
    plainServer = lab.pod('other/server-1');
    assert.equal(client.node, 'node1');
    assert.equal(server.node, 'node2');
  });

  after(async () => {
    await lab?.down();
  });

  it('control: before enrolment the marker crosses the fabric in plaintext', async () => {
    const marker = `weft-marker-plain-${randomBytes(6).toString('hex')}`;
    const pcap = await captureOnFabric(lab, async () => {
      const r = await lab.tcpEcho('demo/client-1', server.ip, 9000, marker);
      assert.deepEqual(r, { ok: true, reply: marker });
    });
    assert.ok(pcap.includes(Buffer.from(marker)), 'the capture works and sees plaintext');
  });

  it('labelling demo enrols its pods on both nodes; a connection open at that moment carries on untouched', async () => {
    // One echo connection established before the label, writing a line every 100 ms for 5 s.
    const held = lab.spawn('demo/client-1', [process.execPath, LOAD, server.ip, '0', '5000'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    held.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the held connection', async () => out.includes('started'));
    await new Promise((r) => setTimeout(r, 500));
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    await waitForEnrolled(lab, 'demo', 20_000);
    const exited = new Promise((r) => held.once('exit', r));
    held.kill('SIGTERM');
    await exited;
    const res = JSON.parse(out.trim().split('\n').pop()!) as { held: { sent: number; echoed: number; error?: string; done: boolean } };
    assert.equal(res.held.error, undefined);
    assert.ok(res.held.done && res.held.sent >= 40 && res.held.echoed === res.held.sent, `held connection: ${JSON.stringify(res.held)}`);
  });

  it('cross-node HTTP and echo go through the mesh; the server sees the client pod IP; the marker never crosses in plaintext', async () => {
    const marker = `weft-marker-mesh-${randomBytes(6).toString('hex')}`;
    const pcap = await captureOnFabric(lab, async () => {
      const r = await lab.tcpEcho('demo/client-1', server.ip, 9000, marker);
      assert.deepEqual(r, { ok: true, reply: marker });
      const h = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/${marker}`);
      assert.equal(h.status, 200);
      const body = JSON.parse(String(h.body)) as { pod: string; client: string };
      assert.equal(body.pod, 'server-1');
      assert.equal(body.client.replace(/^::ffff:/, ''), client.ip, 'the app sees the client pod IP');
    });
    assert.ok(pcap.length > 24, 'something was captured');
    assert.ok(!pcap.includes(Buffer.from(marker)), 'the marker is not on the fabric in plaintext');
    // It did travel: HBONE on :15008 between the pod IPs (tcp header bytes are in the capture).
    const m = await nodeHttp(lab, 'node2', 15020, '/metrics');
    const lines = metricLines(m.body, 'istio_tcp_connections_opened_total', {
      reporter: 'destination', source_principal: CLIENT_SA, destination_principal: SERVER_SA, connection_security_policy: 'mutual_tls',
    });
    assert.ok(lines.length > 0, `destination metrics carry both SPIFFE identities:\n${m.body.split('\n').filter((l) => l.startsWith('istio_tcp_connections_opened')).join('\n')}`);
  });

  it('same-node: client to a server on its own node works through the proxy, client IP kept', async () => {
    const r = await lab.tcpEcho('demo/client-1', local.ip, 9000, 'same-node');
    assert.deepEqual(r, { ok: true, reply: 'same-node' });
    const h = await lab.httpGet('demo/client-1', `http://${local.ip}:8080/local`);
    assert.equal(h.status, 200);
    assert.equal((JSON.parse(String(h.body)) as { client: string }).client.replace(/^::ffff:/, ''), client.ip);
    const m = await nodeHttp(lab, 'node1', 15020, '/metrics');
    assert.ok(metricLines(m.body, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: CLIENT_SA, destination_workload: 'server-2' }).length > 0);
  });

  it('live connections show both SPIFFE identities in `weft connections` (admin /connections)', async () => {
    // Hold one echo connection open for 3 s from the client.
    const script = `const s=require('net').connect(9000,'${server.ip}',()=>s.write('hold'));setTimeout(()=>{s.end();process.exit(0)},3000)`;
    const child = lab.spawn('demo/client-1', [process.execPath, '-e', script], { stdio: 'ignore' });
    try {
      const seen = await waitFor('a live connection on node1', async () => {
        const r = await cli(['connections', '--lab', lab.name, '--node', 'node1', '-o', 'json']);
        assert.equal(r.code, 0, r.err);
        const list = JSON.parse(r.out) as Array<{ direction: string; security: string; src: { identity?: string }; dst: { identity?: string } }>;
        return list.find((c) => c.direction === 'outbound' && c.security === 'mutual_tls' && c.src.identity === CLIENT_SA && c.dst.identity === SERVER_SA);
      }, 5000);
      assert.ok(seen);
      const tableOut = await cli(['connections', '--lab', lab.name, '--node', 'node2']);
      assert.equal(tableOut.code, 0, tableOut.err);
      assert.match(tableOut.out, /^DIRECTION\s+SOURCE/m);
      assert.ok(tableOut.out.split('\n').some((l) => l.startsWith('inbound') && l.includes(CLIENT_SA) && l.includes(SERVER_SA) && l.includes('mutual_tls')), tableOut.out);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an AuthorizationPolicy DENY refuses one caller and not the other', async () => {
    await lab.apply([{
      apiVersion: 'security.weft.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-client', namespace: 'demo' },
      spec: { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client'] } }] }] },
    }]);
    try {
      await waitFor('the DENY to apply', async () => !(await lab.httpGet('demo/client-1', `http://${server.ip}:8080/denied`, 3000)).ok, 10_000, 200);
      const allowed = await lab.httpGet('demo/caller-1', `http://${server.ip}:8080/allowed`);
      assert.equal(allowed.status, 200, JSON.stringify(allowed));
      assert.equal((JSON.parse(String(allowed.body)) as { client: string }).client.replace(/^::ffff:/, ''), caller.ip);
    } finally {
      await lab.delete([{ apiVersion: 'security.weft.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-client', namespace: 'demo' } }]);
    }
    await waitFor('the DENY to go away', async () => (await lab.httpGet('demo/client-1', `http://${server.ip}:8080/again`, 3000)).ok, 10_000, 200);
  });

  it('PeerAuthentication STRICT refuses plaintext from a pod outside the mesh; PERMISSIVE lets it in', async () => {
    const pa = (mode: string) => ({ apiVersion: 'security.weft.io/v1', kind: 'PeerAuthentication', metadata: { name: 'mtls', namespace: 'demo' }, spec: { mtls: { mode } } });
    await lab.apply([pa('STRICT')]);
    try {
      await waitFor('STRICT to apply', async () => !(await lab.httpGet('other/client-1', `http://${server.ip}:8080/strict`, 3000)).ok, 10_000, 200);
      const meshed = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/strict-mtls`);
      assert.equal(meshed.status, 200, 'mTLS callers still get in');
      await lab.apply([pa('PERMISSIVE')]);
      const h = await waitFor('PERMISSIVE to apply', async () => {
        const r = await lab.httpGet('other/client-1', `http://${server.ip}:8080/permissive`, 3000);
        return r.ok ? r : undefined;
      }, 10_000, 200);
      assert.equal((JSON.parse(String(h.body)) as { client: string }).client.replace(/^::ffff:/, ''), outsider.ip);
    } finally {
      await lab.delete([pa('PERMISSIVE')]);
    }
  });

  it('a Service spread over two nodes gets connections on both (endpoints picked per connection)', async () => {
    const svc = lab.status().services.find((x) => x.namespace === 'demo' && x.name === 'server')!;
    const seen = new Map<string, number>();
    for (let i = 0; i < 24 && seen.size < 2; i++) {
      const r = await lab.httpGet('demo/client-1', `http://${svc.clusterIP}:8080/svc-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r));
      const pod = (JSON.parse(String(r.body)) as { pod: string }).pod;
      seen.set(pod, (seen.get(pod) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['server-1', 'server-2'], `endpoints reached: ${JSON.stringify([...seen])}`);
    const echo = await lab.tcpEcho('demo/client-1', svc.clusterIP, 9000, 'via-service');
    assert.deepEqual(echo, { ok: true, reply: 'via-service' });
  });

  it('passthrough: an enrolled pod reaches a pod outside the mesh as it asked, from its own IP', async () => {
    const h = await lab.httpGet('demo/client-1', `http://${plainServer.ip}:8080/passthrough`);
    assert.equal(h.status, 200);
    const body = JSON.parse(String(h.body)) as { pod: string; client: string };
    assert.equal(body.pod, 'server-1');
    assert.equal(body.client.replace(/^::ffff:/, ''), client.ip);
    const r = await lab.tcpEcho('demo/client-1', plainServer.ip, 9000, 'passthrough');
    assert.deepEqual(r, { ok: true, reply: 'passthrough' });
  });
});
