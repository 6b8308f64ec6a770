// Renders report.md and latency.svg again from a run's run.json (after a change to the report).
// Usage: node dist/bench/render.js bench/results/<run>/run.json
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chartPanels, latencyChartSvg, renderReport } from './lib/report.js';
import type { RunResult } from './lib/results.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node dist/bench/render.js bench/results/<run>/run.json\n');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8')) as RunResult;
writeFileSync(join(dirname(file), 'latency.svg'), latencyChartSvg(chartPanels(r)));
writeFileSync(join(dirname(file), 'report.md'), renderReport(r));
process.stdout.write(`written: ${dirname(file)}/{report.md,latency.svg}\n`);
