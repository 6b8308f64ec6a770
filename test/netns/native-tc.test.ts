// TC attachment inside a network namespace, real traffic through the attached program,
// BPF_PROG_TEST_RUN, and the kernel feature probes `weft check` uses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket, createServer } from 'node:net';
import { InvalidArgumentError } from '../../agent/src/common/errors.js';
import { privilegedSkip } from '../helpers/privilege.js';
import { makeNetns, removeNetns, sh as run, sweepStale } from './native-fixtures.js';
import {
  BpfObject, NativeError, bpfObjectPath, ifindexInNetns, listenInNetns, probeHelper, probeProgType, socketInNetns, tcDetach, tcHookDestroy, tcQuery,
} from '../../agent/src/native/index.js';

const skip = privilegedSkip();
const SLOT = { priority: 7, handle: 7 } as const;

const counter = (obj: BpfObject, i: number) => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(i);
  return obj.map('packets').lookup(k)!.readBigUInt64LE(0);
};

describe('native: tc in a network namespace', { skip }, () => {
  let ns = { name: '', path: '' };
  let obj: BpfObject;

  before(async () => {
    sweepStale();
    ns = makeNetns();
    obj = BpfObject.open(bpfObjectPath('selftest'));
    obj.setAutoload('selftest_connect4', false);
    await obj.load();
  });

  after(async () => {
    obj?.close();
    removeNetns(ns.name);
  });

  test('attach on lo inside the netns, see it there (and only there), count real packets, replace, detach', async () => {
    const prog = obj.program('selftest_tc');
    const progId = prog.info().id;
    const target = { netns: ns.path, ifname: 'lo', direction: 'ingress' as const };

    assert.equal(await ifindexInNetns(ns.path, 'lo'), 1);
    const a = await prog.attachTc({ ...target, ...SLOT });
    assert.deepEqual(a, { ifindex: 1, handle: 7, priority: 7, progId, hookCreated: true });
    assert.equal((await tcQuery({ ...target, ...SLOT }))?.progId, progId);
    assert.equal(await tcQuery({ ifname: 'lo', ...SLOT }), null, 'the host netns is untouched');
    const shown = run('nsenter', [`--net=${ns.path}`, 'tc', 'filter', 'show', 'dev', 'lo', 'ingress']);
    assert.match(shown.stdout, /selftest_tc/);
    assert.match(shown.stdout, /direct-action/);

    // Real traffic on lo inside the netns passes through the program.
    const before0 = counter(obj, 0);
    const before1 = counter(obj, 1);
    const lfd = await listenInNetns({ netns: ns.path, host: '127.0.0.1', port: 0 });
    const server = createServer((s) => s.end('pong'));
    await new Promise<void>((r) => server.listen({ fd: lfd }, r));
    try {
      const port = (server.address() as { port: number }).port;
      const client = new Socket({ fd: await socketInNetns({ netns: ns.path }) });
      const reply = await new Promise<string>((resolve, reject) => {
        let got = '';
        client.on('data', (d) => (got += d)).on('end', () => resolve(got)).on('error', reject);
        client.connect(port, '127.0.0.1');
      });
      assert.equal(reply, 'pong');
    } finally {
      server.close();
    }
    assert.ok(counter(obj, 0) >= before0 + 3n, 'handshake, data and FIN packets were counted');
    assert.ok(counter(obj, 1) >= before1 + 3n, 'as IPv4');

    await assert.rejects(prog.attachTc({ ...target, ...SLOT }), (e: unknown) => e instanceof NativeError && e.syscallCode === 'EEXIST' && e.operation === 'bpf_tc_attach');
    const replaced = await prog.attachTc({ ...target, ...SLOT, replace: true });
    assert.equal(replaced.hookCreated, false, 'clsact already there');
    assert.equal(replaced.progId, progId);

    assert.equal(await tcDetach({ ...target, ...SLOT }), true);
    assert.equal(await tcQuery({ ...target, ...SLOT }), null);
    assert.equal(await tcDetach({ ...target, ...SLOT }), false, 'detaching twice is harmless');
    assert.equal(await tcHookDestroy({ netns: ns.path, ifname: 'lo' }), true);
    assert.equal(await tcHookDestroy({ netns: ns.path, ifname: 'lo' }), false);
    const after = run('nsenter', [`--net=${ns.path}`, 'tc', 'qdisc', 'show', 'dev', 'lo']);
    assert.doesNotMatch(after.stdout, /clsact/);
  });

  test('a missing interface or netns is a NativeError naming the operation', async () => {
    const prog = obj.program('selftest_tc');
    await assert.rejects(prog.attachTc({ netns: ns.path, ifname: 'weft-nope0' }), (e: unknown) => {
      assert.ok(e instanceof NativeError);
      assert.equal(e.syscallCode, 'ENODEV');
      assert.equal(e.operation, 'if_nametoindex');
      assert.match(e.message, /weft-nope0/);
      return true;
    });
    await assert.rejects(prog.attachTc({ netns: '/run/netns/weft-nt-absent', ifname: 'lo' }), (e: unknown) => e instanceof NativeError && e.syscallCode === 'ENOENT' && e.operation === 'open netns');
  });
});

