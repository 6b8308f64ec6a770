// Issue 6: labelling a namespace with 20 running pods captures all of them with unchanged
// PIDs (and they talk through the mesh); unlabelling releases every one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { agentDump, waitFor } from './mesh-helpers.js';

const skip = privilegedSkip();
const N = 20;

describe('enrolment of 20 running pods (issue 6)', { skip }, () => {
  const name = `s${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let pods: PodStatus[];

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 0, mesh: true });
    await lab.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bulk' } },
      ...Array.from({ length: N }, (_, i) => ({
        apiVersion: 'v1', kind: 'Pod', metadata: { name: `app-${i}`, namespace: 'bulk', labels: { app: 'bulk' } }, spec: { nodeName: `node${(i % 2) + 1}` },
      })),
    ]);
    pods = lab.status().pods.filter((p) => p.namespace === 'bulk');
    assert.equal(pods.length, N);
  });

  after(async () => {
    await lab?.down();
  });

  it('captures all 20 with unchanged PIDs, and they talk through the mesh', async () => {
    const started = Date.now();
    await lab.label('namespace', 'bulk', 'weft.io/mesh=enabled');
    for (const node of ['node1', 'node2']) {
      await waitFor(`all pods on ${node} enrolled`, async () => {
        const d = await agentDump(lab, node);
        const want = pods.filter((p) => p.node === node).map((p) => p.uid).sort();
        const got = d.enrolment.filter((e) => e.state === 'enrolled').map((e) => e.uid).sort();
        return JSON.stringify(want) === JSON.stringify(got) && d.agent.ready;
      }, 60_000, 200);
    }
    const took = Date.now() - started;
    for (const p of pods) assert.equal(lab.pod(`bulk/${p.name}`).pid, p.pid, `${p.name} not restarted`);
    const dumps = [await agentDump(lab, 'node1'), await agentDump(lab, 'node2')];
    for (const p of pods) {
      const e = dumps.flatMap((d) => d.enrolment).find((x) => x.uid === p.uid)!;
      assert.equal(e.pid, p.pid, `${p.name}: the netns came from the app's process`);
    }
    // A few pairs, cross-node and same-node.
    for (const [a, b] of [[0, 1], [2, 4], [19, 18]] as const) {
      const r = await lab.httpGet(`bulk/${pods[a]!.name}`, `http://${pods[b]!.ip}:8080/`);
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal((JSON.parse(String(r.body)) as { client: string }).client.replace(/^::ffff:/, ''), pods[a]!.ip);
    }
    const m = dumps.map((d) => d.workloads.filter((w) => w.namespace === 'bulk' && w.protocol === 'HBONE').length);
    assert.deepEqual(m, [N, N], 'both agents see every bulk pod as HBONE');
    process.stderr.write(`# 20 pods captured in ${took} ms (label to ready, both nodes)\n`);
  });

  it('unlabelling releases every one', async () => {
    await lab.label('namespace', 'bulk', 'weft.io/mesh-');
    for (const node of ['node1', 'node2']) {
      await waitFor(`release on ${node}`, async () => (await agentDump(lab, node)).enrolment.length === 0, 60_000, 200);
      assert.deepEqual(readdirSync(`/sys/fs/bpf/weft-${name}-${node}/pods`), [], `no pod pins left on ${node}`);
    }
    const r = await lab.httpGet(`bulk/${pods[0]!.name}`, `http://${pods[1]!.ip}:8080/`);
    assert.equal(r.status, 200);
    for (const p of pods) assert.equal(lab.pod(`bulk/${p.name}`).pid, p.pid);
  });
});
