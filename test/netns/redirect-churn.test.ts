// Enrol/release at scale and the failure paths, on lightweight pods: a netns with a veth pair
// (eth0 + peer) inside it and an empty cgroup each (no processes), so 100 of them cost little.
// Names start with weft-rchurn-; leftovers of a crashed run are swept first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedSkip } from '../helpers/privilege.js';
import { cgroup2Mount } from '../../agent/src/lab/index.js';
import { InvalidArgumentError, WeftError } from '../../agent/src/common/errors.js';
import { Redirector, PodGoneError, type PodSpec, type Kernel } from '../../agent/src/redirect/index.js';
import { nativeKernel } from '../../agent/src/redirect/native-kernel.js';
import { bpftoolCgroup, rand, tcFilters, tcQdiscs } from './redirect-support.js';

const PREFIX = 'weft-rchurn-';
const N = 100;

function ip(args: string[], input?: string): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

function sweep(): void {
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
  if (ns.length) ip(['-batch', '-'], ns.map((n) => `netns del ${n}\n`).join(''));
  const root = cgroup2Mount();
  for (const d of readdirSync(root).filter((d) => d.startsWith(PREFIX))) {
    for (const c of readdirSync(join(root, d), { withFileTypes: true }).filter((e) => e.isDirectory())) rmdirSync(join(root, d, c.name));
    rmdirSync(join(root, d));
  }
  for (const d of readdirSync('/sys/fs/bpf').filter((d) => d.startsWith(PREFIX))) spawnSync('rm', ['-rf', join('/sys/fs/bpf', d)]);
}

