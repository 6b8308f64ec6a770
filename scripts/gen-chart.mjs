#!/usr/bin/env node
// `npm run gen:chart`: writes deploy/helm/weft from agent/src/deploy (objects, values, CRDs).
// Needs the compiled TypeScript (npm run build:ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const mod = new URL('../dist/agent/src/deploy/chart.js', import.meta.url);
if (!existsSync(fileURLToPath(mod))) {
  process.stderr.write('gen:chart: dist/ is missing; run `npm run build:ts` first\n');
  process.exit(1);
}
const { writeChart, chartDir } = await import(mod.href);
const files = writeChart();
process.stderr.write(`gen:chart: wrote ${files.length} files to ${chartDir()}\n`);
