// Issue 7, "use both cores": each agent runs its proxy on the main thread and on data-plane
// worker threads, all listening in every enrolled pod's netns through one SO_REUSEPORT group
// per port. In the lab with --workers 2 (three threads per agent): many connections from one
// pod are spread over the threads on both sides, each one mutual TLS; plaintext that tc ingress
// hands over with bpf_sk_assign is spread too (kernels >= 6.5 select within the group), and
// 120 at once from one client never collide with the proxy's own dials to the app; the metrics
// add up every thread's connections; stopping the agent drains every thread.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, labLeftovers, type PodStatus } from '../../agent/src/lab/index.js';
import type { ConnectionSnapshot } from '../../agent/src/proxy/index.js';
import { nodeHttp, waitFor, waitForEnrolled } from './mesh-helpers.js';

const skip = privilegedSkip();
const HOLD = fileURLToPath(new URL('./hold-connections-client.js', import.meta.url));
const N = 30;

function metricSum(text: string, name: string, labels: Record<string, string>): number {
  return text.split('\n')
    .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Holds N echo connections from `from` to ip:9000 until release() (which checks they still echo). */
async function hold(lab: Lab, from: string, ip: string, n = N): Promise<{ release: () => Promise<{ closed: number; failed: number; errors: string[] }> }> {
  const child: ChildProcess = lab.spawn(from, [process.execPath, HOLD, ip, '9000', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const first = await waitFor('connections to open', async () => out.includes('\n') && JSON.parse(out.split('\n')[0]!) as { open: number; errors: string[] }, 20_000);
  assert.equal(first.open, n, `all ${n} connections opened and echoed: ${first.errors.join('; ')}`);
  return {
    release: async () => {
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, `the client exited with ${code}: ${out}`);
      return JSON.parse(out.trim().split('\n').pop()!) as { closed: number; failed: number; errors: string[] };
    },
  };
}

async function connections(lab: Lab, node: string): Promise<ConnectionSnapshot[]> {
  const r = await nodeHttp(lab, node, 15000, '/connections');
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as ConnectionSnapshot[];
}

function threadsOf(cs: ConnectionSnapshot[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const c of cs) m.set(c.thread, (m.get(c.thread) ?? 0) + 1);
  return m;
}

describe('data-plane worker threads in the lab (issue 7)', { skip }, () => {
  const name = `w${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let client: PodStatus; // demo/client-1 on node1
  let server: PodStatus; // demo/server-1 on node2

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true, agentWorkers: 2 });
    client = lab.pod('demo/client-1');
    server = lab.pod('demo/server-1');
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    await waitForEnrolled(lab, 'demo', 20_000);
  });

  after(async () => {
    if (!lab) return;
    await lab.down();
    assert.deepEqual(labLeftovers(name), { netns: [], cgroups: [], pins: [], files: [], processes: [] }, 'lab down leaves nothing');
  });

  it('spreads one pod\'s connections over the threads on both nodes, every one mutual TLS, and the metrics count them all', async () => {
    const before1 = (await nodeHttp(lab, 'node1', 15020, '/metrics')).body;
    const before2 = (await nodeHttp(lab, 'node2', 15020, '/metrics')).body;
    const held = await hold(lab, 'demo/client-1', server.ip);
    try {
      const out = (await connections(lab, 'node1')).filter((c) => c.direction === 'outbound' && c.srcAddr.startsWith(`${client.ip}:`));
      assert.equal(out.length, N, 'node1 lists every outbound connection, whichever thread holds it');
      assert.ok(out.every((c) => c.security === 'mutual_tls'), 'each one goes over HBONE with mutual TLS');
      const t1 = threadsOf(out);
      assert.ok(t1.size >= 2, `outbound connections are spread over the threads of node1's agent: ${JSON.stringify([...t1])}`);
      const inb = (await connections(lab, 'node2')).filter((c) => c.direction === 'inbound' && c.src.identity === 'spiffe://cluster.local/ns/demo/sa/client');
      assert.equal(inb.length, N, 'node2 lists every inbound stream');
    } finally {
      const r = await held.release();
      assert.deepEqual({ closed: r.closed, failed: r.failed }, { closed: N, failed: 0 }, `every connection still echoed before closing: ${r.errors.join('; ')}`);
    }
    const labels = { destination_workload: 'server-1', source_workload: 'client-1', connection_security_policy: 'mutual_tls' };
    await waitFor('node1 metrics to count every connection', async () => {
      const after = (await nodeHttp(lab, 'node1', 15020, '/metrics')).body;
      const opened = metricSum(after, 'istio_tcp_connections_opened_total', { reporter: 'source', ...labels }) - metricSum(before1, 'istio_tcp_connections_opened_total', { reporter: 'source', ...labels });
      const closed = metricSum(after, 'istio_tcp_connections_closed_total', { reporter: 'source', ...labels }) - metricSum(before1, 'istio_tcp_connections_closed_total', { reporter: 'source', ...labels });
      return opened === N && closed === N;
    });
    await waitFor('node2 metrics to count every connection', async () => {
      const after = (await nodeHttp(lab, 'node2', 15020, '/metrics')).body;
      const opened = metricSum(after, 'istio_tcp_connections_opened_total', { reporter: 'destination', ...labels }) - metricSum(before2, 'istio_tcp_connections_opened_total', { reporter: 'destination', ...labels });
      return opened === N;
    });
    // Process metrics are counted once, not once per thread.
    const m = (await nodeHttp(lab, 'node1', 15020, '/metrics')).body;
    assert.equal(m.split('\n').filter((l) => l.startsWith('# TYPE process_resident_memory_bytes')).length, 1);
  });

  it('plaintext tc ingress hands to the pod (bpf_sk_assign) is spread over the threads too on kernels >= 6.5', async () => {
    // other/client-1 is not in the mesh: its plaintext reaches demo/server-1 through :15006.
    // Many at once from one client: the proxy's dials to the app (from the client's IP) must
    // never take the 4-tuple of a connection it accepted for that client (see native/sockets.cc).
    const held = await hold(lab, 'other/client-1', server.ip, 4 * N);
    try {
      const inb = (await connections(lab, 'node2')).filter((c) => c.direction === 'inbound' && c.dstAddr.startsWith(`${server.ip}:`) && c.security !== 'mutual_tls');
      assert.equal(inb.length, 4 * N, 'every plaintext connection went through the proxy');
      const [major, minor] = release().split('.').map(Number) as [number, number];
      const spreads = major > 6 || (major === 6 && minor >= 5);
      const t = threadsOf(inb);
      if (spreads) assert.ok(t.size >= 2, `spread over node2's threads: ${JSON.stringify([...t])}`);
      else assert.equal(t.size, 1, 'before 6.5 the kernel hands every assigned flow to the one listener in the map');
    } finally {
      const r = await held.release();
      assert.equal(r.failed, 0, r.errors.join('; '));
    }
  });

  it('restart-agent: the new agent takes new connections while every thread of the old one drains its own', async () => {
    const held = await hold(lab, 'demo/client-1', server.ip);
    const old = lab.status().mesh!.agents.filter((a) => a.node === 'node1' && a.alive);
    const restarted = lab.restartAgent('node1');
    // Once the new agent is ready the old one gets SIGTERM and drains (5 s, the lab's default);
    // the held connections, spread over its threads, must keep working until they close.
    await waitFor('the old agent to drain', async () => old.every((a) => readFileSync(a.log, 'utf8').includes('"msg":"draining"')), 60_000);
    const r = await lab.tcpEcho('demo/client-1', server.ip, 9000, 'after-restart');
    assert.deepEqual(r, { ok: true, reply: 'after-restart' });
    const done = await held.release();
    assert.deepEqual({ closed: done.closed, failed: done.failed }, { closed: N, failed: 0 }, `held connections survived the drain: ${done.errors.join('; ')}`);
    const { oldPids, pid } = await restarted;
    assert.deepEqual(oldPids.sort(), old.map((a) => a.pid).sort());
    assert.ok(!oldPids.includes(pid));
  });
});
