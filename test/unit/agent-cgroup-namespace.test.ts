// Pod discovery from inside a container with its own cgroup namespace (an unprivileged pod on
// cgroup v2): /proc/<pid>/cgroup reads `0::/../../kubepods…`, relative to the agent's
// namespace root. A fake procfs as the agent sees it and a fake host hierarchy at the mount.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodDiscovery, cgroupNamespaceView, hostCgroupPath } from '../../agent/src/agent/index.js';

const UID_A = '0f9e8d7c-1111-4222-8333-444455556666';
const UID_B = 'aaaabbbb-cccc-4ddd-8eee-ffff00001111';
const UID_SELF = 'deadbeef-0000-4000-8000-000000000001';
const sd = (uid: string) => uid.replace(/-/g, '_');
const SELF_PID = 7; // the agent's pid in its own PID namespace
const POD_A = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice`;
const POD_B = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${sd(UID_B)}.slice`;
const POD_SELF = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${sd(UID_SELF)}.slice`;
const AGENT_CG = `${POD_SELF}/cri-containerd-${'e'.repeat(64)}.scope`;

describe('pod discovery in a cgroup namespace (relative /proc/<pid>/cgroup paths)', () => {
  let dir: string;
  let proc: string;
  let mount: string;
  const cgroup = (rel: string, pids: number[]) => {
    mkdirSync(join(mount, rel), { recursive: true });
    writeFileSync(join(mount, rel, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
  };
  const proc1 = (pid: number | string, seen: string, start: number, cgroupNs: string, netnsFrom?: string) => {
    const d = join(proc, String(pid));
    mkdirSync(join(d, 'ns'), { recursive: true });
    writeFileSync(join(d, 'cgroup'), `0::${seen}\n`);
    writeFileSync(join(d, 'stat'), `${pid} (x) S ${Array.from({ length: 18 }, (_, i) => i + 1).join(' ')} ${start} 0 0\n`);
    symlinkSync(cgroupNs, join(d, 'ns', 'cgroup'));
    if (netnsFrom) linkSync(netnsFrom, join(d, 'ns', 'net'));
    else writeFileSync(join(d, 'ns', 'net'), '');
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cgns-'));
    proc = join(dir, 'proc');
    mount = join(dir, 'cgroup');
    mkdirSync(proc);
    // The host hierarchy: other containers' pids are outside the agent's PID namespace (0).
    cgroup('/init.scope', [0]);
    cgroup(`${POD_A}/cri-containerd-${'a'.repeat(64)}.scope`, [0, 0]);
    cgroup(`${POD_B}/cri-containerd-${'b'.repeat(64)}.scope`, [0]);
    cgroup(`${POD_SELF}/cri-containerd-${'f'.repeat(64)}.scope`, [0]);
    cgroup(AGENT_CG, [1, SELF_PID]);
    // /host/proc as the agent reads it: paths relative to its namespace root, AGENT_CG.
    proc1(1, '/../../../../init.scope', 1, 'cgroup:[4026531835]');
    proc1(200, `/../../../kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice/cri-containerd-${'a'.repeat(64)}.scope`, 100, 'cgroup:[4026531835]');
    proc1(300, `/../../kubepods-burstable-pod${sd(UID_B)}.slice/cri-containerd-${'b'.repeat(64)}.scope`, 110, 'cgroup:[4026531835]');
    proc1(700, `/../cri-containerd-${'f'.repeat(64)}.scope`, 90, 'cgroup:[4026531835]'); // a sidecar of the agent's pod
    proc1('self', '/', 95, 'cgroup:[4026532999]', join(proc, '1', 'ns', 'net'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('locates the agent\'s namespace root in the host hierarchy and resolves relative paths against it', () => {
    const view = cgroupNamespaceView(proc, mount, SELF_PID);
    assert.deepEqual(view, { nested: true, root: AGENT_CG });
    assert.equal(hostCgroupPath(view, '/../../../kubepods-besteffort.slice'), '/kubepods.slice/kubepods-besteffort.slice');
    assert.equal(hostCgroupPath({ nested: false, root: '/' }, '/kubepods.slice/x'), '/kubepods.slice/x');
    assert.equal(hostCgroupPath({ nested: true, root: undefined }, '/../x'), undefined);
  });

  it('finds each pod with its absolute cgroup in the mounted host hierarchy; the agent\'s own pod is skipped', () => {
    const d = new PodDiscovery({ proc, cgroupMount: mount, cgroupRoot: join(mount, 'kubepods.slice'), selfPid: SELF_PID });
    const r = d.scan();
    assert.deepEqual([...r.pods.keys()].sort(), [UID_A, UID_B].sort());
    assert.equal(r.pods.get(UID_A)!.cgroupPath, join(mount, POD_A));
    assert.equal(r.pods.get(UID_A)!.pid, 200);
    assert.equal(r.pods.get(UID_B)!.cgroupPath, join(mount, POD_B));
    assert.equal(r.skipped.get(UID_SELF)?.reason, "the agent's own pod");
  });

  it('a namespace root that moved below (agent in a child cgroup) is found too', () => {
    writeFileSync(join(proc, 'self', 'cgroup'), '0::/sub\n');
    cgroup(`${AGENT_CG}/sub`, [SELF_PID]);
    writeFileSync(join(mount, AGENT_CG, 'cgroup.procs'), '1\n');
    try {
      assert.deepEqual(cgroupNamespaceView(proc, mount, SELF_PID), { nested: true, root: AGENT_CG });
    } finally {
      writeFileSync(join(proc, 'self', 'cgroup'), '0::/\n');
      writeFileSync(join(mount, AGENT_CG, 'cgroup.procs'), `1\n${SELF_PID}\n`);
      rmSync(join(mount, AGENT_CG, 'sub'), { recursive: true });
    }
  });

  it('where pid 1\'s namespace link is unreadable (no ptrace access), a relative path reveals the namespace', () => {
    rmSync(join(proc, '1', 'ns', 'cgroup'));
    try {
      assert.deepEqual(cgroupNamespaceView(proc, mount, SELF_PID), { nested: false, root: '/' }, 'no evidence yet');
      const r = new PodDiscovery({ proc, cgroupMount: mount, selfPid: SELF_PID }).scan();
      assert.equal(r.pods.get(UID_A)?.cgroupPath, join(mount, POD_A));
      assert.equal(r.pods.get(UID_B)?.cgroupPath, join(mount, POD_B));
      assert.ok(r.skipped.has(UID_SELF));
    } finally {
      symlinkSync('cgroup:[4026531835]', join(proc, '1', 'ns', 'cgroup'));
    }
  });

  it('if the agent\'s cgroup is not in the mounted hierarchy, no pod is found rather than a wrong cgroup', () => {
    const d = new PodDiscovery({ proc, cgroupMount: mount, selfPid: 4242 });
    assert.deepEqual(cgroupNamespaceView(proc, mount, 4242), { nested: true, root: undefined });
    assert.equal(d.scan().pods.size, 0);
  });
});
