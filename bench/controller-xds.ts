// Benchmark: the controller with a cluster of N workloads (default 10,000 pods, 1,000
// services, 100 namespaces) and A connected agents (default 50, each its own process), over
// real gRPC/TLS on 127.0.0.1. Measures: time for every agent to hold the full state after they
// all connect at once, time for one change (a pod moving node) to reach every agent, the
// controller's memory before/after loading the cluster, and each agent's memory when synced.
// These are absolute numbers on this machine (no baseline exists to compare side by side);
// the run records the machine's CPU count and load so numbers are read in context: with all
// agents as processes on one small machine, "all at once" mostly measures CPU contention
// (every agent decodes the whole cluster), which is why one agent alone is reported too.
// Run: node --expose-gc dist/bench/controller-xds.js [--workloads N] [--agents N] [--rounds N] [--settle-ms MS]
// Writes bench/results/controller-xds-<time>.{json,md}.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { Controller } from '../agent/src/controller/controller.js';
import type { ClusterSnapshot, ClusterSource, Sourced } from '../agent/src/controller/objects.js';
import { HmacNodeTokens } from '../agent/src/identity/node-auth.js';

const here = dirname(fileURLToPath(import.meta.url));
const AGENT = join(here, 'controller-xds-agent.js');
const RESULTS = resolve(here, '..', '..', 'bench', 'results');

const { values } = parseArgs({ options: {
  workloads: { type: 'string', default: '10000' },
  agents: { type: 'string', default: '50' },
  rounds: { type: 'string', default: '5' },
  'settle-ms': { type: 'string', default: '5000' },
} });
const N = Number(values.workloads);
const A = Number(values.agents);
const ROUNDS = Number(values.rounds);
const wall = () => performance.timeOrigin + performance.now();

/** An in-memory cluster: namespaces, services and pods shaped like a real cluster's. */
function cluster(moved: number | undefined, round: number): ClusterSnapshot {
  const objects: Sourced[] = [];
  const add = (object: Sourced['object']) => objects.push({ object, origin: 'bench' });
  for (let n = 0; n < 100; n++) add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `team-${n}`, labels: { 'weft.io/mesh': 'enabled' } } });
  for (let s = 0; s < N / 10; s++) {
    add({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: `team-${s % 100}` },
      spec: { clusterIP: `198.19.${(s >> 8) & 0xff}.${s & 0xff}`, selector: { app: `app-${s}` }, ports: [{ port: 80, targetPort: 8080 }, { port: 9090 }] } });
  }
  for (let i = 0; i < N; i++) {
    const s = i % (N / 10);
    add({ apiVersion: 'v1', kind: 'Pod',
      metadata: { name: `app-${s}-7d9f8b6c5d-${i.toString(36).padStart(5, '0')}`, namespace: `team-${s % 100}`, uid: `uid-${i}`, labels: { app: `app-${s}`, version: 'v1' },
        ownerReferences: [{ kind: 'ReplicaSet', name: `app-${s}-7d9f8b6c5d`, controller: true }] },
      spec: { nodeName: i === moved ? `node-moved-${round}` : `node${i % 50}`, serviceAccountName: `app-${s}` },
      status: { phase: 'Running', podIP: `198.18.${(i >> 8) & 0xff}.${i & 0xff}` } });
  }
  return { objects, problems: [] };
}

