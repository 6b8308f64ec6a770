// The lab on real network namespaces and cgroups: pods reach each other same-node, cross-node
// and across namespaces with their own source IP; exec lands in the pod's netns and cgroup;
// several labs run at once; down leaves nothing behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { privilegedSkip } from '../helpers/privilege.js';
import { destroyLab, Lab, LabExistsError, labLeftovers, cgroup2Mount, processAlive, type LabStatus, type PodStatus } from '../../agent/src/lab/index.js';

const skip = privilegedSkip();
const uniqueName = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

function assertNothingLeft(name: string): void {
  assert.deepEqual(labLeftovers(name), { netns: [], cgroups: [], pins: [], files: [], processes: [] }, `lab ${name} left something behind`);
}

describe('lab', { skip }, () => {
  let lab: Lab;
  let st: LabStatus;
  const name = uniqueName('t');
  const ref = (p: PodStatus) => `${p.namespace}/${p.name}`;
  const find = (ns: string, n: string) => st.pods.find((p) => p.namespace === ns && p.name === n)!;

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2 });
    st = lab.status();
  });
  after(async () => {
    await lab?.down();
  });

  it('reports the status shape the issue specifies', () => {
    assert.equal(st.stateDir, join('/var/run/weft/lab', name));
    assert.deepEqual(st.nodes.map((n) => [n.name, n.netns]), [['node1', `/run/netns/weft-${name}-node1`], ['node2', `/run/netns/weft-${name}-node2`]]);
    assert.equal(st.pods.length, 4);
    for (const p of st.pods) {
      for (const k of ['namespace', 'name', 'uid', 'node', 'ip', 'netns', 'cgroup', 'pid'] as const) assert.ok(p[k], `pod field ${k}`);
      assert.ok(existsSync(p.netns), p.netns);
      assert.ok(p.cgroup.startsWith(cgroup2Mount() + '/'), p.cgroup);
      assert.match(p.cgroup, new RegExp(`/weft-${name}-${p.node}\\.slice/kubepods\\.slice/kubepods-besteffort\\.slice/kubepods-besteffort-pod${p.uid.replace(/-/g, '_')}\\.slice/cri-containerd-[0-9a-f]{64}\\.scope$`));
      // The app runs in that cgroup (read from the kernel, not from our records).
      assert.equal(readFileSync(`/proc/${p.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${p.cgroup.slice(cgroup2Mount().length)}`);
    }
    assert.deepEqual(st.services.map((s) => `${s.namespace}/${s.name}`).sort(), ['demo/client', 'demo/server', 'other/client', 'other/server']);
    for (const s of st.services) {
      assert.match(s.clusterIP, /^198\.19\.\d+\.\d+$/);
      assert.deepEqual(s.ports.map((p) => p.port), [9000, 8080]);
    }
  });

  it('writes the cluster as Kubernetes manifests in the state directory', () => {
    const files = readdirSync(st.stateDir).filter((f) => f.endsWith('.yaml'));
    for (const f of ['Namespace__demo.yaml', 'Namespace__other.yaml', 'Service_demo_server.yaml', 'ServiceAccount_demo_client.yaml', 'Pod_demo_client-1.yaml']) {
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    }
    const pod = readFileSync(join(st.stateDir, 'Pod_demo_client-1.yaml'), 'utf8');
    const p = find('demo', 'client-1');
    for (const needle of [`uid: ${p.uid}`, 'nodeName: node1', 'serviceAccountName: client', `podIP: ${p.ip}`, 'phase: Running', 'app: client']) assert.ok(pod.includes(needle), `${needle} in\n${pod}`);
  });

  it('connects pods on the same node (TCP echo and HTTP)', async () => {
    const a = find('demo', 'client-1');
    const b = find('other', 'client-1');
    assert.equal(a.node, b.node);
    const echo = await lab.tcpEcho(ref(a), b.ip, 9000, 'same-node');
    assert.deepEqual([echo.ok, echo.reply], [true, 'same-node'], JSON.stringify(echo));
    const h = await lab.httpGet(ref(a), `http://${b.ip}:8080/same`);
    assert.equal(h.status, 200, JSON.stringify(h));
    assert.deepEqual(JSON.parse(h.body!), { pod: 'client-1', namespace: 'other', path: '/same', client: a.ip });
  });

  it('connects pods across nodes and namespaces, and the server sees the client pod IP', async () => {
    const pairs: Array<[string, string, string, string]> = [['demo', 'client-1', 'demo', 'server-1'], ['demo', 'client-1', 'other', 'server-1'], ['other', 'server-1', 'demo', 'client-1']];
    for (const [ans, an, bns, bn] of pairs) {
      const a = find(ans, an);
      const b = find(bns, bn);
      assert.notEqual(a.node, b.node);
      const echo = await lab.tcpEcho(ref(a), b.ip, 9000, `${an}->${bn}`);
      assert.equal(echo.reply, `${an}->${bn}`, JSON.stringify(echo));
      const h = await lab.httpGet(ref(a), `http://${b.ip}:8080/x?y=1`);
      assert.deepEqual(JSON.parse(h.body!), { pod: bn, namespace: bns, path: '/x?y=1', client: a.ip });
    }
  });

  it('answers ?status= and ?delay= for L7 tests, with the same JSON body', async () => {
    const a = find('demo', 'client-1');
    const b = find('demo', 'server-1');
    const h = await lab.httpGet(ref(a), `http://${b.ip}:8080/f?status=503&delay=50`);
    assert.equal(h.status, 503);
    assert.deepEqual(JSON.parse(h.body!), { pod: 'server-1', namespace: 'demo', path: '/f?status=503&delay=50', client: a.ip });
    const slow = await lab.httpGet(ref(a), `http://${b.ip}:8080/?delay=3000`, 300);
    assert.equal(slow.code, 'ETIMEDOUT', JSON.stringify(slow));
  });

  it('lets every pod reach every node', async () => {
    for (const p of st.pods) {
      for (const n of st.nodes) {
        // Nothing listens on the node: a refusal proves the packets got there and back.
        const r = await lab.tcpConnect(ref(p), n.ip, 1, 2000);
        assert.equal(r.code, 'ECONNREFUSED', `${ref(p)} → ${n.name}: ${JSON.stringify(r)}`);
      }
    }
  });

  it('execs in the pod netns and cgroup, with the command exit code', async () => {
    const p = find('other', 'server-1');
    const r = await lab.exec(ref(p), ['sh', '-c', 'readlink /proc/self/ns/net; grep "^0::" /proc/self/cgroup; exit 7']);
    assert.equal(r.code, 7);
    const [netLine, cgLine] = r.stdout.trim().split('\n');
    assert.equal(netLine, `net:[${statSync(p.netns).ino}]`);
    assert.equal(cgLine, `0::${p.cgroup.slice(cgroup2Mount().length)}`);
    const other = find('demo', 'client-1');
    assert.notEqual(netLine, `net:[${statSync(other.netns).ino}]`);
  });

  it('runs `weft lab exec` with the exit code of the command', async () => {
    const { spawnSync } = await import('node:child_process');
    const p = find('demo', 'server-1');
    const r = spawnSync(process.execPath, ['agent/bin/weft.js', 'lab', 'exec', '--name', name, ref(p), '--', 'sh', '-c', 'readlink /proc/self/ns/net; exit 3'], { encoding: 'utf8' });
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout.trim(), `net:[${statSync(p.netns).ino}]`);
    const bad = spawnSync(process.execPath, ['agent/bin/weft.js', 'lab', 'exec', '--name', name, 'demo/nope', '--', 'true'], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /pod demo\/nope not found.*WEFT_E_LAB_OBJECT_NOT_FOUND/);
  });

  it('refuses a second up of a healthy lab with the same name', async () => {
    await assert.rejects(Lab.up({ name, nodes: 1, podsPerNode: 0 }), (e: unknown) => e instanceof LabExistsError);
    assert.equal(lab.status().pods.length, 4);
  });

  it('adds and removes pods on demand', async () => {
    const added = await lab.addPod({ namespace: 'demo', name: 'extra', node: 'node2', labels: { app: 'extra' } });
    assert.equal(added.node, 'node2');
    const client = find('demo', 'client-1');
    const h = await lab.httpGet(ref(client), `http://${added.ip}:8080/`);
    assert.equal(JSON.parse(h.body!).pod, 'extra');
    await lab.removePod('demo/extra');
    assert.equal(existsSync(added.netns), false);
    assert.equal(existsSync(added.cgroup), false);
    assert.equal(processAlive(added.pid), false, 'the app is gone');
    assert.equal(lab.status().pods.length, 4);
  });

  it('runs several labs at once, each in its own address slot', async () => {
    const other = await Lab.up({ name: uniqueName('u'), nodes: 1, podsPerNode: 2 });
    try {
      const s2 = other.status();
      assert.notEqual(s2.slot, st.slot);
      assert.ok(s2.pods.every((p) => !st.pods.some((q) => q.ip === p.ip)), 'no shared pod IPs');
      const [a, b] = s2.pods;
      const echo = await other.tcpEcho(ref(a!), b!.ip, 9000, 'second lab');
      assert.equal(echo.reply, 'second lab');
      // The labs are separate networks: lab 1 cannot reach lab 2's pods.
      const cross = await lab.tcpConnect(ref(find('demo', 'client-1')), b!.ip, 9000, 1000);
      assert.equal(cross.ok, false);
    } finally {
      await other.down();
    }
    assertNothingLeft(other.name);
  });
});

