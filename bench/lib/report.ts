// Renders a run as Markdown (tables of median and min–max per mode, ratios b/a and b/c, added
// latency, resources, targets) and an SVG chart of latency percentiles per mode.
import { ratio, type Spread, type TargetResult } from './stats.js';
import { MODES, MODE_NAMES, addedSpread, computeTargets, keyOf, metricSpread, sampleVcpu, scenarioKeys, type Mode, type RunResult, type Sample } from './results.js';

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

export function fmtSpread(s: Spread, digits = 2): string {
  if (s.n === 0) return '–';
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

const table = (head: string[], rows: string[][]) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

function modeRow(label: string, samples: Sample[], key: string, metric: (s: Sample) => number | undefined, digits = 2): string[] {
  const sp = Object.fromEntries(MODES.map((m) => [m, metricSpread(samples, key, m, metric)])) as Record<Mode, Spread>;
  return [label, ...MODES.map((m) => fmtSpread(sp[m], digits)), fmt(ratio(sp.b.median, sp.a.median)), fmt(ratio(sp.b.median, sp.c.median))];
}

const PCTS = [['p50', 'p50'], ['p90', 'p90'], ['p99', 'p99'], ['p999', 'p99.9']] as const;

export interface ChartPanel {
  title: string;
  /** per mode, per percentile (p50, p90, p99, p99.9) median ms */
  values: Record<Mode, number[]>;
}

const COLORS: Record<Mode, string> = { a: '#8c8c8c', b: '#2b6cb0', c: '#c05621' };
const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped bar chart, one panel per latency point, log-scale y axis in ms. */
export function latencyChartSvg(panels: ChartPanel[]): string {
  const pw = 330;
  const ph = 240;
  const cols = Math.min(2, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const W = cols * pw + 20;
  const H = rows * ph + 50;
  const all = panels.flatMap((p) => MODES.flatMap((m) => p.values[m])).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 1))));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
  ];
  MODES.forEach((m, i) => {
    out.push(`<rect x="${20 + i * 150}" y="10" width="12" height="12" fill="${COLORS[m]}"/>`, `<text x="${36 + i * 150}" y="20">(${m}) ${esc(MODE_NAMES[m])}</text>`);
  });
  panels.forEach((p, k) => {
    const ox = 10 + (k % cols) * pw;
    const oy = 40 + Math.floor(k / cols) * ph;
    const left = ox + 45;
    const top = oy + 20;
    const plotW = pw - 60;
    const plotH = ph - 60;
    const y = (v: number) => top + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
    out.push(`<text x="${left}" y="${oy + 12}" font-weight="bold">${esc(p.title)}</text>`);
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(d).toFixed(1)}" y2="${y(d).toFixed(1)}" stroke="#ddd"/>`,
        `<text x="${left - 4}" y="${(y(d) + 4).toFixed(1)}" text-anchor="end">${d >= 1 ? d : d.toPrecision(1)} ms</text>`);
    }
    const gw = plotW / PCTS.length;
    const bw = (gw - 16) / MODES.length;
    PCTS.forEach(([, label], j) => {
      const gx = left + j * gw + 8;
      MODES.forEach((m, i) => {
        const v = p.values[m][j] ?? NaN;
        if (!Number.isFinite(v)) return;
        const yt = y(v);
        out.push(`<rect x="${(gx + i * bw).toFixed(1)}" y="${yt.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(top + plotH - yt).toFixed(1)}" fill="${COLORS[m]}"><title>(${m}) ${label}: ${v.toFixed(3)} ms</title></rect>`);
      });
      out.push(`<text x="${(gx + (gw - 16) / 2).toFixed(1)}" y="${top + plotH + 14}" text-anchor="middle">${label}</text>`);
    });
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function chartPanels(r: RunResult): ChartPanel[] {
  return scenarioKeys(r.samples).filter((k) => k.includes(' latency ')).map((key) => ({
    title: key.replace('cross', 'cross-node').replace('same', 'same-node').replace(' latency ', ' '),
    values: Object.fromEntries(MODES.map((m) => [m, PCTS.map(([f]) => metricSpread(r.samples, key, m, (s) => s.latency?.[f]).median)])) as Record<Mode, number[]>,
  }));
}

function targetRow(t: TargetResult): string[] {
  const cmp = t.comparison === '>=' ? '≥' : '≤';
  const goal = `${cmp} ${t.threshold}${t.stretch !== undefined ? ` (stretch ${cmp} ${t.stretch})` : ''} ${t.unit}`;
  let status = t.status === 'met' ? (t.stretchMet ? '**met** (stretch met too)' : '**met**') : t.status === 'not met' ? '**not met**' : t.status === 'inconclusive' ? `**inconclusive**: ${t.reason ?? ''}` : 'not measured';
  const range = t.range ? `${fmt(t.range[0])} – ${fmt(t.range[1])}` : '';
  if (t.range && (t.status === 'met' || t.status === 'not met')) {
    const [lo, hi] = t.range;
    if (lo < t.threshold && hi > t.threshold) status += ' (rounds on both sides of the goal: noisy)';
    if (t.unit === 'ms' && t.value < 0) status += ' (negative: noise larger than the overhead)';
  }
  return [t.text, `${fmt(t.value)} ${t.unit}`, range, goal, status];
}

