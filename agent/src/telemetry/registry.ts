// A small Prometheus registry: counters and gauges with label sets, rendered in the text
// exposition format 0.0.4. Label sets are keyed by their joined values, so an increment is a map
// lookup and an addition; no per-scrape work happens on the data path.

export type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Series {
  labels: Labels;
  value: number;
}

abstract class Metric {
  protected readonly series = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: 'counter' | 'gauge',
  ) {}

  protected key(labels: Labels): string {
    let k = '';
    for (const n of this.labelNames) k += (labels[n] ?? '') + '\u0000';
    return k;
  }

  protected entry(labels: Labels): Series {
    const k = this.key(labels);
    let s = this.series.get(k);
    if (!s) {
      const own: Labels = {};
      for (const n of this.labelNames) own[n] = labels[n] ?? '';
      s = { labels: own, value: 0 };
      this.series.set(k, s);
    }
    return s;
  }

  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }

  /** Refreshes computed values (gauges with a collect function). */
  collect(): void {}

  snapshot(): MetricSnapshot {
    this.collect();
    return { name: this.name, help: this.help, type: this.type, labelNames: this.labelNames, series: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value })) };
  }

  render(others: readonly MetricSnapshot[] = []): string {
    this.collect();
    let all: Iterable<Series> = this.series.values();
    if (others.length) {
      // Series of the same labels from other threads add up (counters and count-like gauges).
      const sum = new Map<string, Series>();
      for (const [k, s] of this.series) sum.set(k, { labels: s.labels, value: s.value });
      for (const o of others) {
        for (const s of o.series) {
          const k = this.key(s.labels);
          const cur = sum.get(k);
          if (cur) cur.value += s.value;
          else sum.set(k, { labels: s.labels, value: s.value });
        }
      }
      all = sum.values();
    }
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const s of all) {
      const ls = this.labelNames.map((n) => `${n}="${escapeLabel(s.labels[n] ?? '')}"`).join(',');
      out += `${this.name}${ls ? `{${ls}}` : ''} ${formatValue(s.value)}\n`;
    }
    return out;
  }
}

/** A metric's values as plain data: what a data-plane worker sends for the agent to add up. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames: readonly string[];
  series: Array<{ labels: Labels; value: number }>;
}

/** A metric only another thread has (rendered from its snapshots). */
class ForeignMetric extends Metric {
  constructor(s: MetricSnapshot) {
    super(s.name, s.help, s.labelNames, s.type);
  }
}

export class Counter extends Metric {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new RangeError(`counter ${this.name} cannot decrease (by ${by})`);
    this.entry(labels).value += by;
  }
}

export class Gauge extends Metric {
  private collectFn?: (g: Gauge) => void;
  constructor(name: string, help: string, labelNames: readonly string[] = [], collect?: (g: Gauge) => void) {
    super(name, help, labelNames, 'gauge');
    this.collectFn = collect;
  }
  set(labels: Labels, v: number): void {
    this.entry(labels).value = v;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.entry(labels).value += by;
  }
  dec(labels: Labels = {}, by = 1): void {
    this.entry(labels).value -= by;
  }
  override collect(): void {
    this.collectFn?.(this);
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  register<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} is already registered`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: (g: Gauge) => void): Gauge {
    return this.register(new Gauge(name, help, labelNames, collect));
  }

  /**
   * The Prometheus text exposition of every metric; with `others` (other threads' snapshots),
   * each series is the sum over this registry and them.
   */
  render(others: readonly MetricSnapshot[][] = []): string {
    const byName = new Map<string, MetricSnapshot[]>();
    for (const snap of others) {
      for (const m of snap) {
        const list = byName.get(m.name);
        if (list) list.push(m);
        else byName.set(m.name, [m]);
      }
    }
    let out = '';
    for (const m of this.metrics.values()) out += m.render(byName.get(m.name));
    for (const [name, snaps] of byName) if (!this.metrics.has(name)) out += new ForeignMetric(snaps[0]!).render(snaps);
    return out;
  }

  snapshot(): MetricSnapshot[] {
    return [...this.metrics.values()].map((m) => m.snapshot());
  }

  static readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
}