describe('lab at 20 pods', { skip }, () => {
  it('runs one app process per pod, each in its own cgroup and netns, all reachable', async (t) => {
    const name = uniqueName('s');
    const lab = await Lab.up({ name, nodes: 2, podsPerNode: 10 });
    t.after(() => destroyLab(name));
    const st = lab.status();
    assert.equal(st.pods.length, 20);
    assert.equal(new Set(st.pods.map((p) => p.ip)).size, 20);
    assert.equal(new Set(st.pods.map((p) => statSync(p.netns).ino)).size, 20, 'distinct netns');
    for (const p of st.pods) {
      assert.equal(readFileSync(join(p.cgroup, 'cgroup.procs'), 'utf8').trim(), String(p.pid), `${p.namespace}/${p.name} runs alone in its cgroup`);
    }
    const from = st.pods[0]!;
    for (const to of [st.pods[1]!, st.pods[10]!, st.pods[19]!]) {
      const h = await lab.httpGet(`${from.namespace}/${from.name}`, `http://${to.ip}:8080/`);
      assert.equal(JSON.parse(h.body!).pod, to.name);
    }
    await lab.down();
    assertNothingLeft(name);
  });
});

describe('lab down', { skip }, () => {
  it('removes every netns, link, cgroup, process, BPF pin and file', async (t) => {
    const name = uniqueName('d');
    const lab = await Lab.up({ name, nodes: 2, podsPerNode: 1 });
    t.after(() => destroyLab(name));
    const st = lab.status();
    // A pin directory of the kind the agent makes, and a long-running exec'd process.
    mkdirSync(`/sys/fs/bpf/weft-${name}-test`);
    const child = lab.spawn(`${st.pods[0]!.namespace}/${st.pods[0]!.name}`, ['sleep', '300'], { stdio: 'ignore' });
    const left = labLeftovers(name);
    assert.equal(left.netns.length, 1 + 2 + 2);
    assert.equal(left.cgroups.length, 2);
    assert.deepEqual(left.pins, [`/sys/fs/bpf/weft-${name}-test`]);
    assert.ok(left.processes.length >= 2, `processes ${left.processes}`);
    await lab.down();
    assertNothingLeft(name);
    assert.equal(existsSync(st.stateDir), false);
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    assert.equal(child.signalCode, 'SIGKILL');
  });
});
