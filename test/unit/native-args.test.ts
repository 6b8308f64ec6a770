// The native facade checks arguments before anything reaches the kernel, names the parameter,
// and turns native failures into NativeError with errno, syscallCode and operation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Socket, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createSecureContext } from 'node:tls';
import { InvalidArgumentError } from '../../agent/src/common/errors.js';
import { addon } from '../../agent/src/native/addon.js';
import {
  BpfLink, BpfMap, BpfObject, NativeError, NativeStateError, bpfObjectPath, cgroup2Mount, encodeScalar, fromNative, listenInNetns, localAddress,
  netnsCookie, peerAddress, probeHelper, socketCookie, socketInNetns, tcAttach, tcDetach, verifyClientChainInHandshake, sysctlInNetns,
} from '../../agent/src/native/index.js';

function invalid(parameter: string) {
  return (e: unknown) => {
    assert.ok(e instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(e)}`);
    assert.equal(e.code, 'WEFT_E_INVALID_ARGUMENT');
    assert.equal(e.parameter, parameter);
    return true;
  };
}

test('facade arguments are checked at the boundary, naming the parameter', async () => {
  assert.throws(() => BpfObject.open('relative.bpf.o'), invalid('path'));
  assert.throws(() => BpfMap.openPinned(''), invalid('path'));
  assert.throws(() => BpfLink.openPinned(42 as never), invalid('path'));
  await assert.rejects(listenInNetns({ port: 70000 }), invalid('options.port'));
  await assert.rejects(listenInNetns({ port: 1, host: 'localhost' }), invalid('options.host'));
  await assert.rejects(listenInNetns({ port: 1, netns: 'weft-x' }), invalid('options.netns'));
  await assert.rejects(socketInNetns({ bind: { host: '1.2.3.4', port: -1 } }), invalid('options.bind.port'));
  await assert.rejects(socketInNetns({ mark: 2 ** 32 }), invalid('options.mark'));
  await assert.rejects(sysctlInNetns({ name: 'kernel.hostname' }), invalid('options.name'));
  await assert.rejects(sysctlInNetns({ name: 'net.ipv4.../x' }), invalid('options.name'));
  await assert.rejects(sysctlInNetns({ netns: 'relative', name: 'net.ipv4.ip_forward' }), invalid('options.netns'));
  await assert.rejects(tcAttach({ fd: 3 }, { ifname: 'lo', direction: 'sideways' as never }), invalid('options.direction'));
  await assert.rejects(tcAttach({ fd: 3 }, { ifname: 'lo', ifindex: 1 }), invalid('options.ifname'));
  await assert.rejects(tcDetach({ ifname: 'lo', priority: 0, handle: 1 }), invalid('options.priority'));
  assert.throws(() => encodeScalar(256, 1, 'value'), invalid('value'));
  assert.throws(() => encodeScalar(1.5, 4, 'value'), invalid('value'));
  assert.deepEqual([...encodeScalar(-1, 2, 'value')], [0xff, 0xff]);
  assert.deepEqual([...encodeScalar(8080, 2, 'value')], [0x90, 0x1f]);
});

test('the addon itself rejects bad arguments with the parameter named (backstop below the facade)', () => {
  const a = addon();
  const check = (fn: () => unknown, parameter: string) =>
    assert.throws(fn, (e: unknown) => {
      const err = e as { code?: string; parameter?: string };
      assert.equal(err.code, 'WEFT_E_INVALID_ARGUMENT');
      assert.equal(err.parameter, parameter);
      return true;
    });
  check(() => a.mapLookup('3' as never, Buffer.alloc(4), 4), 'fd');
  check(() => a.mapLookup(3, 'key' as never, 4), 'key');
  check(() => a.cgroupAttach(3, '/sys/fs/cgroup', 'not_an_attach_type'), 'attachType');
  check(() => a.probeHelper('sched_cls', 'no_such_helper'), 'helper');
  check(() => a.probeProgType('no_such_type'), 'progType');
  check(() => a.setMark(0, -1), 'mark');
  check(() => a.verifyClientChainInHandshake({}), 'sslCtx');
  check(() => a.sysctlInNetns({ name: 'kernel.hostname' }), 'options.name');
  check(() => a.sysctlInNetns({ name: 'net.ipv4/../../x' }), 'options.name');
  check(() => a.verifyClientChainInHandshake(undefined), 'sslCtx');
  assert.throws(() => verifyClientChainInHandshake({} as never), NativeStateError);
  assert.throws(() => verifyClientChainInHandshake(createSecureContext({}), ''), invalid('trustDomain'));
  assert.throws(() => probeHelper('sched_cls', 'no_such_helper'), invalid('helper'));
});

test('BPF object: open failures are NativeErrors, configuration is checked against the object', async () => {
  assert.throws(() => BpfObject.open('/nonexistent/weft.bpf.o'), (e: unknown) => {
    assert.ok(e instanceof NativeError);
    assert.equal(e.code, 'WEFT_E_NATIVE');
    assert.equal(e.syscallCode, 'ENOENT');
    assert.equal(e.errno, 2);
    assert.equal(e.operation, 'bpf_object__open_file');
    assert.match(e.message, /nonexistent/);
    return true;
  });
  const obj = BpfObject.open(bpfObjectPath('selftest'));
  try {
    assert.deepEqual(obj.programs().map((p) => [p.name, p.type, p.expectedAttachType]), [
      ['selftest_connect4', 'cgroup_sock_addr', 'cgroup_inet4_connect'],
      ['selftest_tc', 'sched_cls', null],
      ['selftest_rejected', 'sched_cls', null],
    ]);
    assert.deepEqual(obj.programs().map((p) => p.autoload), [true, true, false]);
    const counts = obj.map('connects_by_port');
    assert.deepEqual([counts.type, counts.keySize, counts.valueSize, counts.maxEntries], ['hash', 2, 8, 1024]);
    assert.deepEqual(obj.globals().filter((g) => g.section === '.rodata').map((g) => [g.name, g.size]), [['watched_port', 2], ['increment', 4], ['tc_verdict', 4]]);
    obj.setGlobal('watched_port', 15001);
    assert.equal(obj.getGlobal('watched_port').readUInt16LE(0), 15001);
    assert.throws(() => obj.setGlobal('watched_port', Buffer.alloc(4)), invalid('value'));
    assert.throws(() => obj.setGlobal('watched_port', 70000), invalid('value'));
    assert.throws(() => obj.setGlobal('no_such_global', 1), invalid('name'));
    assert.throws(() => obj.map('no_such_map'), invalid('name'));
    assert.throws(() => obj.program('no_such_prog'), invalid('name'));
    assert.throws(() => counts.fd, NativeStateError, 'a map has no fd before load');
  } finally {
    obj.close();
  }
  assert.throws(() => obj.programs(), NativeStateError);
  obj.close(); // idempotent
});

test('native errors become NativeError; argument errors become InvalidArgumentError; others pass', () => {
  const raw = Object.assign(new Error('bpf_link_create failed: Operation not permitted [EPERM]'), { errno: 1, code: 'EPERM', syscall: 'bpf_link_create', detail: '/sys/fs/cgroup/x' });
  const e = fromNative(raw);
  assert.ok(e instanceof NativeError);
  assert.equal(e.errno, 1);
  assert.equal(e.syscallCode, 'EPERM');
  assert.equal(e.operation, 'bpf_link_create');
  assert.equal(e.detail, '/sys/fs/cgroup/x');
  assert.match(e.hint ?? '', /root/);
  assert.equal(e.cause, raw);
  const arg = fromNative(Object.assign(new TypeError('fd: expected an integer'), { code: 'WEFT_E_INVALID_ARGUMENT', parameter: 'fd' }));
  assert.ok(arg instanceof InvalidArgumentError);
  assert.equal(arg.message, 'fd: expected an integer');
  const plain = new RangeError('x');
  assert.equal(fromNative(plain), plain);
});

test('socket queries work on sockets Node made (no privileges needed)', async () => {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = new Socket();
  await new Promise<void>((r) => client.connect(port, '127.0.0.1', r));
  try {
    assert.deepEqual(peerAddress(client), { family: 'IPv4', address: '127.0.0.1', port });
    assert.equal(localAddress(client).port, client.localPort);
    assert.equal(localAddress(server).port, port);
    const c1 = socketCookie(client);
    assert.equal(typeof c1, 'bigint');
    assert.notEqual(c1, 0n);
    assert.notEqual(socketCookie(server), c1, 'cookies are per socket');
    assert.equal(netnsCookie(client), netnsCookie(server), 'same netns, same netns cookie');
    assert.throws(() => socketCookie(0x7ffffff0), (e: unknown) => e instanceof NativeError && e.syscallCode === 'EBADF' && e.operation === 'getsockopt(SO_COOKIE)');
  } finally {
    client.destroy();
    server.close();
  }
});

test('cgroup2Mount reads /proc/mounts format', () => {
  assert.equal(cgroup2Mount('cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n'), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2Mount('proc /proc proc rw 0 0\n'), undefined);
});

test('a missing addon is a clear error telling the user to build', () => {
  const facade = fileURLToPath(new URL('../../agent/src/native/index.js', import.meta.url));
  const script = `import(${JSON.stringify(facade)}).then((n) => { try { n.socketCookie(0); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, hint: e.hint, message: e.message })); } });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, WEFT_NATIVE_ADDON: '/nonexistent/weft_native.node' }, encoding: 'utf8' });
  const out = JSON.parse(r.stdout) as { name: string; code: string; hint: string; message: string };
  assert.equal(out.name, 'NativeAddonMissingError');
  assert.equal(out.code, 'WEFT_E_NATIVE_MISSING');
  assert.match(out.hint, /npm run build/);
  assert.match(out.message, /nonexistent\/weft_native\.node/);
});
