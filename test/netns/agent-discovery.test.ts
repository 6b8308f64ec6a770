// Pod discovery from /proc/*/cgroup, on a procfs laid out in a temporary directory: both of
// kubelet's cgroup drivers, the oldest process of a pod, the node's cgroup root as a fence,
// and the pods never captured (host network, the agent's own pod). No privileges needed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodDiscovery, podOfCgroupPath } from '../../agent/src/agent/index.js';

const UID_A = '0f9e8d7c-1111-4222-8333-444455556666';
const UID_B = 'aaaabbbb-cccc-4ddd-8eee-ffff00001111';
const UID_HOST = '12345678-9abc-4def-8123-456789abcdef';
const UID_SELF = 'deadbeef-0000-4000-8000-000000000001';
const UID_OTHER_NODE = 'cafef00d-0000-4000-8000-000000000002';
const sd = (uid: string) => uid.replace(/-/g, '_');

describe('pod discovery from /proc/*/cgroup', () => {
  let proc: string;
  const mount = '/sys/fs/cgroup';
  const root = `${mount}/weft-lab-node1.slice`;
  const proc1 = (pid: number | string, cgroup: string, start: number, netnsFrom?: string) => {
    const d = join(proc, String(pid));
    mkdirSync(join(d, 'ns'), { recursive: true });
    writeFileSync(join(d, 'cgroup'), `12:cpu:/x\n0::${cgroup}\n`);
    // comm may contain spaces and parentheses; the start time is field 22
    writeFileSync(join(d, 'stat'), `${pid} (node (x) y) S ${Array.from({ length: 18 }, (_, i) => i + 1).join(' ')} ${start} 0 0\n`);
    if (netnsFrom) linkSync(netnsFrom, join(d, 'ns', 'net'));
    else writeFileSync(join(d, 'ns', 'net'), '');
  };

  before(() => {
    proc = mkdtempSync(join(tmpdir(), 'weft-fake-proc-'));
    proc1(1, '/init.scope', 1);
    const systemdPod = `/weft-lab-node1.slice/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice`;
    proc1(300, `${systemdPod}/cri-containerd-${'b'.repeat(64)}.scope`, 500); // the app, younger
    proc1(200, `${systemdPod}/cri-containerd-${'a'.repeat(64)}.scope`, 100); // the sandbox, oldest
    proc1(400, `/weft-lab-node1.slice/kubepods/burstable/pod${UID_B}/${'c'.repeat(64)}`, 50); // cgroupfs driver
    proc1(500, `/weft-lab-node1.slice/kubepods.slice/kubepods-pod${sd(UID_HOST)}.slice/cri-containerd-${'d'.repeat(64)}.scope`, 60, join(proc, '1', 'ns', 'net'));
    proc1(600, `/weft-lab-node2.slice/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_OTHER_NODE)}.slice/x.scope`, 70);
    // the agent's own pod ("self")
    const self = `/weft-lab-node1.slice/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${sd(UID_SELF)}.slice/cri-containerd-${'e'.repeat(64)}.scope`;
    proc1(700, self, 80);
    mkdirSync(join(proc, 'self', 'ns'), { recursive: true });
    writeFileSync(join(proc, 'self', 'cgroup'), `0::${self}\n`);
    linkSync(join(proc, '1', 'ns', 'net'), join(proc, 'self', 'ns', 'net'));
    proc1('notapid', '/whatever', 1);
  });

  after(() => rmSync(proc, { recursive: true, force: true }));

  it('parses both kubelet layouts and nothing else', () => {
    assert.deepEqual(podOfCgroupPath(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice/cri-containerd-x.scope`), {
      uid: UID_A, podPath: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice`,
    });
    assert.deepEqual(podOfCgroupPath(`/kubepods/pod${UID_B}/abc`), { uid: UID_B, podPath: `/kubepods/pod${UID_B}` });
    assert.deepEqual(podOfCgroupPath(`/kubepods.slice/kubepods-pod${sd(UID_B)}.slice`), { uid: UID_B, podPath: `/kubepods.slice/kubepods-pod${sd(UID_B)}.slice` });
    assert.equal(podOfCgroupPath('/system.slice/containerd.service'), undefined);
    assert.equal(podOfCgroupPath('/kubepods/podnot-a-uid/x'), undefined);
  });

  it('finds the pods below the node root, the oldest process each, and never the host network or its own pod', () => {
    const d = new PodDiscovery({ proc, cgroupMount: mount, cgroupRoot: root });
    const r = d.scan();
    assert.deepEqual([...r.pods.keys()].sort(), [UID_A, UID_B].sort());
    const a = r.pods.get(UID_A)!;
    assert.equal(a.pid, 200, 'the oldest process (the sandbox) gives the netns');
    assert.equal(a.netnsPath, join(proc, '200', 'ns', 'net'));
    assert.equal(a.cgroupPath, `${root}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sd(UID_A)}.slice`);
    assert.equal(r.pods.get(UID_B)!.cgroupPath, `${root}/kubepods/burstable/pod${UID_B}`);
    assert.match(r.skipped.get(UID_HOST)!.reason, /host network/);
    assert.match(r.skipped.get(UID_SELF)!.reason, /own pod/);
    assert.equal(r.pods.has(UID_OTHER_NODE) || r.skipped.has(UID_OTHER_NODE), false, 'pods of another node root are not looked at');
  });

  it('without a root fence it sees every node\'s pods', () => {
    const r = new PodDiscovery({ proc, cgroupMount: mount }).scan();
    assert.ok(r.pods.has(UID_OTHER_NODE));
  });
});
