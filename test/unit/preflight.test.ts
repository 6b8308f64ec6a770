import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cgroup2Mount, checkBpfFeatures, checkBpffs, checkCapabilities, checkCgroup2, checkKernel, parseKernelVersion,
} from '../../agent/src/preflight/node-checks.js';

const hybrid = `cgroup /sys/fs/cgroup/cpu cgroup rw 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
bpf /sys/fs/bpf bpf rw,relatime 0 0
`;

test('kernel version: parsed, and old kernels fail with a hint', () => {
  assert.deepEqual(parseKernelVersion('6.18.44-fc-v657'), [6, 18, 44]);
  assert.equal(checkKernel('6.1.0-18-amd64').ok, true);
  const old = checkKernel('5.4.0-150-generic');
  assert.equal(old.ok, false);
  assert.match(old.hint ?? '', /5\.15/);
});

test('cgroup2 is found wherever it is mounted (hybrid layout or unified)', () => {
  assert.equal(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), '/sys/fs/cgroup');
  assert.equal(checkCgroup2(hybrid).detail, 'mounted at /sys/fs/cgroup/unified');
  const none = checkCgroup2('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n');
  assert.equal(none.ok, false);
  assert.ok(none.hint);
});

test('bpffs must be mounted at /sys/fs/bpf', () => {
  assert.equal(checkBpffs(hybrid).ok, true);
  assert.equal(checkBpffs('bpf /mnt/other bpf rw 0 0\n').ok, false);
});

test('capabilities: each missing one fails and names why it is needed', () => {
  const all = checkCapabilities((1n << 39n) | (1n << 12n) | (1n << 21n));
  assert.ok(all.every((c) => c.ok));
  const noBpf = checkCapabilities((1n << 12n) | (1n << 21n));
  const bpf = noBpf.find((c) => c.name === 'cap BPF')!;
  assert.equal(bpf.ok, false);
  assert.match(bpf.hint ?? '', /load BPF programs/);
});

test('BPF feature probes: a missing helper or type fails; a missing addon fails with a build hint', () => {
  const ok = checkBpfFeatures({ probeProgType: () => true, probeHelper: () => true });
  assert.ok(ok.every((c) => c.ok));
  const noAssign = checkBpfFeatures({ probeProgType: () => true, probeHelper: (_t, h) => h !== 'sk_assign' });
  const tc = noAssign.find((c) => c.name === 'helpers sched_cls')!;
  assert.equal(tc.ok, false);
  assert.match(tc.detail, /sk_assign/);
  const noSockops = checkBpfFeatures({ probeProgType: (t) => t !== 'sock_ops', probeHelper: () => true });
  assert.equal(noSockops.find((c) => c.name === 'prog sock_ops')!.ok, false);
  const missing = checkBpfFeatures(new Error('addon not built'));
  assert.equal(missing[0]!.ok, false);
  assert.match(missing[0]!.hint ?? '', /npm run build/);
});

test('the helper lists match what the BPF programs in bpf/ call', async () => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { BPF_NEEDS } = await import('../../agent/src/preflight/node-checks.js');
  const dir = new URL('../../../bpf/', import.meta.url);
  const probed = new Set(BPF_NEEDS.flatMap((n) => n.helpers));
  const notHelpers = new Set(['htonl', 'htons', 'ntohl', 'ntohs']);
  for (const f of readdirSync(dir).filter((f) => (f.endsWith('.bpf.c') || f.endsWith('.h')) && f !== 'selftest.bpf.c')) {
    const used = [...readFileSync(new URL(f, dir), 'utf8').matchAll(/\bbpf_([a-z_]+)\(/g)].map((m) => m[1]!).filter((h) => !notHelpers.has(h));
    for (const h of used) assert.ok(probed.has(h), `${f} calls bpf_${h}, which weft check does not probe`);
  }
});