class MemorySource implements ClusterSource {
  private emit: ((s: ClusterSnapshot) => void) | undefined;
  async start(onSnapshot: (s: ClusterSnapshot) => void): Promise<void> {
    this.emit = onSnapshot;
    onSnapshot(cluster(undefined, 0));
  }
  push(s: ClusterSnapshot): void {
    this.emit?.(s);
  }
  async stop(): Promise<void> {}
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;

global.gc?.();
const before = process.memoryUsage();
const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ctl-'));
const source = new MemorySource();
const tLoad = wall();
const controller = await Controller.start({ source, stateDir: dir, listen: '127.0.0.1:0' });
const loadMs = wall() - tLoad;
global.gc?.();
const loaded = process.memoryUsage();
const tokens = await HmacNodeTokens.fromStateDir(dir);

const children: ChildProcess[] = [];
const lines: Array<Array<Record<string, number>>> = [];
const waiters: Array<(l: Record<string, number>) => void> = [];
// process 0 syncs alone first (one agent, idle controller); 1..A then connect at once
for (let a = 0; a <= A; a++) {
  const arg = JSON.stringify({ address: `127.0.0.1:${controller.port}`, rootCertPem: controller.ca.rootsPem, token: tokens.issue(`node${a}`), node: `node${a}`, watchUid: 'uid-0' });
  const c = spawn(process.execPath, ['--expose-gc', '--no-deprecation', AGENT, arg], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'error' } });
  children.push(c);
  const mine: Array<Record<string, number>> = [];
  lines.push(mine);
  createInterface({ input: c.stdout! }).on('line', (l) => {
    mine.push(JSON.parse(l) as Record<string, number>);
    for (const w of waiters.splice(0)) w(mine.at(-1)!);
  });
}
const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise<void>((r) => waiters.push(() => r()));
};
let tStart = 0;
try {
  await until(() => lines.every((l) => l.some((v) => v.ready)));
  const tSolo = wall();
  children[0]!.stdin!.write('go\n');
  await until(() => lines[0]!.some((v) => v.synced));
  const soloMs = lines[0]!.find((v) => v.synced)!.synced! - tSolo;
  children[0]!.kill('SIGTERM');
  children.shift();
  lines.shift();
  tStart = wall();
  for (const c of children) c.stdin!.write('go\n');
  await until(() => lines.every((l) => l.some((v) => v.synced)));
  const synced = lines.map((l) => l.find((v) => v.synced)!);
  const syncMs = synced.map((v) => v.synced! - tStart);
  if (synced.some((v) => v.workloads !== N)) throw new Error('an agent synced without every workload');
  // let the sync storm finish (agents' GC, the controller's write buffers) before timing changes
  await new Promise((r) => setTimeout(r, Number(values['settle-ms'])));
  const changeMs: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const seen = lines.map((l) => l.filter((v) => v.changed).length);
    const next = cluster(0, r); // built before the clock starts: the bench's own cost
    const t0 = wall();
    source.push(next);
    await until(() => lines.every((l, i) => l.filter((v) => v.changed).length > seen[i]!));
    changeMs.push(Math.max(...lines.map((l) => l.filter((v) => v.changed).at(-1)!.changed! - t0)));
  }
  const result = {
    when: new Date().toISOString(), cpus: cpus().length, loadAverage: loadavg().map((x) => Math.round(x * 10) / 10), node: process.version, workloads: N, services: N / 10, agents: A, rounds: ROUNDS,
    controllerTranslateAndServeMs: Math.round(loadMs),
    oneAgentFirstFullSyncMs: Math.round(soloMs),
    firstFullSyncMs: { p50: Math.round(pct(syncMs, 50)), max: Math.round(Math.max(...syncMs)) },
    oneChangeToEveryAgentMs: { p50: Math.round(pct(changeMs, 50)), max: Math.round(Math.max(...changeMs)), all: changeMs.map((x) => Math.round(x)) },
    controllerMemoryMB: { rssBefore: mb(before.rss), rssLoaded: mb(loaded.rss), heapLoaded: mb(loaded.heapUsed), rssAfterAgents: mb(process.memoryUsage().rss) },
    agentMemoryMB: { rssP50: mb(pct(synced.map((v) => v.rssBytes!), 50)), heapP50: mb(pct(synced.map((v) => v.heapBytes!), 50)) },
  };
  mkdirSync(RESULTS, { recursive: true });
  const stamp = result.when.replace(/[:.]/g, '-');
  writeFileSync(join(RESULTS, `controller-xds-${stamp}.json`), JSON.stringify(result, null, 2) + '\n');
  const md = [
    `# controller xDS: ${N} workloads, ${A} agents (${result.cpus} CPUs, load ${result.loadAverage.join(' ')}, Node ${result.node})`, '',
    '| measure | value |', '|---|---|',
    `| controller: translate + serve initial cluster | ${result.controllerTranslateAndServeMs} ms |`,
    `| first full sync of one agent alone | ${result.oneAgentFirstFullSyncMs} ms |`,
    `| first full sync, all ${A} agents connecting at once, on this machine's ${result.cpus} CPUs (p50 / max) | ${result.firstFullSyncMs.p50} / ${result.firstFullSyncMs.max} ms |`,
    `| one change to every agent (p50 / max of ${ROUNDS} rounds) | ${result.oneChangeToEveryAgentMs.p50} / ${result.oneChangeToEveryAgentMs.max} ms |`,
    `| controller RSS before / loaded / with agents | ${result.controllerMemoryMB.rssBefore} / ${result.controllerMemoryMB.rssLoaded} / ${result.controllerMemoryMB.rssAfterAgents} MB |`,
    `| controller heap loaded | ${result.controllerMemoryMB.heapLoaded} MB |`,
    `| agent RSS / heap when synced (p50) | ${result.agentMemoryMB.rssP50} / ${result.agentMemoryMB.heapP50} MB |`, '',
  ].join('\n');
  writeFileSync(join(RESULTS, `controller-xds-${stamp}.md`), md);
  process.stdout.write(md);
} finally {
  for (const c of children) c.kill('SIGTERM');
  await controller.stop();
  rmSync(dir, { recursive: true, force: true });
}
