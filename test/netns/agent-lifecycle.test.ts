// Issue 6 lifecycle in the lab, with the real agents: restart under a steady stream of new
// connections with zero failures (a connection established before the restart finishes within
// the drain deadline); kill -9 fails closed (nothing in plaintext, nothing reaches the app)
// and a new agent restores service with no pod restart; with the controller stopped traffic
// carries on, and changes flow again once it is back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { Redirector } from '../../agent/src/redirect/index.js';
import { agentDump, waitFor } from './mesh-helpers.js';

const skip = privilegedSkip();
const LOAD = fileURLToPath(new URL('./mesh-load-client.js', import.meta.url));

interface LoadResult { ok: number; failed: number; errors: Record<string, number>; held: { sent: number; echoed: number; error?: string; done: boolean } }

function startLoad(lab: Lab, from: string, host: string, concurrency: number, holdMs: number): { child: ChildProcess; stop: () => Promise<LoadResult> } {
  const child = lab.spawn(from, [process.execPath, LOAD, host, String(concurrency), String(holdMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    stop: async () => {
      await waitFor('the load client to start', async () => out.includes('started'), 10_000);
      child.kill('SIGTERM');
      await exited;
      const line = out.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as LoadResult;
      } catch {
        throw new Error(`load client output: ${out} ${err}`);
      }
    },
  };
}

async function inspect(lab: Lab, node: string, uid: string) {
  const r = await Redirector.open({ agentId: `weft-${lab.name}-${node}` });
  try {
    return await r.inspect(uid);
  } finally {
    r.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('agent lifecycle in the lab (issue 6)', { skip }, () => {
  const name = `l${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let client: PodStatus;
  let server: PodStatus;

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true });
    client = lab.pod('demo/client-1');
    server = lab.pod('demo/server-1');
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    for (const node of ['node1', 'node2']) {
      await waitFor(`enrolment on ${node}`, async () => {
        const d = await agentDump(lab, node);
        return d.agent.ready && d.enrolment.length > 0 && d.enrolment.every((e) => e.state === 'enrolled');
      }, 20_000);
    }
    const r = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/warm`);
    assert.equal(r.status, 200, JSON.stringify(r));
  });

  after(async () => {
    await lab?.down();
  });

  it('restarting the client node\'s agent under a steady stream of connections drops none; an established connection finishes', async () => {
    const load = startLoad(lab, 'demo/client-1', server.ip, 4, 4000);
    await sleep(1000);
    const r = await lab.restartAgent('node1', { drainDeadline: '10s' });
    assert.ok(r.oldPids.length === 1 && r.pid !== r.oldPids[0]);
    await sleep(1000);
    const res = await load.stop();
    assert.equal(res.failed, 0, `failures during the restart: ${JSON.stringify(res.errors)} (ok ${res.ok})`);
    assert.ok(res.ok > 10, `requests went through (${res.ok})`);
    assert.equal(res.held.error, undefined);
    assert.ok(res.held.done && res.held.sent > 20 && res.held.echoed === res.held.sent, `held connection: ${JSON.stringify(res.held)}`);
  });

  it('restarting the server node\'s agent under load drops none either', async () => {
    const load = startLoad(lab, 'demo/client-1', server.ip, 4, 4000);
    await sleep(1000);
    await lab.restartAgent('node2', { drainDeadline: '10s' });
    await sleep(1000);
    const res = await load.stop();
    assert.equal(res.failed, 0, `failures during the restart: ${JSON.stringify(res.errors)} (ok ${res.ok})`);
    assert.ok(res.held.done && res.held.echoed === res.held.sent && res.held.sent > 20, `held connection: ${JSON.stringify(res.held)}`);
  });

  it('kill -9 of an agent fails closed; a new agent reconciles (stale released, nothing attached twice) and restores service without restarting pods', async () => {
    const extra = await lab.addPod({ namespace: 'demo', name: 'extra-1', node: 'node1', labels: { app: 'extra' } });
    await waitFor('extra-1 enrolled', async () => (await agentDump(lab, 'node1')).enrolment.find((e) => e.uid === extra.uid)?.state === 'enrolled', 20_000);
    await lab.stopAgent('node1', 'SIGKILL');
    // While no agent runs, the pod leaves the mesh: the next agent must release it.
    await lab.label('pod', 'demo/extra-1', 'weft.io/mesh=disabled');
    // Outbound from an enrolled pod: refused, never sent in plaintext around the proxy.
    const out = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/while-dead`, 3000);
    assert.equal(out.ok, false, JSON.stringify(out));
    // Inbound plaintext to an enrolled pod on that node: dropped before the app.
    const inbound = await lab.httpGet('other/client-1', `http://${client.ip}:8080/while-dead`, 2000);
    assert.equal(inbound.ok, false, JSON.stringify(inbound));
    await lab.startAgent('node1');
    assert.equal(await inspect(lab, 'node1', extra.uid), undefined, 'the stale enrolment was released at start-up');
    const kept = await inspect(lab, 'node1', client.uid);
    assert.ok(kept?.pod.complete, 'the enrolled pod stayed enrolled');
    assert.deepEqual(kept!.cgroupPrograms, { connect4: ['weft_connect4'], connect6: ['weft_connect6'], sockops: ['weft_sockops'] }, 'nothing attached twice');
    const back = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/after`);
    assert.equal(back.status, 200, JSON.stringify(back));
    const inAgain = await lab.httpGet('other/client-1', `http://${client.ip}:8080/after`);
    assert.equal(inAgain.status, 200, JSON.stringify(inAgain));
    assert.equal(lab.pod('demo/client-1').pid, client.pid, 'the pod was not restarted');
  });

  it('with the controller stopped traffic continues; once it is back, changes flow again', async () => {
    await lab.stopController();
    for (let i = 0; i < 3; i++) {
      const r = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/no-controller-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r));
    }
    const d = await agentDump(lab, 'node1');
    assert.equal(d.connected, false, 'the agent noticed the controller is gone');
    await lab.startController();
    await waitFor('the agent to reconnect', async () => (await agentDump(lab, 'node1')).connected === true, 20_000, 200);
    await lab.apply([{
      apiVersion: 'security.weft.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-all-client', namespace: 'demo' },
      spec: { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client'] } }] }] },
    }]);
    await waitFor('the new policy to reach the agents', async () => !(await lab.httpGet('demo/client-1', `http://${server.ip}:8080/denied`, 3000)).ok, 15_000, 200);
  });
});
