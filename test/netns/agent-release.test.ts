// Uninstall in the lab: an agent started with `--on-exit release` gives every pod back on
// SIGTERM — no BPF programs on the pod cgroups, no tc filter on eth0, no in-pod routing, no pins
// — and traffic flows in plaintext with no agent running (with the pins kept it would fail
// closed, which the lifecycle test shows). The lab's own agents keep their pins (--on-exit auto).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, cgroup2Mount, cgroupOfProcess, spawnInPod, type PodStatus } from '../../agent/src/lab/index.js';
import { run } from '../../agent/src/common/exec.js';
import { agentDump, waitFor } from './mesh-helpers.js';

const skip = privilegedSkip();

async function inNetns(netns: string, argv: string[]): Promise<string> {
  const r = await run('nsenter', [`--net=${netns}`, '--', ...argv], { allowFailure: true, timeoutMs: 10_000 });
  return r.stdout;
}

describe('agent --on-exit release (uninstall leaves pods as they were)', { skip }, () => {
  const name = `r${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let client: PodStatus;
  let server: PodStatus;
  let agent: ChildProcess | undefined;
  let log = '';
  let scope: string | undefined;

  before(async () => {
    lab = await Lab.up({ name, nodes: 1, podsPerNode: 2, mesh: true });
    client = lab.pod('demo/client-1');
    server = lab.pod('demo/server-1');
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    await waitFor('enrolment', async () => {
      const d = await agentDump(lab, 'node1');
      return d.agent.ready && d.enrolment.length >= 2 && d.enrolment.every((e) => e.state === 'enrolled');
    }, 20_000);
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent!.once('exit', r));
    }
    if (scope && existsSync(scope)) rmdirSync(scope);
    await lab?.down();
  });

  it('the lab agent (auto, outside Kubernetes) keeps its pins on SIGTERM; the same agent with --on-exit release gives every pod back, traffic flows in plaintext', async () => {
    const labAgent = lab.status().mesh!.agents.find((a) => a.alive && a.node === 'node1')!;
    const argv = readFileSync(`/proc/${labAgent.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    scope = join(dirname(cgroupOfProcess(labAgent.pid, cgroup2Mount()!)!), 'agent-node1-release.scope');
    const pinDir = argv[argv.indexOf('--bpffs-dir') + 1]!;
    await lab.stopAgent('node1');
    assert.ok(readdirSync(join(pinDir, 'pods')).length >= 2, 'pods stay pinned');
    assert.match(readFileSync(labAgent.log, 'utf8'), /"release":false,"reason":"not running in Kubernetes[^}]*"msg":"pods stay captured for the next agent"/);

    // The same agent command, plus --on-exit release, in the node netns (a lab cgroup, so a
    // crash is swept with the lab).
    mkdirSync(scope);
    agent = spawnInPod(scope, lab.status().nodes[0]!.netns, [...argv, '--on-exit', 'release'], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor('the release agent to be ready', async () => {
      if (agent!.exitCode !== null) throw new Error(`the agent exited: ${log.slice(-1500)}`);
      return /"msg":"agent ready"/.test(log);
    }, 60_000, 100);
    const d = await agentDump(lab, 'node1');
    assert.ok(d.enrolment.some((e) => e.uid === client.uid && e.state === 'enrolled'));
    const before = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/through-the-mesh`);
    assert.equal(before.status, 200, JSON.stringify(before));
    assert.equal((await inNetns(client.netns, ['ip', '-4', 'rule', 'show'])).includes('lookup 5747'), true, 'in-pod routing while enrolled');
    // The proxy's ports are kept out of the pod's ephemeral range while it is enrolled.
    const reserved = (p: PodStatus) => inNetns(p.netns, ['cat', '/proc/sys/net/ipv4/ip_local_reserved_ports']).then((t) => t.trim());
    assert.equal(await reserved(client), '15001,15006,15008');

    const exited = new Promise<number | null>((r) => agent!.once('exit', (code) => r(code)));
    agent.kill('SIGTERM');
    assert.equal(await exited, 0, log.slice(-2000));
    assert.match(log, /"release":true,"reason":"--on-exit release".*no successor: releasing every pod/);
    assert.match(log, /released every pod; pins removed/);

    // Nothing of Weft is left on the pods or in bpffs.
    assert.equal(existsSync(pinDir), false, `${pinDir} is gone`);
    for (const p of [client, server]) {
      const cg = await run('bpftool', ['cgroup', 'show', p.podCgroup], { allowFailure: true });
      assert.equal(cg.stdout.trim(), '', `no cgroup programs on ${p.podCgroup}: ${cg.stdout}`);
      assert.equal((await inNetns(p.netns, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).trim(), '', `no tc filter in ${p.name}`);
      assert.equal((await inNetns(p.netns, ['ip', '-4', 'rule', 'show'])).includes('lookup 5747'), false, `no fwmark rule in ${p.name}`);
      assert.equal((await inNetns(p.netns, ['ip', '-4', 'route', 'show', 'table', '5747'])).trim(), '', `no local table in ${p.name}`);
      assert.equal(await reserved(p), '', `no reserved ports left in ${p.name}`);
    }
    // No agent runs on the node, yet both directions work: plaintext, as before Weft.
    const out = await lab.httpGet('demo/client-1', `http://${server.ip}:8080/plaintext`);
    assert.equal(out.status, 200, JSON.stringify(out));
    const inbound = await lab.httpGet('demo/server-1', `http://${client.ip}:8080/plaintext`);
    assert.equal(inbound.status, 200, JSON.stringify(inbound));
  });
});