export function renderReport(r: RunResult, chartFile = 'latency.svg'): string {
  const s = r.samples;
  const keys = scenarioKeys(s);
  const head = ['scenario', '(a) direct', '(b) Weft', '(c) HAProxy', 'b/a', 'b/c'];
  const m = r.machine;
  const parts: string[] = [
    `# Weft side-by-side bench: ${r.run}`,
    '',
    `Profile **${r.profile}**, ${r.rounds} rounds (modes interleaved a b c each round); cells are the median over rounds with (min–max). Started ${r.startedAt}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}.`,
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, kernel ${m.kernel}, congestion control ${m.congestionControl}, load average at start ${m.loadAvg ?? '?'}. ` +
      `Versions: ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    ...(typeof r.config.agentThreads === 'number'
      ? [`Threads: each Weft agent proxies on ${r.config.agentThreads} thread(s) (main + \`--workers ${r.config.agentThreads - 1}\`); each HAProxy runs \`nbthread ${r.config.agentThreads}\`.`, '']
      : []),
    '## Targets (issue 7)',
    '',
    table(['target', 'median', 'rounds min – max', 'goal', 'status'], computeTargets(r).map(targetRow)),
    '',
  ];
  const bulk = keys.filter((k) => k.includes(' bulk '));
  if (bulk.length) parts.push('## Bulk throughput (iperf3, Gbit/s)', '', table(head, bulk.map((k) => modeRow(k, s, k, (x) => x.gbps))), '');
  const lat = keys.filter((k) => k.includes(' latency '));
  if (lat.length) {
    parts.push('## Latency at a fixed rate (open loop, from the intended send time; ms)', '', `![latency percentiles per mode](${chartFile})`, '');
    const rows: string[][] = [];
    for (const k of lat) for (const [f, label] of PCTS) rows.push(modeRow(`${k} ${label}`, s, k, (x) => x.latency?.[f], 3));
    parts.push(table(head, rows), '');
    const added: string[][] = [];
    for (const k of lat) {
      for (const [f, label] of PCTS) {
        const b = addedSpread(s, k, 'b', (x) => x.latency?.[f]);
        const c = addedSpread(s, k, 'c', (x) => x.latency?.[f]);
        added.push([`${k} ${label}`, fmtSpread(b, 3), fmtSpread(c, 3), fmt(ratio(b.median, c.median))]);
      }
    }
    parts.push('Added latency over direct in the same round (ms):', '', table(['point', '(b) Weft added', '(c) HAProxy added', 'b/c'], added), '');
    const achieved: string[][] = lat.map((k) => [k, ...MODES.map((mo) => `${fmtSpread(metricSpread(s, k, mo, (x) => x.achievedRate), 0)} / ${fmt(metricSpread(s, k, mo, (x) => x.errors).max, 0)}`)]);
    parts.push('Achieved rate (req/s) / most errors in a round:', '', table(['point', '(a)', '(b)', '(c)'], achieved), '');
  }
  const churn = keys.filter((k) => k.includes(' churn '));
  if (churn.length) parts.push('## Connection churn (new connections per second, one request each)', '', table(head, churn.map((k) => modeRow(k, s, k, (x) => x.connectionsPerSec, 0))), '');
  const res = r.resources;
  const resRows: string[][] = [];
  for (const k of lat) {
    resRows.push([`${k}: both agents, vCPU per 1,000 req/s (b)`, fmtSpread(metricSpread(s, k, 'b', (x) => sampleVcpu(x, 'agents')), 3)]);
    resRows.push([`${k}: both HAProxy, vCPU per 1,000 req/s (c)`, fmtSpread(metricSpread(s, k, 'c', (x) => sampleVcpu(x, 'haproxy')), 3)]);
  }
  for (const k of bulk) {
    const perGB = (who: 'agentsSec' | 'haproxySec') => (x: Sample) => (x.cpu && x.bytes ? x.cpu[who] / (x.bytes / 1e9) : NaN);
    resRows.push([`${k}: both agents, CPU s per GB (b)`, fmtSpread(metricSpread(s, k, 'b', perGB('agentsSec')), 2)]);
    resRows.push([`${k}: both HAProxy, CPU s per GB (c)`, fmtSpread(metricSpread(s, k, 'c', perGB('haproxySec')), 2)]);
  }
  resRows.push(['Agents RSS idle (sum of both, MB)', fmt(res.agentsRssIdleMB ?? NaN, 1)]);
  const rssLoad = lat.find((k) => k.startsWith('cross') && k.includes('1000rps'));
  if (rssLoad) resRows.push([`Agents RSS at ${rssLoad} (sum, MB)`, fmtSpread(metricSpread(s, rssLoad, 'b', (x) => x.agentsRssMB), 1)]);
  resRows.push([`Largest agent RSS with ${res.idleConnections ?? 10_000} idle connections (MB)`, res.agentsRssIdleConnsMB !== undefined ? fmt(res.agentsRssIdleConnsMB, 1) : 'not measured']);
  if (res.agentsRssIdleConnsLaterMB !== undefined) resRows.push([`… the same 30 s after they opened (MB)`, fmt(res.agentsRssIdleConnsLaterMB, 1)]);
  if (res.handshakesPerSec !== undefined) {
    resRows.push(['Full mTLS handshakes to the server agent :15008 (per s)', fmt(res.handshakesPerSec, 0)]);
    resRows.push(['… server agent CPU during them (vCPU)', fmt((res.handshakeAgentCpuSec ?? NaN) / (res.handshakeWallSec ?? NaN), 2)]);
  }
  parts.push('## Resources', '', table(['what', 'value'], resRows), '');
  for (const p of r.profiles ?? []) {
    parts.push(`## Agent CPU profile: ${p.node} under ${p.load}`, '', `Busy ${fmt(p.busyMs, 0)} ms of ${fmt(p.wallMs, 0)} ms; self time by function, share of busy time (${p.file}):`, '',
      table(['function', 'where', 'self ms', 'share'], p.hot.map((h) => [`\`${h.name}\``, h.where, fmt(h.selfMs, 1), `${(h.share * 100).toFixed(1)} %`])), '');
  }
  if (r.notes.length) parts.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  return parts.join('\n');
}

export { keyOf };
