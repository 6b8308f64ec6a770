#!/usr/bin/env node
// `npm test` after set-up: the unit tier, then the namespace tier (root: real netns, real BPF).
// `npm test -- unit` or `npm test -- netns` runs one tier; other words filter test files by name.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const words = process.argv.slice(2);
const tiers = [
  { name: 'unit', dir: 'dist/test/unit', concurrency: 2 },
  // The namespace tier shares one machine's kernel; run its files one after another.
  { name: 'netns', dir: 'dist/test/netns', concurrency: 1 },
];

function list(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? list(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : []);
}

const tierWords = words.filter((w) => tiers.some((t) => t.name === w));
const filters = words.filter((w) => !tierWords.includes(w));
let failed = false;
for (const tier of tiers) {
  if (tierWords.length && !tierWords.includes(tier.name)) continue;
  const testFiles = list(join(root, tier.dir)).filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)));
  if (testFiles.length === 0) continue;
  process.stderr.write(`\n== ${tier.name} tier: ${testFiles.length} file(s)${tier.name === 'netns' && process.getuid?.() !== 0 ? ' (not root: privileged tests will be skipped, or fail under CI=true)' : ''}\n`);
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${tier.concurrency}`, '--test-reporter=spec', ...testFiles.map((f) => relative(root, f))], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
