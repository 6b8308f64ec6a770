// Benchmark: connection set-up time and round-trip latency through Weft's outbound capture
// path (cgroup/connect4 → 127.0.0.1:15001 → a trivial relay that looks up the original
// destination and connects onward) against a direct connection, measured side by side in the
// same lab and reported as ratios. Run: node dist/bench/capture.js [--connections N]
// [--round-trips N] [--rounds N] [--payload BYTES]. Writes bench/results/capture-<time>.{json,md}.
import { createServer, Socket, type Server } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, ECHO_PORT, addressPlan, type PodStatus } from '../agent/src/lab/index.js';
import { closeFd, listenInNetns, netnsCookie, socketInNetns } from '../agent/src/native/index.js';
import { DEFAULT_BYPASS_MARK, Redirector } from '../agent/src/redirect/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT = join(here, 'capture-client.js');
const RESULTS = resolve(here, '..', '..', 'bench', 'results');

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '300' },
    'round-trips': { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    payload: { type: 'string', default: '64' },
  },
});
const cfg = { connections: Number(values.connections), roundTrips: Number(values['round-trips']), rounds: Number(values.rounds), payload: Number(values.payload) };

interface Samples { setupUs: number[]; rttUs: number[] }

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const stats = (xs: number[]) => ({ n: xs.length, p50: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), mean: xs.reduce((a, b) => a + b, 0) / xs.length });

/**
 * Upstream sockets made ahead of time: creating one inside another netns costs a setns
 * round trip (~0.6 ms here, 6x a socket in our own netns), which a proxy pays off the
 * connection path. Refilled in the background.
 */
class SocketPool {
  private readonly ready: number[] = [];
  private filling = false;
  constructor(private readonly netns: string, private readonly size = 32) {}
  async take(): Promise<number> {
    const fd = this.ready.pop();
    void this.fill();
    return fd ?? socketInNetns({ netns: this.netns, mark: DEFAULT_BYPASS_MARK });
  }
  async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    try {
      while (this.ready.length < this.size) this.ready.push(await socketInNetns({ netns: this.netns, mark: DEFAULT_BYPASS_MARK }));
    } finally {
      this.filling = false;
    }
  }
  close(): void {
    for (const fd of this.ready.splice(0)) closeFd(fd);
  }
}

/** The trivial relay on :15001 inside the pod netns: original destination from the maps, then pipe. */
async function relay(r: Redirector, netns: string, pool: SocketPool): Promise<Server> {
  const fd = await listenInNetns({ netns, host: '127.0.0.1', port: 15001, backlog: 4096 });
  const server = createServer({ noDelay: true }, (down) => {
    down.on('error', () => undefined);
    void (async () => {
      const orig = await r.takeOriginalDestination(netnsCookie(down), down.remotePort!);
      if (!orig) return down.destroy();
      const up = new Socket({ fd: await pool.take() });
      up.setNoDelay(true);
      up.on('error', () => down.destroy());
      up.connect(orig.port, orig.address, () => { down.pipe(up); up.pipe(down); });
    })().catch(() => down.destroy());
  });
  await new Promise<void>((res) => server.listen({ fd }, res));
  return server;
}

async function measure(lab: Lab, from: PodStatus, target: PodStatus): Promise<Samples> {
  const arg = JSON.stringify({ host: target.ip, port: ECHO_PORT, connections: cfg.connections, roundTrips: cfg.roundTrips, payload: cfg.payload });
  const res = await lab.exec(`${from.namespace}/${from.name}`, [process.execPath, CLIENT, arg], { timeoutMs: 600_000 });
  if (res.code !== 0) throw new Error(`client in ${from.namespace}/${from.name} failed (${res.code}): ${res.stderr}`);
  return JSON.parse(res.stdout) as Samples;
}

