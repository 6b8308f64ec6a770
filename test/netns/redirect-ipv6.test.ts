// IPv6 of an enrolled pod fails closed until Weft captures it: a lab pod with an IPv6 address
// (2001:2::/48, the IPv6 benchmarking range) is enrolled with the real programs, a second pod on
// the same node is its IPv6 peer (routed through the node), and:
//   (a) from the enrolled pod, TCP to the peer's IPv6 address fails at once with EPERM, while
//       [::1], excluded ports, the agent's own sockets and IPv4 capture keep working;
//   (b) from the peer, TCP to the enrolled pod's IPv6 address gets no connection (its SYN is
//       dropped), while ICMPv6 echo is answered (neighbour discovery gets through);
//   (c) once released, the pod talks IPv6 freely both ways.
// Everything lives in the lab's namespaces (weft-<lab>-*), which `weft lab sweep` removes after a
// crash, as it removes the redirector's pins (weft-<lab>-<node>).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from 'node:net';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { podHostVeth } from '../../agent/src/lab/names.js';
import { DEFAULT_BYPASS_MARK, Redirector } from '../../agent/src/redirect/index.js';
import { closeServer, inboundStandIn, lineServer, outboundStandIn, podGateway, rand, tcFilters } from './redirect-support.js';

const CLIENT6 = fileURLToPath(new URL('./redirect-client.js', import.meta.url));
const A6 = '2001:2::a'; // the enrolled pod
const NODE_A6 = '2001:2::1'; // the node on the enrolled pod's link
const B6 = '2001:2:0:1::b'; // the peer pod
const NODE_B6 = '2001:2:0:1::1';

interface Result { host: string; port: number; reply?: string; error?: string }

/** ICMPv6 echo from inside a pod (raw socket; the kernel fills in the checksum). */
const PING6 = `
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(float(sys.argv[2]))
s.sendto(struct.pack('!BBHHH', 128, 0, 0, 0x5746, 1) + b'weft', (sys.argv[1], 0))
try:
    while True:
        d, a = s.recvfrom(1500)
        if d[0] == 129 and d[4:6] == b'\\x57\\x46':
            print('reply from ' + a[0]); break
except socket.timeout:
    print('timeout')
`;
import { socketFd } from '../../agent/src/native/index.js';

