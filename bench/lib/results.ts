// The run's data model (what bench/results/<run>/run.json holds) and the aggregation across
// rounds: per-mode median and min–max, added latency over direct in the same round, ratios,
// and the issue 7 targets evaluated on them.
import type { MachineInfo } from './machine.js';
import type { ProfileSummary } from './cpuprofile.js';
import { evaluateTarget, ratio, spread, vcpuPer1000, type LatencySummary, type Spread, type TargetResult, type TargetSpec } from './stats.js';

export type Mode = 'a' | 'b' | 'c';
export const MODES: Mode[] = ['a', 'b', 'c'];
export const MODE_NAMES: Record<Mode, string> = { a: 'direct', b: 'Weft', c: 'HAProxy mTLS' };
export type Placement = 'cross' | 'same';

export interface ProcessCpu {
  /** CPU seconds (utime + stime) used by both Weft agents during the measurement */
  agentsSec: number;
  /** same for both HAProxy processes */
  haproxySec: number;
  wallSec: number;
}

export interface Sample {
  round: number;
  mode: Mode;
  placement: Placement;
  scenario: 'bulk' | 'latency' | 'churn' | 'handshake';
  /** e.g. "P1", "1000rps/4c", "16w" */
  params: string;
  gbps?: number;
  /** bytes received in a bulk run */
  bytes?: number;
  latency?: LatencySummary;
  latenciesMs?: number[];
  rate?: number;
  achievedRate?: number;
  errors?: number;
  connectionsPerSec?: number;
  cpu?: ProcessCpu;
  agentsRssMB?: number;
}

export interface RunResult {
  run: string;
  profile: 'quick' | 'full';
  startedAt: string;
  finishedAt?: string;
  rounds: number;
  machine: MachineInfo;
  config: Record<string, unknown>;
  samples: Sample[];
  /** single measurements outside the rounds: RSS idle and with idle connections, handshake rate */
  resources: {
    agentsRssIdleMB?: number;
    agentsRssIdleConnsMB?: number;
    /** the same, 30 s after the last connection opened */
    agentsRssIdleConnsLaterMB?: number;
    idleConnections?: number;
    handshakesPerSec?: number;
    handshakeAgentCpuSec?: number;
    handshakeWallSec?: number;
    handshakeErrors?: number;
  };
  /** --cpu-prof: each agent's hottest functions under one load (profiles next to run.json) */
  profiles?: Array<{ load: string; node: string; file: string } & ProfileSummary>;
  notes: string[];
}

export const keyOf = (s: Pick<Sample, 'placement' | 'scenario' | 'params'>) => `${s.placement} ${s.scenario} ${s.params}`;

/** Distinct scenario keys in first-seen order. */
export function scenarioKeys(samples: Sample[]): string[] {
  return [...new Set(samples.map(keyOf))];
}

export function metricSpread(samples: Sample[], key: string, mode: Mode, metric: (s: Sample) => number | undefined): Spread {
  return spread(samples.filter((s) => keyOf(s) === key && s.mode === mode).map((s) => metric(s) ?? NaN));
}

/** Per round, mode's value minus direct's value in the same round; spread over rounds. */
export function addedSpread(samples: Sample[], key: string, mode: Mode, metric: (s: Sample) => number | undefined): Spread {
  const base = new Map(samples.filter((s) => keyOf(s) === key && s.mode === 'a').map((s) => [s.round, metric(s) ?? NaN]));
  return spread(samples.filter((s) => keyOf(s) === key && s.mode === mode).map((s) => (metric(s) ?? NaN) - (base.get(s.round) ?? NaN)));
}

export const TARGETS: TargetSpec[] = [
  { id: 'throughput', text: 'Cross-node single-stream throughput, Weft ÷ HAProxy', unit: '×', comparison: '>=', threshold: 0.8, stretch: 1 },
  { id: 'p99-vs-ref', text: 'Added p99 at 1,000 req/s (4 conns, cross-node), Weft ÷ HAProxy', unit: '×', comparison: '<=', threshold: 1.5 },
  { id: 'p99-abs', text: 'Added p99 at 1,000 req/s (4 conns, cross-node), Weft', unit: 'ms', comparison: '<=', threshold: 0.5 },
  { id: 'cpu', text: 'Both agents, vCPU per 1,000 req/s', unit: 'vCPU', comparison: '<=', threshold: 0.2, stretch: 0.1 },
  { id: 'rss', text: 'Agent RSS with 10,000 idle connections (largest agent)', unit: 'MB', comparison: '<=', threshold: 150 },
  { id: 'handshakes', text: 'New HBONE connections (full mTLS handshakes) per second per core', unit: '/s/core', comparison: '>=', threshold: 900 },
];

