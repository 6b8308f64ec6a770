// The lab's address plan, cgroup layout, default pod layout and label syntax.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressPlan, applyLabelChanges, cgroup2Mount, defaultPods, inBenchmarkRange, MAX_SLOTS, parseLabelChange, podCgroupLayout, validateLabName,
} from '../../agent/src/lab/index.js';

describe('lab address plan', () => {
  it('keeps every address of every slot inside 198.18.0.0/15 and apart from other slots', () => {
    const seen = new Map<string, number>();
    for (let s = 0; s < MAX_SLOTS; s++) {
      const p = addressPlan(s);
      const addrs = [p.fabricIp, p.nodeIp(1), p.nodeIp(15), p.podGateway(1), p.podIp(1, 10), p.podIp(15, 254), p.serviceIp(10), p.serviceIp(254)];
      for (const a of addrs) {
        assert.ok(inBenchmarkRange(a), a);
        const other = seen.get(a);
        assert.ok(other === undefined || other === s, `${a} used by slots ${other} and ${s}`);
        seen.set(a, s);
      }
    }
    assert.throws(() => addressPlan(MAX_SLOTS), /out of range/);
    assert.throws(() => addressPlan(0).nodeIp(16), /out of range/);
    assert.equal(inBenchmarkRange('198.20.0.1'), false);
    assert.equal(inBenchmarkRange('10.0.0.1'), false);
  });
});

describe('lab cgroup layout', () => {
  const uid = '8e067d70-c69e-46c0-a06f-eb8870af5e5d';
  const id = 'ab'.repeat(32);
  it('lays pods out like kubelet with the systemd driver, under a per-node prefix', () => {
    const l = podCgroupLayout({ root: '/sys/fs/cgroup', nodePrefix: 'weft-lab-node1', uid, containerId: id });
    assert.equal(l.nodeDir, '/sys/fs/cgroup/weft-lab-node1.slice');
    assert.equal(l.containerDir, `/sys/fs/cgroup/weft-lab-node1.slice/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8e067d70_c69e_46c0_a06f_eb8870af5e5d.slice/cri-containerd-${id}.scope`);
    const real = podCgroupLayout({ root: '/sys/fs/cgroup', nodePrefix: '', uid, containerId: id, qos: 'guaranteed' });
    assert.equal(real.podDir, '/sys/fs/cgroup/kubepods.slice/kubepods-pod8e067d70_c69e_46c0_a06f_eb8870af5e5d.slice');
  });
  it('can produce the cgroupfs layout', () => {
    const l = podCgroupLayout({ root: '/sys/fs/cgroup', nodePrefix: 'weft-lab-node1', uid, containerId: id, driver: 'cgroupfs', qos: 'burstable' });
    assert.equal(l.containerDir, `/sys/fs/cgroup/weft-lab-node1/kubepods/burstable/pod${uid}/${id}`);
  });
  it('finds the cgroup2 mount in /proc/mounts text', () => {
    assert.equal(cgroup2Mount('tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n'), '/sys/fs/cgroup/unified');
    assert.throws(() => cgroup2Mount('proc /proc proc rw 0 0\n'), /no cgroup v2 mount/);
  });
});

describe('lab default layout', () => {
  it('spreads pods round-robin and gives same-node, cross-node and cross-namespace pairs', () => {
    const pods = defaultPods(['node1', 'node2'], 2);
    assert.deepEqual(pods.map((p) => `${p.namespace}/${p.name}@${p.node}`), ['demo/client-1@node1', 'demo/server-1@node2', 'other/client-1@node1', 'other/server-1@node2']);
    const many = defaultPods(['node1', 'node2', 'node3'], 4);
    assert.equal(many.length, 12);
    assert.equal(new Set(many.map((p) => `${p.namespace}/${p.name}`)).size, 12, 'names are unique');
    for (const n of ['node1', 'node2', 'node3']) assert.equal(many.filter((p) => p.node === n).length, 4);
  });
});

describe('lab names and labels', () => {
  it('accepts short dash-free lab names only', () => {
    assert.equal(validateLabName('t1a2'), 't1a2');
    for (const bad of ['', 'Lab', 'a-b', '1abc', 'abcdefghijklm']) assert.throws(() => validateLabName(bad), /lab name/);
  });
  it('parses kubectl label changes', () => {
    assert.deepEqual(parseLabelChange('weft.io/mesh=enabled'), { key: 'weft.io/mesh', value: 'enabled' });
    assert.deepEqual(parseLabelChange('weft.io/mesh-'), { key: 'weft.io/mesh', remove: true });
    assert.deepEqual(parseLabelChange('empty='), { key: 'empty', value: '' });
    for (const bad of ['novalue', '=x', 'a=b c', 'UPPER.case/x=y', `k=${'v'.repeat(64)}`]) assert.throws(() => parseLabelChange(bad), /label/, bad);
  });
  it('needs overwrite to change a value, and removing a missing key is no error', () => {
    const r = applyLabelChanges({ a: '1' }, [{ key: 'a', value: '2' }], false);
    assert.equal(r.conflict, 'a');
    assert.deepEqual(r.labels, { a: '1' });
    assert.deepEqual(applyLabelChanges({ a: '1' }, [{ key: 'a', value: '2' }, { key: 'b', remove: true }], true).labels, { a: '2' });
    assert.deepEqual(applyLabelChanges({ a: '1' }, [{ key: 'a', remove: true }], false).labels, {});
  });
});
