// A real BPF program through the whole chain: bpf/selftest.bpf.c built by `npm run build`,
// opened, configured through a const volatile global, loaded, attached to a fresh cgroup as a
// bpf_link, exercised by a process in that cgroup, read back from its map; then the link and
// map are pinned, outlive the object, are adopted again from their pins, and detached.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, rmdirSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { privilegedSkip } from '../helpers/privilege.js';
import { sweepStale, testName } from './native-fixtures.js';
import { BpfLink, BpfMap, BpfObject, NativeError, bpfObjectPath, bpffsMount, cgroup2Mount, cgroupId, cgroupPrograms, unpin } from '../../agent/src/native/index.js';

const skip = privilegedSkip();

/** Runs node in `cgroup`, connecting once to each port on 127.0.0.1; resolves when it exits. */
function connectFromCgroup(cgroup: string, ports: number[]): Promise<void> {
  const js = `const net=require('net');(async()=>{for(const p of ${JSON.stringify(ports)})await new Promise((res,rej)=>{const s=net.connect(p,'127.0.0.1',()=>{s.destroy();res()});s.on('error',rej)})})().catch(e=>{console.error(e.message);process.exit(1)})`;
  // The shell moves itself into the cgroup first, so node and its sockets belong to it.
  const child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec "$2" -e "$3"', 'sh', cgroup, process.execPath, js], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}

function listen(): Promise<Server> {
  const s = createServer((c) => c.on('error', () => {}).end());
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

const portOf = (s: Server) => (s.address() as { port: number }).port;
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

describe('native: a real BPF program through the whole chain', { skip }, () => {
  const tag = testName('weft-test');
  let cgroup = '';
  let pinDir = '';
  let watched: Server;
  let other: Server;

  before(async () => {
    sweepStale();
    cgroup = join(cgroup2Mount()!, tag);
    pinDir = join(bpffsMount()!, tag);
    mkdirSync(cgroup);
    mkdirSync(pinDir);
    watched = await listen();
    other = await listen();
  });

  after(() => {
    watched?.close();
    other?.close();
    // Pins first (a pinned link keeps the program attached), then the cgroup.
    if (pinDir && existsSync(pinDir)) rmSync(pinDir, { recursive: true, force: true });
    if (cgroup && existsSync(cgroup)) rmdirSync(cgroup);
  });

  test('build → open → set global → load → attach → count → pin → adopt → detach', async () => {
    const obj = BpfObject.open(bpfObjectPath('selftest'));
    let objClosed = false;
    try {
      obj.setGlobal('watched_port', portOf(watched));
      obj.setGlobal('increment', 5);
      await obj.load();
      assert.equal(obj.loaded, true);
      assert.throws(() => obj.setGlobal('increment', 1), /before load/);

      const prog = obj.program('selftest_connect4');
      const progId = prog.info().id;
      const counts = obj.map('connects_by_port');
      const link = prog.attachCgroup(cgroup);
      const attached = cgroupPrograms(cgroup, 'cgroup_inet4_connect');
      assert.deepEqual(attached.map((p) => p.id), [progId]);
      assert.equal(attached[0]!.name, prog.info().name);

      // Two connects to the watched port and one elsewhere from inside the cgroup; one from us.
      await connectFromCgroup(cgroup, [portOf(watched), portOf(other), portOf(watched)]);
      await new Promise<void>((r, j) => { const s = connect(portOf(watched), '127.0.0.1', () => { s.destroy(); r(); }); s.on('error', j); });
      assert.equal(counts.lookup(u16(portOf(watched)))?.readBigUInt64LE(0), 10n, 'two connects × increment 5 (ours, outside the cgroup, not counted)');
      assert.equal(counts.lookup(u16(portOf(other))), undefined, 'the unwatched port is not counted');
      assert.deepEqual(counts.keys().map((k) => k.readUInt16LE(0)), [portOf(watched)]);

      // Pin link and map, close everything this process holds: the program stays attached.
      link.pin(join(pinDir, 'link'));
      counts.pin(join(pinDir, 'counts'));
      link.close();
      obj.close();
      objClosed = true;
      assert.throws(() => counts.lookup(u16(1)), /closed/);
      assert.deepEqual(cgroupPrograms(cgroup, 'cgroup_inet4_connect').map((p) => p.id), [progId], 'pinned link outlives its fds');

      await connectFromCgroup(cgroup, [portOf(watched)]);
      const pinnedCounts = BpfMap.openPinned(join(pinDir, 'counts'));
      try {
        assert.deepEqual([pinnedCounts.type, pinnedCounts.keySize, pinnedCounts.valueSize], ['hash', 2, 8]);
        assert.equal(pinnedCounts.lookup(u16(portOf(watched)))?.readBigUInt64LE(0), 15n, 'still counting after the object closed');

        // Adopt the link from its pin, as an agent does after a restart.
        const adopted = BpfLink.openPinned(join(pinDir, 'link'));
        const info = adopted.info();
        assert.equal(info.type, 'cgroup');
        assert.equal(info.progId, progId);
        assert.equal(info.attachType, 'cgroup_inet4_connect');
        assert.equal(info.cgroupId, cgroupId(cgroup));

        adopted.detach();
        assert.deepEqual(cgroupPrograms(cgroup, 'cgroup_inet4_connect'), [], 'nothing attached after detach');
        await connectFromCgroup(cgroup, [portOf(watched)]);
        assert.equal(pinnedCounts.lookup(u16(portOf(watched)))?.readBigUInt64LE(0), 15n, 'no counting after detach');
        assert.equal(adopted.unpin(), true);
        assert.equal(existsSync(join(pinDir, 'link')), false);
        adopted.close();

        // Map handles from a pin support the same operations as those from an object.
        pinnedCounts.update(u16(1), Buffer.alloc(8, 1), 'noexist');
        assert.throws(() => pinnedCounts.update(u16(1), Buffer.alloc(8), 'noexist'), (e: unknown) => e instanceof NativeError && e.syscallCode === 'EEXIST');
        assert.equal(pinnedCounts.delete(u16(1)), true);
        assert.equal(pinnedCounts.delete(u16(1)), false);
      } finally {
        pinnedCounts.close();
      }
      assert.equal(unpin(join(pinDir, 'counts')), true);
      assert.equal(unpin(join(pinDir, 'counts')), false);
    } finally {
      if (!objClosed) obj.close();
    }
  });

  test('a verifier rejection carries the log; kernel refusals carry errno and operation', async () => {
    assert.throws(() => BpfLink.openPinned(join(pinDir, 'absent')), (e: unknown) => {
      assert.ok(e instanceof NativeError);
      assert.equal(e.syscallCode, 'ENOENT');
      assert.equal(e.operation, 'bpf_obj_get');
      return true;
    });
    const bad = BpfObject.open(bpfObjectPath('selftest'));
    try {
      bad.setAutoload('selftest_rejected', true);
      await assert.rejects(bad.load(), (e: unknown) => {
        assert.ok(e instanceof NativeError);
        assert.equal(e.operation, 'bpf_object__load');
        assert.equal(e.syscallCode, 'EACCES');
        assert.match(e.log ?? '', /invalid mem access/, 'the verifier log says why');
        assert.match(e.message, /invalid mem access/);
        return true;
      });
    } finally {
      bad.close();
    }
    // Attaching a tc program to a cgroup is refused by the kernel, with errno and operation.
    const obj = BpfObject.open(bpfObjectPath('selftest'));
    try {
      obj.setAutoload('selftest_connect4', false);
      await obj.load();
      assert.throws(() => obj.program('selftest_tc').attachCgroup(cgroup, 'cgroup_inet4_connect'), (e: unknown) => {
        assert.ok(e instanceof NativeError);
        assert.equal(e.operation, 'bpf_link_create');
        assert.equal(e.syscallCode, 'EINVAL');
        return true;
      });
      assert.throws(() => obj.program('selftest_connect4').fd, /no fd/, 'a program not loaded has no fd');
    } finally {
      obj.close();
    }
  });
  test('objects share a map through a pin path or an fd', async () => {
    const pin = join(pinDir, 'shared_counts');
    const a = BpfObject.open(bpfObjectPath('selftest'));
    const b = BpfObject.open(bpfObjectPath('selftest'));
    const c = BpfObject.open(bpfObjectPath('selftest'));
    try {
      a.setPinPath('connects_by_port', pin);
      await a.load();
      assert.ok(existsSync(pin), 'load pinned the map');
      b.setPinPath('connects_by_port', pin);
      await b.load();
      c.reuseMap('connects_by_port', a.map('connects_by_port'));
      await c.load();
      const id = a.map('connects_by_port').info().id;
      assert.equal(b.map('connects_by_port').info().id, id, 'reused through the pin');
      assert.equal(c.map('connects_by_port').info().id, id, 'reused through the fd');
      a.map('connects_by_port').update(u16(9), Buffer.alloc(8, 2));
      assert.deepEqual(c.map('connects_by_port').lookup(u16(9)), Buffer.alloc(8, 2));
      assert.notEqual(a.map('packets').info().id, b.map('packets').info().id, 'other maps stay separate');
    } finally {
      a.close();
      b.close();
      c.close();
    }
    assert.equal(unpin(pin), true);
  });
});
