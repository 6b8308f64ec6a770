// Outbound and inbound capture of a lab pod with the real programs, stand-in listeners on
// 15001/15006 inside the pod netns, then release.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { DEFAULT_BYPASS_MARK, Redirector } from '../../agent/src/redirect/index.js';
import {
  bpftoolCgroup, clientInNode, clientInPod, closeServer, inboundStandIn, lineServer, outboundStandIn, podGateway, rand, tcFilters,
} from './redirect-support.js';
import { socketFd } from '../../agent/src/native/index.js';

describe('redirect: capture in a lab pod', { skip: privilegedSkip() }, () => {
  let lab: Lab;
  let r: Redirector;
  let a: PodStatus; // enrolled, node1
  let same: PodStatus; // not enrolled, node1
  let cross: PodStatus; // not enrolled, node2
  const servers: Server[] = [];
  let inbound: Server | undefined;

  before(async () => {
    lab = await Lab.up({ name: `r${rand()}`, nodes: 2, podsPerNode: 2 });
    const pods = lab.status().pods;
    a = pods.find((p) => p.namespace === 'demo' && p.name === 'client-1')!;
    same = pods.find((p) => p.node === a.node && p !== a)!;
    cross = pods.find((p) => p.node !== a.node)!;
    r = await Redirector.open({ agentId: `weft-${lab.name}-${a.node}` });
    // Listeners the test (an agent stand-in, outside every pod cgroup) opens in the pod netns.
    servers.push(await outboundStandIn(r, a.netns));
    servers.push(await lineServer(a.netns, '127.0.0.1', 17000, () => 'loopback-direct'));
    servers.push(await lineServer(a.netns, '0.0.0.0', 17002, () => 'app'));
    servers.push(await lineServer(a.netns, '0.0.0.0', 15008, () => 'hbone'));
    for (const p of [same, cross]) servers.push(await lineServer(p.netns, '0.0.0.0', 17001, (s) => `direct ${s.remoteAddress}`));
    inbound = await inboundStandIn(a.netns);
    const spec = { uid: a.uid, netnsPath: a.netns, cgroupPath: a.podCgroup, ip: a.ip, nodeGatewayIp: podGateway(lab, a.node), excludePorts: [17003] };
    await r.enrol(spec, { inboundListenerFd: socketFd(inbound) });
  });

  after(async () => {
    for (const s of servers) await closeServer(s);
    await closeServer(inbound);
    await r?.purge().catch(() => undefined);
    await lab?.down();
  });

  it('sends 1000 concurrent outbound connections, same-node and cross-node, to :15001 with their exact original destination', async () => {
    const targets = Array.from({ length: 1000 }, (_, i) => ({ host: i % 2 ? cross.ip : same.ip, port: 20000 + i }));
    const res = await clientInPod(lab, `${a.namespace}/${a.name}`, targets);
    const wrong = res.filter((x) => x.reply !== `orig ${x.host}:${x.port}`);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of 1000 connections came back wrong`);
    assert.equal((await r.mapCounts()).origDst, 0, 'the proxy deleted every entry it read');
  });

  it('captures IPv4-mapped destinations of AF_INET6 sockets too (connect6)', async () => {
    const res = await clientInPod(lab, `${a.namespace}/${a.name}`, [{ host: `::ffff:${cross.ip}`, port: 20001 }, { host: '::ffff:127.0.0.1', port: 17000 }]);
    assert.deepEqual(res.map((x) => x.reply), [`orig ${cross.ip}:20001`, 'loopback-direct']);
  });

  it('leaves loopback, excluded ports and pods that are not enrolled alone', async () => {
    const [lo, excluded] = await clientInPod(lab, `${a.namespace}/${a.name}`, [{ host: '127.0.0.1', port: 17000 }, { host: cross.ip, port: 17003 }], 5000);
    assert.equal(lo!.reply, 'loopback-direct');
    // 17003 has no listener on the destination: a direct connection is refused, a captured one would answer.
    assert.equal(excluded!.error, 'ECONNREFUSED');
    const [other] = await clientInPod(lab, `${same.namespace}/${same.name}`, [{ host: cross.ip, port: 17001 }]);
    assert.equal(other!.reply, `direct ${same.ip}`);
  });

  it("never captures the agent's own sockets (SO_MARK 0x5746), even from inside the pod's cgroup", async () => {
    const marked = await clientInPod(lab, `${a.namespace}/${a.name}`, [{ host: cross.ip, port: 17001 }], 5000, DEFAULT_BYPASS_MARK);
    assert.equal(marked[0]!.reply, `direct ${a.ip}`);
    const unmarked = await clientInPod(lab, `${a.namespace}/${a.name}`, [{ host: cross.ip, port: 17001 }], 5000, 0x1234);
    assert.equal(unmarked[0]!.reply, `orig ${cross.ip}:17001`);
  });

  it('steers plaintext inbound to :15006 with the destination intact; 15008 and node probes reach their listeners', async () => {
    const fromSame = await clientInPod(lab, `${same.namespace}/${same.name}`, [{ host: a.ip, port: 17002 }, { host: a.ip, port: 15008 }]);
    assert.deepEqual(fromSame.map((x) => x.reply), [`inbound ${a.ip}:17002`, 'hbone']);
    const fromCross = await clientInPod(lab, `${cross.namespace}/${cross.name}`, [{ host: a.ip, port: 17002 }, { host: a.ip, port: 9000 }]);
    assert.deepEqual(fromCross.map((x) => x.reply), [`inbound ${a.ip}:17002`, `inbound ${a.ip}:9000`]);
    const probe = await clientInNode(lab, a.node, [{ host: a.ip, port: 17002 }]);
    assert.equal(probe[0]!.reply, 'app');
  });

  it('fails closed: without the :15006 listener new inbound flows are dropped, 15008 and probes still pass', async () => {
    await closeServer(inbound);
    inbound = undefined;
    assert.equal((await r.mapCounts()).inListen, 0, 'the kernel removed the closed listener from the SOCKHASH');
    const res = await clientInPod(lab, `${same.namespace}/${same.name}`, [{ host: a.ip, port: 17002 }, { host: a.ip, port: 15008 }], 3000);
    assert.equal(res[0]!.error, 'timeout', `plaintext must not reach the app: ${JSON.stringify(res[0])}`);
    assert.equal(res[1]!.reply, 'hbone');
    assert.equal((await clientInNode(lab, a.node, [{ host: a.ip, port: 17002 }]))[0]!.reply, 'app');
    inbound = await inboundStandIn(a.netns);
    await r.setInboundListener(a.uid, socketFd(inbound));
    assert.equal((await clientInPod(lab, `${same.namespace}/${same.name}`, [{ host: a.ip, port: 17002 }]))[0]!.reply, `inbound ${a.ip}:17002`);
  });

  it('after release, traffic flows directly again and nothing of the pod is left', async () => {
    assert.equal(await r.release(a.uid), true);
    assert.equal(await r.release(a.uid), false, 'release is idempotent');
    const out = await clientInPod(lab, `${a.namespace}/${a.name}`, [{ host: cross.ip, port: 17001 }]);
    assert.equal(out[0]!.reply, `direct ${a.ip}`);
    const inb = await clientInPod(lab, `${same.namespace}/${same.name}`, [{ host: a.ip, port: 17002 }]);
    assert.equal(inb[0]!.reply, 'app');
    assert.deepEqual(bpftoolCgroup(a.podCgroup), []);
    assert.equal(tcFilters(a.netns).trim(), '');
    assert.deepEqual(await r.mapCounts(), { pods: 0, podIps: 0, origDst: 0, inListen: 0, enrolments: 0 });
    assert.equal(existsSync(r.pins.podDir(a.uid)), false);
  });
});