export const TARGET_LATENCY_KEY = 'cross latency 1000rps/4c';

/** vCPU per 1,000 req/s of the agents (or HAProxy) in one latency sample. */
export function sampleVcpu(s: Sample, who: 'agents' | 'haproxy'): number {
  if (!s.cpu || !s.achievedRate) return NaN;
  return vcpuPer1000(who === 'agents' ? s.cpu.agentsSec : s.cpu.haproxySec, s.cpu.wallSec, s.achievedRate);
}

export function computeTargets(r: RunResult): TargetResult[] {
  const bulk1 = (m: Mode) => metricSpread(r.samples, 'cross bulk P1', m, (s) => s.gbps);
  const p99 = (m: Mode) => addedSpread(r.samples, TARGET_LATENCY_KEY, m, (s) => s.latency?.p99);
  const cpuSpread = metricSpread(r.samples, TARGET_LATENCY_KEY, 'b', (s) => sampleVcpu(s, 'agents'));
  const cpu = cpuSpread.median;
  // Round-by-round range of each value (same-round ratios), to show when noise straddles the goal.
  const perRound = (f: (round: number) => number) => spread([...new Set(r.samples.map((s) => s.round))].map(f));
  const inRound = (key: string, m: Mode, round: number, metric: (s: Sample) => number | undefined) =>
    metricSpread(r.samples.filter((s) => s.round === round), key, m, metric).median;
  const addedInRound = (m: Mode, round: number) => inRound(TARGET_LATENCY_KEY, m, round, (s) => s.latency?.p99) - inRound(TARGET_LATENCY_KEY, 'a', round, (s) => s.latency?.p99);
  const ranges: Record<string, Spread> = {
    throughput: perRound((k) => ratio(inRound('cross bulk P1', 'b', k, (s) => s.gbps), inRound('cross bulk P1', 'c', k, (s) => s.gbps))),
    'p99-vs-ref': perRound((k) => ratio(addedInRound('b', k), addedInRound('c', k))),
    'p99-abs': p99('b'),
    cpu: cpuSpread,
  };
  const hs = r.resources.handshakeAgentCpuSec && r.resources.handshakesPerSec && r.resources.handshakeWallSec
    ? r.resources.handshakesPerSec / (r.resources.handshakeAgentCpuSec / r.resources.handshakeWallSec)
    : NaN;
  const values: Record<string, number> = {
    throughput: ratio(bulk1('b').median, bulk1('c').median),
    'p99-vs-ref': ratio(p99('b').median, p99('c').median),
    'p99-abs': p99('b').median,
    cpu,
    rss: r.resources.agentsRssIdleConnsMB ?? NaN,
    handshakes: hs,
  };
  return TARGETS.map((t) => {
    const res = evaluateTarget(t, values[t.id] ?? NaN);
    // A ratio of added latencies only means something when both modes added some.
    if (t.id === 'p99-vs-ref' && (p99('b').median <= 0 || p99('c').median <= 0)) {
      res.status = 'inconclusive';
      res.reason = `added p99 (median over rounds) is ${p99('b').median.toFixed(3)} ms for Weft and ${p99('c').median.toFixed(3)} ms for HAProxy: noise on the machine is larger than the overhead`;
    }
    if (t.id === 'p99-abs' && p99('b').median <= 0) {
      res.status = 'inconclusive';
      res.reason = `Weft's added p99 (median over rounds) is ${p99('b').median.toFixed(3)} ms: direct's own p99 varies more than the overhead`;
    }
    const rg = ranges[t.id];
    if (rg && rg.n > 1) res.range = [rg.min, rg.max];
    return res;
  });
}
