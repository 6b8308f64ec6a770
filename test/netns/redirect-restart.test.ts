// An agent killed with SIGKILL leaves its pinned state; the next agent reads it back and
// reconciles: enrolled pods stay enrolled (traffic still captured), nothing is attached twice,
// pods no longer desired are released, and pins of an interrupted enrolment are cleaned.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Server } from 'node:net';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { Redirector, type PodSpec } from '../../agent/src/redirect/index.js';
import { bpftoolCgroup, clientInPod, closeServer, lineServer, outboundStandIn, podGateway, rand, tcFilters } from './redirect-support.js';

const CHILD = fileURLToPath(new URL('./redirect-agent-child.js', import.meta.url));

function runChildAgent(agentId: string, pods: PodSpec[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify({ agentId, pods })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) {
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(child.pid!) : reject(new Error(`child agent exited ${code}: ${err}`))));
  });
}

const spec = (lab: Lab, p: PodStatus): PodSpec => ({ uid: p.uid, netnsPath: p.netns, cgroupPath: p.podCgroup, ip: p.ip, nodeGatewayIp: podGateway(lab, p.node) });

describe('redirect: agent restart after SIGKILL', { skip: privilegedSkip() }, () => {
  let lab: Lab;
  let agentId: string;
  let pods: PodStatus[];
  let r: Redirector | undefined;
  const servers: Server[] = [];

  before(async () => {
    lab = await Lab.up({ name: `r${rand()}`, nodes: 2, podsPerNode: 2 });
    const st = lab.status();
    pods = st.pods.filter((p) => p.node === 'node1');
    agentId = `weft-${lab.name}-node1`;
  });

  after(async () => {
    for (const s of servers) await closeServer(s);
    if (!r) r = await Redirector.open({ agentId }).catch(() => undefined);
    await r?.purge().catch(() => undefined);
    await lab?.down();
  });

  it('a new agent adopts the pinned state of a killed one without attaching anything twice', async () => {
    const [p1, p2] = pods as [PodStatus, PodStatus];
    await runChildAgent(agentId, [spec(lab, p1), spec(lab, p2)]);
    // Debris of an enrolment the kill interrupted: a pin directory with no registry entry.
    const r0 = await Redirector.open({ agentId });
    mkdirSync(r0.pins.podDir('interrupted-pod'), { recursive: true });
    r0.close();

    // A second killed agent with the same desired set must not add a second attachment.
    await runChildAgent(agentId, [spec(lab, p1), spec(lab, p2)]);

    r = await Redirector.open({ agentId });
    assert.deepEqual((await r.list()).map((p) => [p.uid, p.complete]).sort(), [[p1.uid, true], [p2.uid, true]].sort());
    const res = await r.reconcile([spec(lab, p1)]);
    assert.deepEqual(res, { enrolled: [p1.uid], released: [p2.uid], failed: [] });
    assert.equal(existsSync(r.pins.podDir('interrupted-pod')), false);

    const progs = bpftoolCgroup(p1.podCgroup).map((x) => `${x.attach_type}:${x.name}`).sort();
    assert.deepEqual(progs, ['cgroup_inet4_connect:weft_connect4', 'cgroup_inet6_connect:weft_connect6', 'cgroup_sock_ops:weft_sockops'], 'exactly one of each');
    assert.equal(tcFilters(p1.netns).match(/handle 0x5746/g)?.length, 1, "exactly one tc filter");
    assert.deepEqual(bpftoolCgroup(p2.podCgroup), [], 'the pod no longer desired was released');
    assert.equal(tcFilters(p2.netns).trim(), '');
    assert.deepEqual(await r.mapCounts(), { pods: 1, podIps: 1, origDst: 0, inListen: 0, enrolments: 1 });

    // And p1's traffic is still captured, by the links the dead agent pinned.
    servers.push(await outboundStandIn(r, p1.netns));
    servers.push(await lineServer(p2.netns, '0.0.0.0', 17001, () => 'direct'));
    const out = await clientInPod(lab, `${p1.namespace}/${p1.name}`, [{ host: p2.ip, port: 17001 }]);
    assert.equal(out[0]!.reply, `orig ${p2.ip}:17001`);
    // p2 is not captured any more: with a :15001 listener in its netns that would answer,
    // its connection still reaches the real destination.
    const far = lab.status().pods.find((p) => p.node !== 'node1')!;
    servers.push(await lineServer(p2.netns, '127.0.0.1', 15001, () => 'captured'));
    servers.push(await lineServer(far.netns, '0.0.0.0', 17001, () => 'direct'));
    const direct = await clientInPod(lab, `${p2.namespace}/${p2.name}`, [{ host: far.ip, port: 17001 }]);
    assert.equal(direct[0]!.reply, 'direct');
  });
});
