// The TS codec must lay structs out exactly as clang does for the BPF programs: compare every
// offset in LAYOUTS with the BTF of the compiled objects, then round-trip real values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LAYOUTS, decodeEnrolment, decodeOrigDst, decodeOrigKey, decodePodConfig, decodeUid, encodeEnrolment, encodeOrigDst,
  encodeOrigKey, encodePodConfig, encodeUid, ENROL_DONE, AF_INET, encodeIpKey, decodeIpKey,
} from '../../agent/src/redirect/codec.js';
import { InvalidArgumentError } from '../../agent/src/common/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const objects = ['connect4', 'connect6', 'sockops', 'tc_ingress'].map((n) => join(root, 'build', 'bpf', `${n}.bpf.o`));

/** struct name → { size, fields: name → byte offset } parsed from `bpftool btf dump … format raw`. */
function btfStructs(obj: string): Map<string, { size: number; fields: Record<string, number> }> {
  const r = spawnSync('bpftool', ['btf', 'dump', 'file', obj, 'format', 'raw'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `bpftool btf dump ${obj}: ${r.stderr}`);
  const out = new Map<string, { size: number; fields: Record<string, number> }>();
  let cur: { size: number; fields: Record<string, number> } | undefined;
  for (const line of r.stdout.split('\n')) {
    const s = /^\[\d+\] STRUCT '(\w+)' size=(\d+)/.exec(line);
    if (s) { cur = { size: Number(s[2]), fields: {} }; out.set(s[1]!, cur); continue; }
    const m = /^\t'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (m && cur) { cur.fields[m[1]!] = Number(m[2]) / 8; continue; }
    cur = undefined;
  }
  return out;
}

describe('redirect codec', () => {
  it('matches the BTF layout of every shared struct in the built BPF objects', { skip: objects.every(existsSync) ? false : 'build/bpf not built (npm run build)' }, () => {
    const seen = new Set<string>();
    for (const obj of objects) {
      for (const [name, st] of btfStructs(obj)) {
        if (!(name in LAYOUTS)) continue;
        const want = LAYOUTS[name as keyof typeof LAYOUTS];
        assert.equal(st.size, want.size, `${name} size in ${obj}`);
        assert.deepEqual(st.fields, want.fields, `${name} fields in ${obj}`);
        seen.add(name);
      }
    }
    assert.deepEqual([...seen].sort(), Object.keys(LAYOUTS).sort(), 'every struct in LAYOUTS appears in some object');
  });

  it('round-trips pod config, keys, original destinations and enrolments', () => {
    const cfg = { enrolled: true, ip4: '198.18.1.2', nodeIp4: '198.18.1.1', excludedPorts: [22, 9090] };
    const b = encodePodConfig(cfg);
    assert.equal(b.length, 64);
    assert.deepEqual([...b.subarray(4, 8)], [198, 18, 1, 2], 'IP in network order');
    assert.deepEqual(decodePodConfig(b), cfg);
    assert.deepEqual(decodePodConfig(encodePodConfig({ enrolled: false, excludedPorts: [] })), { enrolled: false, ip4: undefined, nodeIp4: undefined, excludedPorts: [] });

    const key = { netnsCookie: 0x1234_5678_9abc_def0n, port: 40001, family: AF_INET } as const;
    assert.deepEqual(decodeOrigKey(encodeOrigKey(key)), key);
    const dst = { address: '198.19.0.7', port: 8080, family: AF_INET } as const;
    assert.deepEqual(decodeOrigDst(encodeOrigDst(dst)), dst);
    assert.equal(decodeUid(encodeUid('6b1e-uid')), '6b1e-uid');
    const ipk = encodeIpKey('198.18.3.4');
    assert.deepEqual([...ipk], [198, 18, 3, 4, ...Array(12).fill(0), AF_INET, 0, 0, 0]);
    assert.equal(decodeIpKey(ipk), '198.18.3.4');

    const e = {
      netnsCookie: 9n, cgroupId: 77n, state: ENROL_DONE, createdClsact: true, ifindex: 3, ip4: '198.18.0.9', nodeIp4: undefined, ifname: 'eth0',
      netnsPath: '/run/netns/weft-x-p1', cgroupPath: '/sys/fs/cgroup/unified/kubepods.slice/x',
    } as const;
    assert.deepEqual(decodeEnrolment(encodeEnrolment(e)), e);
  });

  it('rejects values the kernel side cannot hold, naming the field', () => {
    assert.throws(() => encodePodConfig({ enrolled: true, excludedPorts: Array.from({ length: 17 }, (_, i) => i + 1) }), (err: unknown) => err instanceof InvalidArgumentError && /excludePorts/.test(err.message));
    assert.throws(() => encodePodConfig({ enrolled: true, excludedPorts: [70000] }), InvalidArgumentError);
    assert.throws(() => encodePodConfig({ enrolled: true, ip4: 'fd00::1', excludedPorts: [] }), /pod\.ip/);
    assert.throws(() => encodeUid('x'.repeat(64)), /pod\.uid/);
    assert.throws(() => decodeOrigDst(Buffer.alloc(10)), /expected 24 bytes/);
  });
});
