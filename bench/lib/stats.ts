// Statistics for the side-by-side bench: percentiles, latency from the intended send time
// (coordinated-omission correction), median and min–max across rounds, ratios.

/** Nearest-rank percentile (q in 0..1) of unsorted values; NaN for none. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  return percentileSorted(s, q);
}

/** Nearest-rank percentile of values already sorted ascending. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  if (q <= 0) return sorted[0]!;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function summarize(values: readonly number[]): LatencySummary {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n: s.length,
    p50: percentileSorted(s, 0.5),
    p90: percentileSorted(s, 0.9),
    p99: percentileSorted(s, 0.99),
    p999: percentileSorted(s, 0.999),
    max: s.length ? s[s.length - 1]! : NaN,
    mean: s.length ? sum / s.length : NaN,
  };
}

/**
 * Latency of each request measured from when it was *meant* to be sent, not from when the
 * (possibly late) sender got round to it: a stall then counts against every request it
 * delayed, as in wrk2. Both arrays in ms on one clock; a response before its intended time is
 * impossible and is refused.
 */
export function correctedLatencies(intendedMs: readonly number[], doneMs: readonly number[]): number[] {
  if (intendedMs.length !== doneMs.length) throw new RangeError(`intended (${intendedMs.length}) and done (${doneMs.length}) differ in length`);
  return intendedMs.map((t, i) => {
    const d = doneMs[i]! - t;
    if (d < 0) throw new RangeError(`request ${i} finished before its intended send time`);
    return d;
  });
}

/** Intended send time of request i at a fixed rate (req/s) from start (ms). */
export function intendedTime(startMs: number, ratePerSec: number, i: number): number {
  return startMs + (i * 1000) / ratePerSec;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median (mean of the middle two for even counts) and min–max of per-round values; NaN ignored. */
export function spread(values: readonly number[]): Spread {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** a / b, NaN when either is missing or b is 0. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

export type Comparison = '>=' | '<=';

export interface TargetSpec {
  id: string;
  text: string;
  unit: string;
  comparison: Comparison;
  threshold: number;
  stretch?: number;
}

export interface TargetResult extends TargetSpec {
  value: number;
  status: 'met' | 'not met' | 'not measured' | 'inconclusive';
  /** why a value could not be judged */
  reason?: string;
  stretchMet?: boolean;
  /** min–max over rounds, when the value was measured once per round */
  range?: [number, number];
}

export function evaluateTarget(spec: TargetSpec, value: number): TargetResult {
  if (!Number.isFinite(value)) return { ...spec, value, status: 'not measured' };
  const ok = (limit: number) => (spec.comparison === '>=' ? value >= limit : value <= limit);
  const r: TargetResult = { ...spec, value, status: ok(spec.threshold) ? 'met' : 'not met' };
  if (spec.stretch !== undefined) r.stretchMet = ok(spec.stretch);
  return r;
}

/** CPU seconds from /proc/<pid>/stat text (utime + stime, fields 14 and 15) at a clock tick rate. */
export function cpuSecondsFromStat(stat: string, ticksPerSec = 100): number {
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new RangeError('not a /proc/<pid>/stat line');
  return (utime + stime) / ticksPerSec;
}

/** vCPU used per 1,000 req/s: CPU seconds over wall seconds, scaled by the achieved rate. */
export function vcpuPer1000(cpuSeconds: number, wallSeconds: number, achievedRate: number): number {
  if (wallSeconds <= 0 || achievedRate <= 0) return NaN;
  return cpuSeconds / wallSeconds / (achievedRate / 1000);
}
