// The bench's statistics: percentiles, latency from the intended send time (coordinated
// omission), median/min–max over rounds, ratios, target evaluation, /proc CPU parsing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeProfile } from '../../bench/lib/cpuprofile.js';
import { benchPreflight } from '../../bench/lib/preflight.js';
import { correctedLatencies, cpuSecondsFromStat, evaluateTarget, intendedTime, percentile, ratio, spread, summarize, vcpuPer1000 } from '../../bench/lib/stats.js';

describe('bench statistics', () => {
  it('percentiles are nearest-rank on unsorted input', () => {
    const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1000..1
    assert.equal(percentile(xs, 0.5), 500);
    assert.equal(percentile(xs, 0.99), 990);
    assert.equal(percentile(xs, 0.999), 999);
    assert.equal(percentile(xs, 1), 1000);
    assert.equal(percentile([7], 0.999), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
    const s = summarize([3, 1, 2, 10]);
    assert.deepEqual([s.n, s.p50, s.p99, s.max, s.mean], [4, 2, 10, 10, 4]);
  });

  it('a stall counts against every request it delayed (latency from the intended send time)', () => {
    // 1,000 req/s; the sender stalls so requests due at 0..4 ms all go out at 10 ms and finish at 10.2 ms.
    const intended = [0, 1, 2, 3, 4].map((i) => intendedTime(0, 1000, i));
    assert.deepEqual(intended, [0, 1, 2, 3, 4]);
    const lat = correctedLatencies(intended, [10.2, 10.2, 10.2, 10.2, 10.2]).map((x) => Math.round(x * 10) / 10);
    assert.deepEqual(lat, [10.2, 9.2, 8.2, 7.2, 6.2]);
    // Measured from the actual send (10 ms) every one would look like 0.2 ms: the omission the correction removes.
    assert.ok(percentile(lat, 0.5) > 5);
    assert.throws(() => correctedLatencies([5], [4]), /before its intended send time/);
    assert.throws(() => correctedLatencies([1, 2], [3]), /differ in length/);
  });

  it('spread gives the median (mean of the middle pair when even) and min–max, ignoring NaN', () => {
    assert.deepEqual(spread([5, 1, 3]), { median: 3, min: 1, max: 5, n: 3 });
    assert.deepEqual(spread([4, 1, 3, 2, NaN]), { median: 2.5, min: 1, max: 4, n: 4 });
    assert.equal(spread([]).n, 0);
  });

  it('ratios are NaN when a side is missing or zero', () => {
    assert.equal(ratio(3, 2), 1.5);
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.ok(Number.isNaN(ratio(NaN, 2)));
  });

  it('targets are met or not by their comparison, with the stretch goal separately', () => {
    const t = { id: 'cpu', text: 'cpu', unit: 'vCPU', comparison: '<=' as const, threshold: 0.2, stretch: 0.1 };
    assert.deepEqual([evaluateTarget(t, 0.15).status, evaluateTarget(t, 0.15).stretchMet], ['met', false]);
    assert.equal(evaluateTarget(t, 0.05).stretchMet, true);
    assert.equal(evaluateTarget(t, 0.25).status, 'not met');
    assert.equal(evaluateTarget(t, NaN).status, 'not measured');
    const up = { id: 'tp', text: 'tp', unit: '×', comparison: '>=' as const, threshold: 0.8 };
    assert.equal(evaluateTarget(up, 0.8).status, 'met');
    assert.equal(evaluateTarget(up, 0.79).status, 'not met');
  });

  it('CPU seconds come from utime+stime of /proc/<pid>/stat, also when the name holds spaces and parentheses', () => {
    const stat = '1234 (node (weft) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    assert.equal(cpuSecondsFromStat(stat, 100), 3);
    assert.throws(() => cpuSecondsFromStat('garbage'), /not a \/proc/);
    assert.equal(vcpuPer1000(0.6, 2, 1000), 0.3);
    assert.equal(vcpuPer1000(0.6, 2, 2000), 0.15);
    assert.ok(Number.isNaN(vcpuPer1000(1, 0, 1000)));
  });

  it('profile summary: busy time and self time by function, idle left out', () => {
    const node = (id: number, functionName: string, url = '') => ({ id, callFrame: { functionName, url, lineNumber: 9 } });
    const p = {
      nodes: [node(1, '(root)'), node(2, '(idle)'), node(3, 'relay', 'file:///x/dist/agent/src/proxy/relay.js'), node(4, 'writeBuffer')],
      samples: [2, 3, 3, 4, 2, 3], timeDeltas: [0, 1000, 1000, 1000, 1000, 1000], startTime: 0, endTime: 6000,
    };
    const s = summarizeProfile(p, 5);
    assert.equal(s.wallMs, 6);
    // The last sample's time is unknown (no next delta): it counts its own delta.
    assert.equal(s.busyMs, 4);
    assert.deepEqual(s.hot.map((h) => [h.name, h.where, h.selfMs, h.share]), [['relay', 'dist/agent/src/proxy/relay.js:10', 3, 0.75], ['writeBuffer', '', 1, 0.25]]);
  });

  it('preflight names a missing tool and refuses to run without root', async () => {
    await assert.rejects(benchPreflight(['sh', 'weft-no-such-tool-xyz'], 0), (e: Error & { code?: string; hint?: string }) =>
      e.code === 'WEFT_E_BENCH_TOOL_MISSING' && /weft-no-such-tool-xyz/.test(e.message) && !/\bsh\b,/.test(e.message) && /npm run setup/.test(e.hint ?? ''));
    await assert.rejects(benchPreflight(['sh'], 1000), (e: Error & { code?: string }) => e.code === 'WEFT_E_PRIVILEGE');
    await benchPreflight(['sh'], 0);
  });
});
