// `weft lab up` with the mesh: the controller and one `weft agent` per node netns. Every
// node's agent knows every pod; labelling a namespace enrols its pods within a second (same
// PIDs: nothing restarts); certificates only for identities on the node; opting a pod out and
// unlabelling release; restart-agent replaces the agent keeping enrolment; down leaves nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, labLeftovers, type LabStatus } from '../../agent/src/lab/index.js';
import { Redirector } from '../../agent/src/redirect/index.js';
import { agentDump, cli, nodeHttp, waitFor } from './mesh-helpers.js';

const skip = privilegedSkip();

interface WorkloadRow { namespace: string; name: string; node: string; protocol: string; enrolment?: string }
interface CertRow { identity: string; state: string }

describe('weft agent in the lab', { skip }, () => {
  const name = `a${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let st: LabStatus;
  const workloadsOn = async (node: string) => {
    const r = await cli(['workloads', '--node', node, '--lab', name, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as WorkloadRow[];
  };
  const certsOn = async (node: string) => {
    const r = await cli(['certs', '--node', node, '--lab', name, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as CertRow[];
  };
  const inspect = async (node: string, uid: string) => {
    // Read-only look at the agent's pins (a second handle on the same maps).
    const r = await Redirector.open({ agentId: `weft-${name}-${node}` });
    try {
      return await r.inspect(uid);
    } finally {
      r.close();
    }
  };

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true });
    st = lab.status();
  });

  after(async () => {
    if (!lab) return;
    await lab.down();
    const left = labLeftovers(name);
    assert.deepEqual(left, { netns: [], cgroups: [], pins: [], files: [], processes: [] }, 'lab down leaves nothing');
  });

  it('runs a controller and one ready agent per node, each serving readiness and metrics', async () => {
    assert.ok(st.mesh?.controller?.alive, 'controller alive');
    assert.deepEqual(st.mesh!.agents.filter((a) => a.alive).map((a) => a.node).sort(), st.nodes.map((n) => n.name).sort());
    for (const n of st.nodes) {
      const ready = await nodeHttp(lab, n.name, 15021, '/healthz/ready');
      assert.equal(ready.status, 200, ready.body);
      const m = await nodeHttp(lab, n.name, 15020, '/metrics');
      assert.match(m.body, /^# TYPE istio_tcp_connections_opened_total counter$/m);
      assert.match(m.body, /^# TYPE weft_enrolment_changes_total counter$/m);
      const d = await agentDump(lab, n.name);
      assert.equal(d.agent.node, n.name);
      assert.equal(d.synced, true);
    }
  });

  it('every node\'s agent knows every pod, none enrolled and no certificates before a label', async () => {
    for (const n of st.nodes) {
      const ws = await workloadsOn(n.name);
      assert.deepEqual(ws.map((w) => `${w.namespace}/${w.name}@${w.node}`).sort(), st.pods.map((p) => `${p.namespace}/${p.name}@${p.node}`).sort());
      assert.ok(ws.every((w) => w.protocol === 'NONE' && w.enrolment === undefined));
      assert.deepEqual(await certsOn(n.name), []);
      assert.deepEqual((await agentDump(lab, n.name)).enrolment, []);
    }
  });

  it('labelling a namespace enrols its running pods within a second, same PIDs, certificates only on their nodes', async () => {
    const ns = 'demo';
    const mine = st.pods.filter((p) => p.namespace === ns);
    const started = Date.now();
    await lab.label('namespace', ns, 'weft.io/mesh=enabled');
    await waitFor('enrolment on every node', async () => {
      for (const n of st.nodes) {
        const ws = await workloadsOn(n.name);
        const local = ws.filter((w) => w.namespace === ns && w.node === n.name);
        if (!local.every((w) => w.protocol === 'HBONE' && w.enrolment === 'enrolled')) return false;
        if (ws.some((w) => w.namespace !== ns && w.protocol !== 'NONE')) throw new Error('another namespace was enrolled');
      }
      return true;
    }, 10_000);
    const took = Date.now() - started;
    // The label reaches xDS and the agent within a second; allow for `weft workloads` being a process per poll.
    assert.ok(took < 3000, `enrolled after ${took} ms`);
    for (const p of mine) {
      assert.equal(lab.pod(`${p.namespace}/${p.name}`).pid, p.pid, `${p.name} was not restarted`);
      const i = await inspect(p.node, p.uid);
      assert.ok(i?.pod.complete, `${p.name} redirection enrolled`);
      assert.equal(i!.inboundListener, true, `${p.name} has its :15006 listener registered`);
      assert.deepEqual(i!.cgroupPrograms.connect4, ['weft_connect4']);
    }
    for (const n of st.nodes) {
      const expected = [...new Set(mine.filter((p) => p.node === n.name).map((p) => `spiffe://cluster.local/ns/${ns}/sa/${p.serviceAccount}`))].sort();
      const certs = await waitFor(`certificates on ${n.name}`, async () => {
        const c = await certsOn(n.name);
        return c.length === expected.length && c.every((x) => x.state === 'valid') ? c : undefined;
      });
      assert.deepEqual(certs.map((c) => c.identity), expected);
      const ready = await nodeHttp(lab, n.name, 15021, '/healthz/ready');
      assert.equal(ready.status, 200, ready.body);
    }
  });

  it('opting one pod out releases it (listeners and redirection gone), the others stay', async () => {
    const [out, stay] = st.pods.filter((p) => p.namespace === 'demo');
    await lab.label('pod', `demo/${out!.name}`, 'weft.io/mesh=disabled');
    await waitFor('release', async () => (await agentDump(lab, out!.node)).enrolment.every((e) => e.uid !== out!.uid));
    assert.equal(await inspect(out!.node, out!.uid), undefined, 'no redirection left for the opted-out pod');
    assert.equal((await agentDump(lab, stay!.node)).enrolment.find((e) => e.uid === stay!.uid)?.state, 'enrolled');
    await lab.label('pod', `demo/${out!.name}`, 'weft.io/mesh-');
    await waitFor('re-enrolment', async () => (await agentDump(lab, out!.node)).enrolment.find((e) => e.uid === out!.uid)?.state === 'enrolled');
  });

  it('deleting an enrolled pod releases it: no enrolment, no redirection, no pins left', async () => {
    const pod = await lab.addPod({ namespace: 'demo', name: 'doomed-1', node: 'node2', labels: { app: 'doomed' } });
    await waitFor('enrolment', async () => (await agentDump(lab, 'node2')).enrolment.find((e) => e.uid === pod.uid)?.state === 'enrolled', 20_000);
    assert.ok((await inspect('node2', pod.uid))?.pod.complete);
    await lab.removePod('demo/doomed-1');
    await waitFor('release', async () => !(await agentDump(lab, 'node2')).enrolment.some((e) => e.uid === pod.uid), 10_000);
    assert.equal(await inspect('node2', pod.uid), undefined);
    assert.ok(!existsSync(`/sys/fs/bpf/weft-${name}-node2/pods/${pod.uid}`), 'pins removed');
  });

  it('restart-agent starts a new agent beside the old one, then stops the old; enrolment carries over', async () => {
    const before = (await agentDump(lab, 'node1')).agent.pid;
    const r = await cli(['lab', 'restart-agent', '--name', name, 'node1']);
    assert.equal(r.code, 0, r.err);
    const mesh = lab.status().mesh!;
    const live = mesh.agents.filter((a) => a.node === 'node1' && a.alive);
    assert.equal(live.length, 1);
    assert.notEqual(live[0]!.pid, before);
    const d = await agentDump(lab, 'node1');
    assert.equal(d.agent.pid, live[0]!.pid);
    for (const p of st.pods.filter((x) => x.namespace === 'demo' && x.node === 'node1')) {
      assert.equal(d.enrolment.find((e) => e.uid === p.uid)?.state, 'enrolled');
      assert.ok((await inspect('node1', p.uid))?.pod.complete);
    }
  });

  it('removing the namespace label releases every pod and drops the certificates', async () => {
    await lab.label('namespace', 'demo', 'weft.io/mesh-');
    for (const n of st.nodes) {
      await waitFor(`release on ${n.name}`, async () => (await agentDump(lab, n.name)).enrolment.length === 0 && (await certsOn(n.name)).length === 0);
    }
    for (const p of st.pods) assert.equal(await inspect(p.node, p.uid), undefined, `${p.name} released`);
  });

  it('a pod that cannot be enrolled shows as failed in weft workloads, is counted, and is retried until it works', async () => {
    const victim = st.pods.find((p) => p.namespace === 'other' && p.node === 'node1')!;
    // Something in the pod already holds :15008 without SO_REUSEPORT: the agent cannot listen.
    const squatter = lab.spawn(`other/${victim.name}`, [process.execPath, '-e', "require('net').createServer().listen(15008,'0.0.0.0',()=>console.log('held'))"], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => squatter.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
      await lab.label('namespace', 'other', 'weft.io/mesh=enabled');
      const row = await waitFor('the failure to show', async () => (await workloadsOn('node1')).find((w) => w.name === victim.name && w.namespace === 'other' && w.enrolment === 'failed'));
      assert.equal(row.protocol, 'HBONE');
      const table = await cli(['workloads', '--node', 'node1', '--lab', name]);
      assert.match(table.out, new RegExp(`other\\s+${victim.name}\\s.*\\sfailed\\s*$`, 'm'));
      const info = (await agentDump(lab, 'node1')).enrolment.find((e) => e.uid === victim.uid)!;
      assert.match(info.error ?? '', /EADDRINUSE|in use/i);
      const m = await nodeHttp(lab, 'node1', 15020, '/metrics');
      assert.match(m.body, /^weft_enrolment_changes_total\{result="failed"\} [1-9]/m);
      assert.equal(await inspect('node1', victim.uid), undefined, 'a failed enrolment leaves no redirection behind');
    } finally {
      squatter.kill('SIGKILL');
    }
    // The retry (backoff) picks it up once the port is free.
    await waitFor('the retry to enrol it', async () => (await agentDump(lab, 'node1')).enrolment.find((e) => e.uid === victim.uid)?.state === 'enrolled', 40_000, 200);
    assert.ok((await inspect('node1', victim.uid))?.pod.complete);
    await lab.label('namespace', 'other', 'weft.io/mesh-');
    await waitFor('release', async () => (await agentDump(lab, 'node1')).enrolment.length === 0);
  });
});
