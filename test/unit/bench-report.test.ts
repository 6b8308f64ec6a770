// The bench's report: targets from a run's samples (same-round added latency, ratios), the
// Markdown tables and the SVG chart.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { computeTargets, addedSpread, type RunResult, type Sample, type Mode } from '../../bench/lib/results.js';
import { chartPanels, latencyChartSvg, renderReport } from '../../bench/lib/report.js';
import { summarize } from '../../bench/lib/stats.js';

function fakeRun(): RunResult {
  const samples: Sample[] = [];
  const p99: Record<Mode, number[]> = { a: [1, 2, 1.5], b: [1.3, 2.4, 1.7], c: [1.2, 2.2, 1.8] };
  const gbps: Record<Mode, number> = { a: 10, b: 4, c: 5 };
  for (let round = 1; round <= 3; round++) {
    for (const mode of ['a', 'b', 'c'] as Mode[]) {
      samples.push({ round, mode, placement: 'cross', scenario: 'bulk', params: 'P1', gbps: gbps[mode] + round / 10 });
      const lat = Array.from({ length: 100 }, (_, i) => (i >= 98 ? p99[mode][round - 1]! : 0.5));
      samples.push({
        round, mode, placement: 'cross', scenario: 'latency', params: '1000rps/4c', latency: summarize(lat), latenciesMs: lat, achievedRate: 1000, errors: 0,
        cpu: { agentsSec: mode === 'b' ? 0.3 : 0, haproxySec: mode === 'c' ? 0.2 : 0, wallSec: 2 },
      });
    }
  }
  return {
    run: 'run-test', profile: 'quick', startedAt: '2026-01-01T00:00:00Z', rounds: 3,
    machine: { cpuModel: 'Test CPU', cores: 2, memoryGiB: 4, kernel: '6.18', congestionControl: 'cubic', loadAvg: '0.1 0.1 0.1 1/100 1', versions: { node: '20', haproxy: '2.6.12' } },
    config: {}, samples, resources: { agentsRssIdleMB: 80, handshakesPerSec: 500, handshakeAgentCpuSec: 1, handshakeWallSec: 2 }, notes: ['a note'],
  };
}

describe('bench report', () => {
  it('added latency is the mode minus direct in the same round', () => {
    const r = fakeRun();
    const b = addedSpread(r.samples, 'cross latency 1000rps/4c', 'b', (s) => s.latency?.p99);
    assert.deepEqual([b.min, b.median, b.max].map((x) => Math.round(x * 1000) / 1000), [0.2, 0.3, 0.4]);
  });

  it('evaluates each issue 7 target from the samples', () => {
    const t = Object.fromEntries(computeTargets(fakeRun()).map((x) => [x.id, x]));
    assert.equal(t.throughput!.value, 4.2 / 5.2);
    assert.equal(t.throughput!.status, 'met');
    assert.equal(Math.round(t['p99-abs']!.value * 1000) / 1000, 0.3);
    assert.equal(t['p99-abs']!.status, 'met');
    // Weft added 0.3 ms, HAProxy added 0.2 (median of 0.2, 0.2, 0.3): ratio 1.5 meets ≤ 1.5.
    assert.equal(Math.round(t['p99-vs-ref']!.value * 100) / 100, 1.5);
    assert.equal(Math.round(t.cpu!.value * 1000) / 1000, 0.15);
    assert.equal(t.cpu!.status, 'met');
    assert.equal(t.cpu!.stretchMet, false);
    assert.equal(t.rss!.status, 'not measured');
    assert.equal(t.handshakes!.value, 1000);
    assert.equal(t.handshakes!.status, 'met');
  });

  it('a ratio of added p99s is inconclusive when a mode added nothing (noise larger than the overhead)', () => {
    const r = fakeRun();
    for (const s of r.samples) if (s.mode === 'c' && s.latency) s.latency.p99 = 0.1; // below direct's
    const t = computeTargets(r).find((x) => x.id === 'p99-vs-ref')!;
    assert.equal(t.status, 'inconclusive');
    assert.match(t.reason!, /HAProxy/);
    assert.match(renderReport(r), /\*\*inconclusive\*\*: added p99/);
    for (const s of r.samples) if (s.mode === 'b' && s.latency) s.latency.p99 = 0.1;
    assert.equal(computeTargets(r).find((x) => x.id === 'p99-abs')!.status, 'inconclusive');
  });

  it('renders the targets, the ratio columns, the machine and the chart link', () => {
    const md = renderReport(fakeRun());
    assert.match(md, /Test CPU, 2 cores/);
    assert.match(md, /\| Cross-node single-stream throughput, Weft ÷ HAProxy \| 0\.81 × \| 0\.80 – 0\.81 \| ≥ 0\.8 \(stretch ≥ 1\) × \| \*\*met\*\* \|/);
    // Same-round ratios 1.5, 2.0, 0.67 straddle the 1.5 goal: flagged as noisy.
    assert.match(md, /\| Added p99 at 1,000 req\/s \(4 conns, cross-node\), Weft ÷ HAProxy \| 1\.50 × \| 0\.67 – 2\.00 \| ≤ 1\.5 × \| \*\*met\*\* \(rounds on both sides of the goal: noisy\) \|/);
    assert.match(md, /Agent RSS with 10,000 idle connections.*not measured/);
    assert.match(md, /\| cross bulk P1 \| 10\.20 \(10\.10–10\.30\) \| 4\.20 \(4\.10–4\.30\) \| 5\.20 \(5\.10–5\.30\) \| 0\.41 \| 0\.81 \|/);
    assert.match(md, /!\[latency percentiles per mode\]\(latency\.svg\)/);
    assert.match(md, /- a note/);
  });

  it('draws one bar per mode and percentile, with the value in its title', () => {
    const panels = chartPanels(fakeRun());
    assert.equal(panels.length, 1);
    const svg = latencyChartSvg(panels);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, 12);
    assert.match(svg, /<title>\(b\) p99: 1\.700 ms<\/title>/);
    assert.match(svg, /\(c\) HAProxy mTLS/);
  });
});
