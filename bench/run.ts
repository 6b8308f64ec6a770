// `npm run bench` — Weft side by side with direct traffic and a HAProxy mTLS tunnel, on the lab
// (client pod on node1, server pods on node2 and node1), modes interleaved round by round.
// Writes bench/results/<run>/{run.json,report.md,latency.svg}. See bench/README.md.
//   node dist/bench/run.js [--full] [--rounds N] [--name LAB] [--cpu-prof]
// --cpu-prof: after the rounds, profiles both agents (inspector, via SIGUSR1) under the
// 1,000 req/s latency load and under single-stream bulk, and adds their hottest functions.
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, sweep, type PodStatus } from '../agent/src/lab/index.js';
import { fetchConfigDumpInNetns } from '../agent/src/telemetry/admin-client.js';
import { run } from '../agent/src/common/exec.js';
import { defaultWorkers } from '../agent/src/agent/options.js';
import { machineInfo } from './lib/machine.js';
import { benchPreflight } from './lib/preflight.js';
import { addSteering, haproxyConfig, issueCert, removeSteering, startHaproxy, type TunnelRoute } from './lib/reference-tunnel.js';
import { MODES, MODE_NAMES, type Mode, type Placement, type RunResult, type Sample } from './lib/results.js';
import { chartPanels, latencyChartSvg, renderReport } from './lib/report.js';
import { cpuSecondsFromStat, summarize } from './lib/stats.js';
import { summarizeProfile, type CpuProfile } from './lib/cpuprofile.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..');
const RESULTS = join(ROOT, 'bench', 'results');
const LOADGEN = join(here, 'loadgen.js');
const PROFILER = join(here, 'inspector-profile.js');
const RESPONDER = join(here, 'responder.js');
const HTTP_PORT = 8081;
const IPERF_PORT = 5201;

const { values: opts } = parseArgs({ options: { full: { type: 'boolean', default: false }, 'cpu-prof': { type: 'boolean', default: false }, rounds: { type: 'string' }, name: { type: 'string', default: 'bench' }, workers: { type: 'string' } } });
// The agents' data-plane threads (main + --workers) and HAProxy's nbthread are kept equal.
const agentWorkers = opts.workers !== undefined ? Number(opts.workers) : defaultWorkers();
if (!Number.isInteger(agentWorkers) || agentWorkers < 0) throw new Error(`--workers must be a whole number >= 0, not '${opts.workers}'`);

interface Profile {
  rounds: number;
  bulkSeconds: number;
  cross: { streams: number[]; points: Array<[number, number]> };
  same: { streams: number[]; points: Array<[number, number]> };
  latSeconds: number;
  warmup: number;
  churnSeconds: number;
  churnWorkers: number;
  handshakeSeconds: number;
  idleConnections: number;
}
const ALL_POINTS: Array<[number, number]> = [[200, 4], [1000, 4], [200, 64], [1000, 64]];
const QUICK: Profile = {
  rounds: 3, bulkSeconds: 2, latSeconds: 2, warmup: 0.5, churnSeconds: 2, churnWorkers: 16, handshakeSeconds: 2, idleConnections: 10_000,
  cross: { streams: [1, 4], points: ALL_POINTS }, same: { streams: [1], points: [[1000, 4]] },
};
const FULL: Profile = {
  rounds: 5, bulkSeconds: 10, latSeconds: 15, warmup: 2, churnSeconds: 10, churnWorkers: 16, handshakeSeconds: 10, idleConnections: 10_000,
  cross: { streams: [1, 4], points: ALL_POINTS }, same: { streams: [1, 4], points: ALL_POINTS },
};
const profile: Profile = { ...(opts.full ? FULL : QUICK) };
if (opts.rounds) profile.rounds = Number(opts.rounds);