describe('redirect: 100 pods, idempotence and pods that vanish', { skip: privilegedSkip() }, () => {
  const run = `${PREFIX}${rand()}`;
  let cgDir: string;
  let r: Redirector;
  const pods: PodSpec[] = [];

  function makePod(i: number): PodSpec {
    const name = `${run}-p${i}`;
    const addr = `198.19.250.${i + 1}`;
    ip(['netns', 'add', name]);
    ip(['-n', name, '-batch', '-'], `link add eth0 type veth peer name weftpeer\nlink set weftpeer up\naddr add ${addr}/32 dev eth0\nlink set eth0 up\n`);
    const cgroupPath = join(cgDir, `pod${i}`);
    mkdirSync(cgroupPath);
    return { uid: `uid-${i}`, netnsPath: `/run/netns/${name}`, cgroupPath, ip: addr, nodeGatewayIp: '198.19.250.254', excludePorts: [22] };
  }

  before(async () => {
    sweep();
    cgDir = join(cgroup2Mount(), run);
    mkdirSync(cgDir);
    for (let i = 0; i < N; i++) pods.push(makePod(i));
    r = await Redirector.open({ agentId: run });
  });

  after(async () => {
    await r?.purge().catch(() => undefined);
    sweep();
  });

  async function assertNothingLeft(specs: PodSpec[]): Promise<void> {
    assert.deepEqual(await r.mapCounts(), { pods: 0, podIps: 0, origDst: 0, inListen: 0, enrolments: 0 });
    assert.deepEqual(readdirSync(r.pins.podsDir), [], 'no pins left');
    for (const p of specs) {
      if (existsSync(p.cgroupPath)) assert.deepEqual(bpftoolCgroup(p.cgroupPath), [], `no programs on ${p.cgroupPath}`);
      if (existsSync(p.netnsPath)) {
        assert.equal(tcFilters(p.netnsPath).trim(), '', `no tc filter in ${p.netnsPath}`);
        assert.doesNotMatch(tcQdiscs(p.netnsPath), /clsact/, 'the clsact qdisc we created is gone');
      }
    }
  }

  it(`enrols ${N} pods concurrently, then releases them all leaving no pins, links, filters or map entries`, async () => {
    const enrolled = await Promise.all(pods.map((p) => r.enrol(p)));
    assert.equal(enrolled.length, N);
    assert.equal(new Set(enrolled.map((e) => e.netnsCookie)).size, N, 'each pod has its own netns cookie');
    assert.deepEqual(await r.mapCounts(), { pods: N, podIps: N, origDst: 0, inListen: 0, enrolments: N });
    assert.equal(readdirSync(r.pins.podsDir).length, N);
    for (const p of [pods[0]!, pods[N - 1]!]) {
      assert.deepEqual(bpftoolCgroup(p.cgroupPath).map((x) => x.name).sort(), ['weft_connect4', 'weft_connect6', 'weft_sockops']);
      assert.match(tcFilters(p.netnsPath), /handle 0x5746 weft_tc_ingress/);
    }
    const released = await Promise.all(pods.map((p) => r.release(p.uid)));
    assert.ok(released.every(Boolean));
    await assertNothingLeft(pods);
  });

  it('is idempotent: enrolling the same pod repeatedly and concurrently attaches once', async () => {
    const p = pods[0]!;
    await Promise.all([r.enrol(p), r.enrol(p), r.enrol({ ...p, excludePorts: [22, 2222] })]);
    await r.enrol(p);
    assert.deepEqual(bpftoolCgroup(p.cgroupPath).map((x) => x.name).sort(), ['weft_connect4', 'weft_connect6', 'weft_sockops']);
    assert.equal(tcFilters(p.netnsPath).match(/handle 0x5746/g)?.length, 1);
    assert.equal((await r.list()).length, 1);
    const seen = await r.inspect(p.uid);
    assert.deepEqual(seen?.cgroupPrograms, { connect4: ['weft_connect4'], connect6: ['weft_connect6'], sockops: ['weft_sockops'] });
    assert.deepEqual(seen?.pinnedLinks, ['connect4', 'connect6', 'sockops']);
    assert.ok(seen?.tcProgId, 'a tc filter in our slot');
    assert.equal(seen?.config?.enrolled, true);
    await r.release(p.uid);
    assert.equal(await r.inspect(p.uid), undefined);
    await r.release(p.uid);
    await assertNothingLeft([p]);
  });

  it('refuses bad input without changing anything', async () => {
    const p = pods[1]!;
    await assert.rejects(r.enrol({ ...p, ip: '10.0.0.300' }), InvalidArgumentError);
    await assert.rejects(r.enrol({ ...p, excludePorts: Array.from({ length: 17 }, (_, i) => 1000 + i) }), /excludePorts/);
    await assert.rejects(r.enrol({ ...p, uid: '../x' }), /pod\.uid/);
    await assertNothingLeft([p]);
  });

  it('gives a coded error for a pod whose netns, cgroup or eth0 is gone, and attaches nothing', async () => {
    const p = pods[2]!;
    await assert.rejects(r.enrol({ ...p, netnsPath: '/run/netns/weft-rchurn-none' }), (e: unknown) => e instanceof PodGoneError && e.code === 'WEFT_E_POD_NETNS_GONE');
    await assert.rejects(r.enrol({ ...p, cgroupPath: join(cgDir, 'none') }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_E_POD_CGROUP_GONE');
    await assert.rejects(r.enrol({ ...p, ifname: 'eth9' }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_E_POD_INTERFACE_GONE');
    await assertNothingLeft([p]);
  });

  it('reconcile releases a pod whose netns and cgroup were deleted while it was enrolled', async () => {
    const [gone, kept] = [pods[5]!, pods[6]!];
    await r.enrol(gone);
    await r.enrol(kept);
    ip(['netns', 'del', gone.netnsPath.split('/').pop()!]);
    rmdirSync(gone.cgroupPath);
    const res = await r.reconcile([kept]);
    assert.deepEqual(res, { enrolled: [kept.uid], released: [gone.uid], failed: [] });
    assert.deepEqual((await r.list()).map((p) => p.uid), [kept.uid]);
    assert.equal(existsSync(r.pins.podDir(gone.uid)), false);
    await r.release(kept.uid);
    await assertNothingLeft([gone, kept]);
  });

  it('rolls back a pod whose netns or cgroup vanishes mid-enrolment', async () => {
    const [pn, pc] = [pods[3]!, pods[4]!];
    // Make the pod vanish between attaching the cgroup links and the tc filter.
    const vanishing = (what: 'netns' | 'cgroup'): Kernel => ({
      ...nativeKernel,
      async tcAttach(progs, netnsPath, ifname) {
        if (what === 'netns') ip(['netns', 'del', netnsPath.split('/').pop()!]);
        else rmdirSync(pc.cgroupPath);
        return nativeKernel.tcAttach(progs, netnsPath, ifname);
      },
    });
    const rn = await Redirector.open({ agentId: run, kernel: vanishing('netns') });
    await assert.rejects(rn.enrol(pn), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_E_POD_NETNS_GONE');
    rn.close();
    const rc = await Redirector.open({ agentId: run, kernel: vanishing('cgroup') });
    await assert.rejects(rc.enrol(pc), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_E_POD_CGROUP_GONE');
    rc.close();
    assert.equal(existsSync(pn.netnsPath), false);
    assert.equal(existsSync(pc.cgroupPath), false);
    await assertNothingLeft([pn, pc, { ...pc, cgroupPath: cgDir }]);
    assert.doesNotMatch(tcQdiscs(pc.netnsPath), /clsact/, 'the tc filter and qdisc made before the cgroup vanished are gone');
  });
});