function ip(netnsName: string, args: string[]): void {
  const r = spawnSync('ip', ['-n', netnsName, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${netnsName} ${args.join(' ')}: ${r.stderr}`);
}

function sysctlIn(netnsPath: string, key: string, value: string): void {
  const r = spawnSync('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', 'echo "$1" > "$2"', 'sysctl', value, `/proc/sys/${key.replace(/\./g, '/')}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sysctl ${key}=${value} in ${netnsPath}: ${r.stderr}`);
}

/** A value of a program's .bss counter, via bpftool (the agent does not read these). */
function bssCounter(progId: number, variable: string): number {
  const prog = spawnSync('bpftool', ['-j', 'prog', 'show', 'id', String(progId)], { encoding: 'utf8' });
  const mapIds = (JSON.parse(prog.stdout) as { map_ids?: number[] }).map_ids ?? [];
  for (const id of mapIds) {
    const show = JSON.parse(spawnSync('bpftool', ['-j', 'map', 'show', 'id', String(id)], { encoding: 'utf8' }).stdout) as { name: string };
    if (!show.name.endsWith('.bss')) continue;
    const dump = JSON.parse(spawnSync('bpftool', ['-j', 'map', 'dump', 'id', String(id)], { encoding: 'utf8' }).stdout) as { formatted?: { value: Record<string, Record<string, number>[]> } }[];
    const vars = Object.values(dump[0]?.formatted?.value ?? {})[0] ?? [];
    const hit = vars.find((v) => variable in v);
    if (hit) return Number(hit[variable]);
  }
  throw new Error(`no .bss variable ${variable} in program ${progId}`);
}

function cgroupProgId(cgroup: string, attachType: string): number {
  const r = spawnSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' });
  const p = (JSON.parse(r.stdout || '[]') as { id: number; attach_type: string }[]).find((x) => x.attach_type === attachType);
  if (!p) throw new Error(`no ${attachType} program at ${cgroup}`);
  return p.id;
}

describe('redirect: IPv6 of an enrolled pod fails closed', { skip: privilegedSkip() }, () => {
  let lab: Lab;
  let r: Redirector;
  let a: PodStatus; // enrolled
  let b: PodStatus; // its peer, not enrolled
  const servers: Server[] = [];
  let inbound: Server | undefined;

  const from = async (pod: PodStatus, targets: { host: string; port: number; mark?: number }[], timeoutMs = 5000): Promise<Result[]> => {
    const res = await lab.exec(`${pod.namespace}/${pod.name}`, [process.execPath, CLIENT6, JSON.stringify({ targets, timeoutMs })], { timeoutMs: timeoutMs + 30_000 });
    if (res.code !== 0) throw new Error(`client in ${pod.name} exited ${res.code}: ${res.stderr}`);
    return JSON.parse(res.stdout) as Result[];
  };
  const ping6 = async (pod: PodStatus, host: string): Promise<string> => {
    const res = await lab.exec(`${pod.namespace}/${pod.name}`, ['python3', '-c', PING6, host, '3'], { timeoutMs: 30_000 });
    if (res.code !== 0) throw new Error(`ping6 in ${pod.name} exited ${res.code}: ${res.stderr}`);
    return res.stdout.trim();
  };
  const spec = () => ({ uid: a.uid, netnsPath: a.netns, cgroupPath: a.podCgroup, ip: a.ip, nodeGatewayIp: podGateway(lab, a.node), excludePorts: [17003] });

  before(async () => {
    lab = await Lab.up({ name: `s${rand()}`, nodes: 1, podsPerNode: 2 });
    [a, b] = lab.status().pods as [PodStatus, PodStatus];
    // IPv6 next to the lab's IPv4: one /64 per pod link, the node routes between them.
    const node = lab.status().nodes.find((n) => n.name === a.node)!;
    sysctlIn(node.netns, 'net.ipv6.conf.all.forwarding', '1');
    for (const [pod, addr, gw] of [[a, A6, NODE_A6], [b, B6, NODE_B6]] as const) {
      ip(basename(node.netns), ['-6', 'addr', 'add', `${gw}/64`, 'dev', podHostVeth(pod.uid), 'nodad']);
      ip(basename(pod.netns), ['-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
      ip(basename(pod.netns), ['-6', 'route', 'add', 'default', 'via', gw, 'dev', 'eth0']);
    }
    r = await Redirector.open({ agentId: `weft-${lab.name}-${a.node}` });
    // Listeners the test (an agent stand-in, outside every pod cgroup) opens in the pods' netns.
    servers.push(await outboundStandIn(r, a.netns));
    servers.push(await lineServer(a.netns, '::1', 17000, () => 'loopback-direct'));
    servers.push(await lineServer(a.netns, '::', 17002, () => 'app'));
    for (const port of [17001, 17003]) servers.push(await lineServer(b.netns, '::', port, (s) => `direct ${s.remoteAddress}`));
    inbound = await inboundStandIn(a.netns);
    // Before enrolment IPv6 works both ways (else the checks below would prove nothing).
    assert.equal((await from(a, [{ host: B6, port: 17001 }]))[0]!.reply, `direct ${A6}`);
    assert.equal((await from(b, [{ host: A6, port: 17002 }]))[0]!.reply, 'app');
    await r.enrol(spec(), { inboundListenerFd: socketFd(inbound) });
  });

  after(async () => {
    for (const s of servers) await closeServer(s);
    await closeServer(inbound);
    await r?.purge().catch(() => undefined);
    await lab?.down();
  });

  it('(a) outbound: native IPv6 is refused with EPERM; ::1, excluded ports, the bypass mark and IPv4 capture still work', async () => {
    const connect6 = cgroupProgId(a.podCgroup, 'cgroup_inet6_connect');
    const refusedBefore = bssCounter(connect6, 'weft_ipv6_refused');
    const res = await from(a, [
      { host: B6, port: 17001 },
      { host: '::1', port: 17000 },
      { host: B6, port: 17003 }, // excluded: left alone, as for IPv4
      { host: B6, port: 17001, mark: DEFAULT_BYPASS_MARK }, // the agent's own socket
      { host: b.ip, port: 17001 },
      { host: `::ffff:${b.ip}`, port: 17002 },
    ]);
    assert.deepEqual(res.map((x) => x.reply ?? x.error), [
      'EPERM',
      'loopback-direct',
      `direct ${A6}`,
      `direct ${A6}`,
      `orig ${b.ip}:17001`,
      `orig ${b.ip}:17002`,
    ]);
    assert.equal(bssCounter(connect6, 'weft_ipv6_refused') - refusedBefore, 1, 'the refusal is counted');
  });

  it('(b) inbound: a new IPv6 TCP flow to the pod is dropped, ICMPv6 echo (and so neighbour discovery) still answers', async () => {
    const tc = (await r.inspect(a.uid))!.tcProgId!;
    const droppedBefore = bssCounter(tc, 'weft_ipv6_syn_dropped');
    const [v6] = await from(b, [{ host: A6, port: 17002 }], 1500);
    assert.equal(v6!.error, 'timeout', `IPv6 plaintext must not reach the app: ${JSON.stringify(v6)}`);
    assert.ok(bssCounter(tc, 'weft_ipv6_syn_dropped') > droppedBefore, 'the dropped SYN is counted');
    // Forget the node's neighbour entry, so the echo needs a fresh neighbour solicitation.
    spawnSync('ip', ['-n', basename(lab.status().nodes[0]!.netns), '-6', 'neigh', 'flush', 'dev', podHostVeth(a.uid)]);
    assert.equal(await ping6(b, A6), `reply from ${A6}`);
    // IPv4 inbound is steered to the proxy's :15006 as before.
    assert.equal((await from(b, [{ host: a.ip, port: 17002 }]))[0]!.reply, `inbound ${a.ip}:17002`);
  });

  it('(c) released, the pod talks IPv6 freely both ways', async () => {
    assert.equal(await r.release(a.uid), true);
    assert.equal(tcFilters(a.netns).trim(), '');
    assert.equal((await from(a, [{ host: B6, port: 17001 }]))[0]!.reply, `direct ${A6}`);
    assert.equal((await from(b, [{ host: A6, port: 17002 }]))[0]!.reply, 'app');
    assert.equal(await ping6(b, A6), `reply from ${A6}`);
  });
});