const say = (m: string) => process.stderr.write(`bench: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- cleanup, also on Ctrl-C and failure ---------------------------------------------------
const cleanups: Array<() => Promise<unknown> | unknown> = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const f of cleanups.splice(0).reverse()) {
      try { await f(); } catch (err) { say(`cleanup: ${(err as Error).message}`); }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupted = true;
    say(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}
const killLater = (p: ChildProcess) => cleanups.push(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });

// --- /proc readings --------------------------------------------------------------------------
let clkTck = 100;
const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => {
  try { return sum + cpuSecondsFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'), clkTck); } catch { return sum; }
}, 0);
const rssMB = (pid: number) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
};

async function main(): Promise<void> {
  await benchPreflight();
  const startedAt = new Date();
  const runId = `run-${startedAt.toISOString().replace(/[:.]/g, '-')}`;
  const outDir = join(RESULTS, runId);
  mkdirSync(outDir, { recursive: true });
  clkTck = Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  const weftVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  say(`profile ${opts.full ? 'full' : 'quick'}, ${profile.rounds} rounds; results in ${outDir}`);

  // A lab of this name left by an earlier, killed run is ours: remove it.
  await sweep({ name: opts.name }).catch(() => undefined);
  try { await (await Lab.open(opts.name)).down(); } catch { /* none */ }
  const lab = await Lab.up({ name: opts.name, nodes: 2, podsPerNode: 1, mesh: true, agentWorkers, onProgress: (m) => say(`lab: ${m}`) });
  cleanups.push(() => lab.down());
  // Runs before the lab goes: keep the agents' and controller's logs with the results.
  cleanups.push(() => run('cp', ['-r', join(lab.stateDir, 'logs'), join(outDir, 'lab-logs')], { allowFailure: true }));
  const client = lab.pod('demo/client-1');
  const server = lab.pod('demo/server-1');
  const local = await lab.addPod({ namespace: 'demo', name: 'server-2', node: 'node1', labels: { app: 'server' }, serviceAccount: 'server' });
  if (client.node !== 'node1' || server.node !== 'node2') throw new Error(`unexpected placement: client on ${client.node}, server on ${server.node}`);
  const node1 = lab.node('node1');
  const node2 = lab.node('node2');
  const agentPids = () => (lab.status().mesh?.agents ?? []).filter((a) => a.alive).map((a) => a.pid);

  // Many short connections: let TIME_WAIT sockets be reused and widen the port range, but keep
  // it above the agents' ports (15001/15006/15008/150xx, which enrolment binds in the pod) and
  // HAProxy's (16xxx): an ephemeral socket there makes a later enrolment fail with EADDRINUSE.
  for (const ns of [client.netns, node1.netns, node2.netns]) {
    await run('nsenter', [`--net=${ns}`, '--', 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=20000 65000']);
  }

  // Upstream apps in both server pods: the 1 KB responder and iperf3.
  const fdMax = (argv: string[]) => ['sh', '-c', 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"', ...argv];
  for (const pod of [server, local]) {
    const resp = lab.spawn(`${pod.namespace}/${pod.name}`, fdMax([process.execPath, RESPONDER, String(HTTP_PORT)]), { stdio: ['ignore', 'pipe', 'inherit'] });
    killLater(resp);
    await new Promise<void>((res, rej) => { resp.stdout!.once('data', () => res()); resp.once('exit', (c) => rej(new Error(`responder exited ${c}`))); });
    const ip = lab.spawn(`${pod.namespace}/${pod.name}`, ['iperf3', '-s', '-p', String(IPERF_PORT)], { stdio: 'ignore' });
    killLater(ip);
  }

  // Mode (c): certificates from the controller's CA, HAProxy on both nodes, DNAT routes.
  const caDir = join(lab.stateDir, '.mesh', 'controller', 'ca');
  const caCert = join(caDir, 'ca-cert.pem');
  const certDir = join(outDir, '.certs');
  cleanups.push(() => run('rm', ['-rf', certDir]));
  const certs = {
    node1: await issueCert(certDir, 'node1', caCert, join(caDir, 'ca-key.pem'), ['DNS:weft-bench-node1']),
    node2: await issueCert(certDir, 'node2', caCert, join(caDir, 'ca-key.pem'), ['DNS:weft-bench-node2']),
    client: await issueCert(certDir, 'client', caCert, join(caDir, 'ca-key.pem'), ['URI:spiffe://cluster.local/ns/demo/sa/client']),
  };
  const routeTo = (pod: PodStatus, port: number, k: number): TunnelRoute => ({
    podIp: pod.ip, port, clientNode: 'node1', serverNode: pod.node, serverNodeIp: lab.node(pod.node).ip, outPort: 16000 + k, inPort: 16100 + k,
  });
  const routes = [routeTo(server, HTTP_PORT, 1), routeTo(server, IPERF_PORT, 2), routeTo(local, HTTP_PORT, 3), routeTo(local, IPERF_PORT, 4)];
  const haproxy: ChildProcess[] = [];
  for (const n of [node1, node2]) {
    const cfg = join(certDir, `haproxy-${n.name}.cfg`);
    writeFileSync(cfg, haproxyConfig(n.name, n.ip, routes, certs[n.name as 'node1' | 'node2'], caCert, agentWorkers + 1));
    const p = await startHaproxy(n.netns, cfg);
    killLater(p);
    haproxy.push(p);
  }
  const haproxyPids = haproxy.map((p) => p.pid!).filter(Boolean);
  const gateway = client.ip.replace(/\.\d+$/, '.1');
  cleanups.push(() => removeSteering(client.netns));

  // --- modes ---------------------------------------------------------------------------------
  const meshPods = [client, server, local];
  let lastEnrolment = '';
  async function enrolled(): Promise<Set<string>> {
    const got = new Set<string>();
    const seen: string[] = [];
    for (const n of ['node1', 'node2']) {
      const d = (await fetchConfigDumpInNetns(`weft-${lab.name}-${n}`)) as unknown as { enrolment: Array<{ uid: string; name: string; state: string; error?: string }> };
      for (const e of d.enrolment) {
        if (e.state === 'enrolled') got.add(e.uid);
        seen.push(`${n}:${e.name}=${e.state}${e.error ? ` (${e.error})` : ''}`);
      }
    }
    lastEnrolment = seen.join(', ') || 'no enrolment entries';
    return got;
  }
  async function waitEnrolment(want: boolean): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const got = await enrolled().catch((err: Error) => { lastEnrolment = `admin unreachable: ${err.message}`; return new Set<string>(); });
      if (meshPods.every((p) => got.has(p.uid) === want)) return;
      if (Date.now() > deadline) throw new Error(`pods still ${want ? 'not ' : ''}enrolled after 60 s; agents report: ${lastEnrolment}`);
      await sleep(100);
    }
  }
  let current: Mode | undefined;
  async function setMode(m: Mode): Promise<void> {
    if (m === current) return;
    await removeSteering(client.netns);
    if (m === 'b') {
      await lab.label('namespace', 'demo', 'weft.io/mesh=enabled', { overwrite: true });
      await waitEnrolment(true);
    } else {
      await lab.label('namespace', 'demo', 'weft.io/mesh-');
      await waitEnrolment(false); // (c) must run with the pods not enrolled
      if (m === 'c') await addSteering(client.netns, gateway, routes);
    }
    await sleep(300);
    current = m;
  }

  // --- scenarios -----------------------------------------------------------------------------
  const loadgen = async (args: string[], timeoutMs: number) => {
    const r = await lab.exec('demo/client-1', fdMax([process.execPath, LOADGEN, ...args]), { timeoutMs });
    if (r.code !== 0) throw new Error(`loadgen ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  async function bulk(target: PodStatus, streams: number): Promise<Partial<Sample>> {
    const agents = agentPids();
    const t0 = performance.now();
    const a0 = cpuOf(agents);
    const h0 = cpuOf(haproxyPids);
    const r = await lab.exec('demo/client-1', ['iperf3', '-c', target.ip, '-p', String(IPERF_PORT), '-t', String(profile.bulkSeconds), '-P', String(streams), '-J', '--connect-timeout', '3000'], { timeoutMs: (profile.bulkSeconds + 20) * 1000 });
    const cpu = { agentsSec: cpuOf(agents) - a0, haproxySec: cpuOf(haproxyPids) - h0, wallSec: (performance.now() - t0) / 1000 };
    const j = JSON.parse(r.stdout || '{}') as { end?: { sum_received?: { bits_per_second: number; bytes: number } }; error?: string };
    const bps = j.end?.sum_received?.bits_per_second;
    if (bps === undefined) return { gbps: NaN, errors: 1, cpu };
    return { gbps: bps / 1e9, errors: 0, cpu, bytes: j.end!.sum_received!.bytes };
  }
  async function latency(target: PodStatus, rate: number, conns: number): Promise<Partial<Sample>> {
    const agents = agentPids();
    const job = loadgen(['latency', target.ip, String(HTTP_PORT), String(rate), String(conns), String(profile.latSeconds), String(profile.warmup)], (profile.latSeconds + profile.warmup + 30) * 1000);
    // CPU over the measured middle of the run; RSS at its midpoint.
    await sleep((profile.warmup + 0.4) * 1000);
    const t0 = performance.now();
    const a0 = cpuOf(agents);
    const h0 = cpuOf(haproxyPids);
    await sleep(profile.latSeconds * 500 - 200);
    const rss = agents.reduce((s, p) => s + rssMB(p), 0);
    await sleep(profile.latSeconds * 500 - 200);
    const cpu = { agentsSec: cpuOf(agents) - a0, haproxySec: cpuOf(haproxyPids) - h0, wallSec: (performance.now() - t0) / 1000 };
    const j = await job;
    const lat = j.latenciesMs as number[];
    return { rate, latency: summarize(lat), latenciesMs: lat, achievedRate: j.achievedRate as number, errors: j.errors as number, cpu, agentsRssMB: rss };
  }
  async function churnOnce(target: PodStatus): Promise<Partial<Sample>> {
    const j = await loadgen(['churn', target.ip, String(HTTP_PORT), String(profile.churnWorkers), String(profile.churnSeconds)], (profile.churnSeconds + 30) * 1000);
    return { connectionsPerSec: j.connectionsPerSec as number, errors: j.errors as number };
  }

  const samples: Sample[] = [];
  const notes: string[] = [];
  const result: RunResult = {
    run: runId, profile: opts.full ? 'full' : 'quick', startedAt: startedAt.toISOString(), rounds: profile.rounds,
    machine: await machineInfo(weftVersion), config: { ...profile, httpPort: HTTP_PORT, iperfPort: IPERF_PORT, routes, agentThreads: agentWorkers + 1 }, samples, resources: {}, notes,
  };
  const save = () => {
    writeFileSync(join(outDir, 'run.json'), JSON.stringify(result) + '\n');
    writeFileSync(join(outDir, 'latency.svg'), latencyChartSvg(chartPanels(result)));
    writeFileSync(join(outDir, 'report.md'), renderReport(result));
  };

  await setMode('a');
  await sleep(1000);
  result.resources.agentsRssIdleMB = agentPids().reduce((s, p) => s + rssMB(p), 0);
  // Where an idle agent's memory is: anonymous (heap, native) vs file-backed (code, mapped files).
  for (const pid of agentPids()) {
    try {
      const st = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (f: string) => Number(new RegExp(`${f}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN) / 1024;
      notes.push(`idle agent pid ${pid}: VmRSS ${kb('VmRSS').toFixed(1)} MB = RssAnon ${kb('RssAnon').toFixed(1)} + RssFile ${kb('RssFile').toFixed(1)} + RssShmem ${kb('RssShmem').toFixed(1)} MB`);
    } catch { /* gone */ }
  }

  for (let round = 1; round <= profile.rounds; round++) {
    for (const mode of MODES) {
      const t = performance.now();
      await setMode(mode);
      const add = (placement: Placement, scenario: Sample['scenario'], params: string, v: Partial<Sample>) => samples.push({ round, mode, placement, scenario, params, ...v });
      for (const [placement, target, plan] of [['cross', server, profile.cross], ['same', local, profile.same]] as const) {
        for (const p of plan.streams) add(placement, 'bulk', `P${p}`, await bulk(target, p));
        for (const [rate, conns] of plan.points) add(placement, 'latency', `${rate}rps/${conns}c`, await latency(target, rate, conns));
      }
      add('cross', 'churn', `${profile.churnWorkers}w`, await churnOnce(server));
      say(`round ${round} mode (${mode}) ${MODE_NAMES[mode]}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    save();
  }

  if (opts['cpu-prof']) {
    await setMode('b');
    const profDir = join(outDir, 'profiles');
    mkdirSync(profDir, { recursive: true });
    result.profiles = [];
    const agents = (lab.status().mesh?.agents ?? []).filter((a) => a.alive);
    for (const a of agents) process.kill(a.pid, 'SIGUSR1'); // opens the inspector on 127.0.0.1:9229 in the node netns
    const loads: Array<[string, () => Promise<unknown>, number]> = [
      ['cross latency 1000rps/4c', () => latency(server, 1000, 4), profile.latSeconds + profile.warmup + 1],
      ['cross bulk P1', () => bulk(server, 1), profile.bulkSeconds + 1],
    ];
    for (const [load, f, secs] of loads) {
      const files = agents.map((a) => join(profDir, `${load.replace(/[^a-z0-9]+/gi, '-')}-${a.node}.cpuprofile`));
      const profilers = agents.map((a, i) => lab.execInNode(a.node, [process.execPath, '--no-warnings', '--experimental-websocket', PROFILER, String(secs), files[i]!], { timeoutMs: (secs + 30) * 1000 }));
      await sleep(1000);
      await f();
      const done = await Promise.all(profilers);
      agents.forEach((a, i) => {
        if (done[i]!.code !== 0) { notes.push(`profile of ${a.node} under ${load} failed: ${done[i]!.stderr.trim()}`); return; }
        const sum = summarizeProfile(JSON.parse(readFileSync(files[i]!, 'utf8')) as CpuProfile, 15);
        result.profiles!.push({ load, node: a.node, file: `profiles/${files[i]!.split('/').pop()}`, ...sum });
      });
    }
  }

  // Full mTLS handshakes against the server pod's HBONE port, from node1's netns (not a pod, so
  // not captured); the server agent's CPU over the same time gives handshakes per core.
  await setMode('b');
  {
    const agent2 = (lab.status().mesh?.agents ?? []).filter((a) => a.alive && a.node === 'node2').map((a) => a.pid);
    const c0 = cpuOf(agent2);
    const t0 = performance.now();
    const r = await lab.execInNode('node1', [process.execPath, LOADGEN, 'tls', server.ip, '15008', '16', String(profile.handshakeSeconds), certs.client.cert, certs.client.key, caCert], { timeoutMs: (profile.handshakeSeconds + 30) * 1000 });
    const wall = (performance.now() - t0) / 1000;
    const j = JSON.parse(r.stdout || '{}') as { handshakesPerSec?: number; errors?: number; lastError?: string; seconds?: number };
    result.resources.handshakesPerSec = j.handshakesPerSec;
    result.resources.handshakeErrors = j.errors;
    result.resources.handshakeAgentCpuSec = cpuOf(agent2) - c0;
    result.resources.handshakeWallSec = wall;
    if (j.errors) notes.push(`handshake scenario: ${j.errors} failed handshakes (last: ${j.lastError})`);
  }

  if (profile.idleConnections > 0) {
    const p = lab.spawn('demo/client-1', fdMax([process.execPath, LOADGEN, 'idle', server.ip, String(HTTP_PORT), String(profile.idleConnections)]), { stdio: ['pipe', 'pipe', 'inherit'] });
    killLater(p);
    const line = await new Promise<string>((res, rej) => {
      let buf = '';
      p.stdout!.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes('\n')) res(buf); });
      p.once('exit', (c) => rej(new Error(`idle loadgen exited ${c}`)));
    });
    const j = JSON.parse(line) as { open: number; errors: number };
    await sleep(2000);
    result.resources.idleConnections = j.open;
    result.resources.agentsRssIdleConnsMB = Math.max(...agentPids().map(rssMB));
    // The target's figure is the one 2 s after the last connection opened; V8's memory reducer
    // then gives back part of what opening them took, so the value 30 s later is kept too.
    await sleep(28_000);
    result.resources.agentsRssIdleConnsLaterMB = Math.max(...agentPids().map(rssMB));
    if (j.errors) notes.push(`idle connections: ${j.errors} failed to open`);
    p.stdin!.end();
    p.kill('SIGTERM');
  }

  // Sanity: traffic in (b) went through the agents and in (c) through HAProxy.
  const cpuIn = (m: Mode, who: 'agentsSec' | 'haproxySec') => samples.filter((s) => s.mode === m && s.cpu).reduce((x, s) => x + s.cpu![who], 0);
  const ran = (m: Mode) => samples.some((s) => s.mode === m && s.cpu);
  if (ran('b') && cpuIn('b', 'agentsSec') < 0.05) notes.push('WARNING: the agents used almost no CPU in mode (b): was the traffic really meshed?');
  if (ran('c') && cpuIn('c', 'haproxySec') < 0.05) notes.push('WARNING: HAProxy used almost no CPU in mode (c): was the traffic really steered to it?');
  notes.push(`agent CPU in modes (a)/(c) (should be idle): ${cpuIn('a', 'agentsSec').toFixed(2)} s / ${cpuIn('c', 'agentsSec').toFixed(2)} s; HAProxy CPU in (a)/(b): ${cpuIn('a', 'haproxySec').toFixed(2)} s / ${cpuIn('b', 'haproxySec').toFixed(2)} s`);
  notes.push(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()} (other work on the machine adds noise to every mode alike)`);
  result.finishedAt = new Date().toISOString();
  save();
  process.stdout.write(renderReport(result) + `\nwritten: ${outDir}/{run.json,report.md,latency.svg}\n`);
}

main().then(cleanup, async (err: Error & { code?: string; hint?: string }) => {
  if (interrupted) return; // the signal handler cleans up and exits 130
  say(err.code?.startsWith('WEFT_E_') ? `${err.code}: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}` : `failed: ${err.stack ?? err.message}`);
  await cleanup();
  process.exit(1);
});
