// Where an agent's time goes: self time per function from a V8 .cpuprofile (as written by
// --cpu-prof or the inspector's Profiler.stop).

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface HotFunction {
  name: string;
  where: string;
  selfMs: number;
  /** share of the busy (non-idle) time */
  share: number;
}

export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  hot: HotFunction[];
}

/** Busy time and the functions by self time, largest first (samples × their time deltas); idle left out. */
export function summarizeProfile(p: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const n = byId.get(samples[i]!);
    if (!n) continue;
    const us = deltas[i + 1] ?? deltas[i] ?? 0;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const file = cf.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
    const where = file ? `${file}:${cf.lineNumber + 1}` : '';
    const name = cf.functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const e = self.get(key) ?? { name, where, us: 0 };
    e.us += us;
    self.set(key, e);
  }
  const hot = [...self.values()].sort((a, b) => b.us - a.us).slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, share: total ? e.us / total : 0 }));
  return { wallMs: (p.endTime - p.startTime) / 1000, busyMs: total / 1000, hot };
}