const lab = await Lab.up({ name: `b${Math.random().toString(36).slice(2, 6)}`, nodes: 2, podsPerNode: 2 });
let r: Redirector | undefined;
let server: Server | undefined;
let pool: SocketPool | undefined;
try {
  const st = lab.status();
  const captured = st.pods.find((p) => p.namespace === 'demo' && p.name === 'client-1')!;
  const direct = st.pods.find((p) => p.node === captured.node && p !== captured)!;
  const target = st.pods.find((p) => p.node !== captured.node && p.name.startsWith('server'))!;
  r = await Redirector.open({ agentId: `weft-${lab.name}-${captured.node}` });
  const gw = addressPlan(st.slot).podGateway(st.nodes.findIndex((n) => n.name === captured.node) + 1);
  await r.enrol({ uid: captured.uid, netnsPath: captured.netns, cgroupPath: captured.podCgroup, ip: captured.ip, nodeGatewayIp: gw });
  pool = new SocketPool(captured.netns);
  await pool.fill();
  server = await relay(r, captured.netns, pool);

  const all = { direct: { setupUs: [], rttUs: [] } as Samples, capture: { setupUs: [], rttUs: [] } as Samples };
  await measure(lab, direct, target); // warm-up (JIT, ARP, caches) for both paths
  await measure(lab, captured, target);
  for (let round = 0; round < cfg.rounds; round++) {
    // Alternate so drift on the machine hits both sides alike.
    for (const [name, pod] of [['direct', direct], ['capture', captured]] as const) {
      const s = await measure(lab, pod, target);
      all[name].setupUs.push(...s.setupUs);
      all[name].rttUs.push(...s.rttUs);
    }
  }
  const d = { setup: stats(all.direct.setupUs), rtt: stats(all.direct.rttUs) };
  const c = { setup: stats(all.capture.setupUs), rtt: stats(all.capture.rttUs) };
  const ratio = {
    setupP50: c.setup.p50 / d.setup.p50, setupP99: c.setup.p99 / d.setup.p99,
    rttP50: c.rtt.p50 / d.rtt.p50, rttP99: c.rtt.p99 / d.rtt.p99,
  };
  const result = {
    benchmark: 'capture', time: new Date().toISOString(), config: cfg,
    path: { from: `${captured.namespace}/${captured.name} (${captured.node})`, baselineFrom: `${direct.namespace}/${direct.name} (${direct.node})`, to: `${target.ip}:${ECHO_PORT} (${target.node})` },
    direct: d, capture: c, ratio,
  };
  const f = (x: number) => x.toFixed(1);
  const md = [
    `# Capture path vs direct (${result.time})`, '',
    `${cfg.rounds} alternating rounds; ${cfg.connections} connections and ${cfg.roundTrips} round trips of ${cfg.payload} B per round and side.`,
    `Capture: cgroup/connect4 → 127.0.0.1:15001 → trivial relay (orig dst from the BPF map, upstream socket from a pre-made pool) → ${result.path.to}.`,
    `Baseline: the same client program in ${result.path.baselineFrom}, a pod on the same node that is not enrolled.`, '',
    '| metric (µs) | direct p50 | capture p50 | ratio p50 | direct p99 | capture p99 | ratio p99 |',
    '|---|---|---|---|---|---|---|',
    `| connection set-up (connect + first echo) | ${f(d.setup.p50)} | ${f(c.setup.p50)} | ${ratio.setupP50.toFixed(2)} | ${f(d.setup.p99)} | ${f(c.setup.p99)} | ${ratio.setupP99.toFixed(2)} |`,
    `| round trip (${cfg.payload} B echo) | ${f(d.rtt.p50)} | ${f(c.rtt.p50)} | ${ratio.rttP50.toFixed(2)} | ${f(d.rtt.p99)} | ${f(c.rtt.p99)} | ${ratio.rttP99.toFixed(2)} |`,
    '',
  ].join('\n');
  mkdirSync(RESULTS, { recursive: true });
  const stamp = result.time.replace(/[:.]/g, '-');
  writeFileSync(join(RESULTS, `capture-${stamp}.json`), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(RESULTS, `capture-${stamp}.md`), md);
  process.stdout.write(md + `\nwritten: bench/results/capture-${stamp}.{json,md}\n`);
} finally {
  pool?.close();
  await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
  await r?.purge().catch(() => undefined);
  await lab.down();
}