describe('native: BPF_PROG_TEST_RUN', { skip }, () => {
  test('runs the tc program on a frame: the configured verdict comes back, counters move', async () => {
    const obj = BpfObject.open(bpfObjectPath('selftest'));
    try {
      obj.setGlobal('tc_verdict', 2); // TC_ACT_SHOT
      obj.setAutoload('selftest_connect4', false);
      await obj.load();
      const prog = obj.program('selftest_tc');
      const frame = Buffer.alloc(60);
      frame.writeUInt16BE(0x0800, 12); // IPv4
      frame[14] = 0x45;
      const r = await prog.testRun({ data: frame });
      assert.equal(r.retval, 2);
      assert.equal(typeof r.durationNs, 'number');
      assert.deepEqual(r.dataOut, frame, 'the program does not rewrite the packet');
      assert.deepEqual([counter(obj, 0), counter(obj, 1)], [1n, 1n]);
      const arp = Buffer.alloc(60);
      arp.writeUInt16BE(0x0806, 12);
      await prog.testRun({ data: arp, repeat: 10 });
      assert.deepEqual([counter(obj, 0), counter(obj, 1)], [11n, 1n]);
      // Per-CPU maps return one 8-byte-aligned value per possible CPU.
      const runs = obj.map('runs');
      const perCpu = runs.lookup(Buffer.alloc(4))!;
      assert.equal(runs.perCpu, true);
      assert.equal(perCpu.length % 8, 0);
      assert.ok(perCpu.length >= 8);
      let total = 0n;
      for (let i = 0; i < perCpu.length; i += 8) total += perCpu.readBigUInt64LE(i);
      assert.equal(total, 11n);
      await assert.rejects(prog.testRun({}), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'options.data');
    } finally {
      obj.close();
    }
  });
});

describe('native: feature probes', { skip }, () => {
  test('the program types and helpers Weft uses are accepted; wrong pairs are not', () => {
    for (const t of ['cgroup_sock_addr', 'sock_ops', 'sched_cls']) assert.equal(probeProgType(t), true, t);
    assert.equal(probeProgType('cgroup_sock_addr', 'cgroup_inet6_connect'), true);
    for (const h of ['get_socket_cookie', 'get_netns_cookie', 'sk_assign', 'skc_lookup_tcp', 'sk_lookup_tcp', 'sk_release', 'map_lookup_elem']) {
      assert.equal(probeHelper('sched_cls', h), true, `sched_cls ${h}`);
    }
    assert.equal(probeHelper('cgroup_sock_addr', 'bind'), true);
    assert.equal(probeHelper('cgroup_sock_addr', 'bpf_get_netns_cookie'), true, 'the bpf_ prefix is accepted');
    assert.equal(probeHelper('sock_ops', 'get_netns_cookie'), true);
    // Helpers a program type may not call are reported as missing, not as supported.
    assert.equal(probeHelper('sched_cls', 'bind'), false);
    assert.equal(probeHelper('sock_ops', 'sk_assign'), false);
    assert.equal(probeHelper('sched_cls', 'xdp_adjust_head'), false);
    assert.throws(() => probeProgType('no_such_type'), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'progType');
  });
});
