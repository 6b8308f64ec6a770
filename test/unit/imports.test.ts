import { test } from 'node:test';
import assert from 'node:assert/strict';

test('agent/src has no circular imports', async () => {
  // @ts-expect-error plain JS helper shared with `npm run lint:cycles`
  const { findCycles } = await import('../../../scripts/import-graph.mjs');
  const cycles: string[][] = findCycles();
  assert.deepEqual(cycles.map((c) => c.join(' -> ')), []);
});

test('the cycle finder reports a cycle when there is one', async () => {
  // @ts-expect-error plain JS helper
  const { findCycles } = await import('../../../scripts/import-graph.mjs');
  const graph = new Map([['/w/a.ts', new Set(['/w/b.ts'])], ['/w/b.ts', new Set(['/w/c.ts'])], ['/w/c.ts', new Set(['/w/a.ts'])]]);
  const cycles: string[][] = findCycles(graph);
  assert.equal(cycles.length, 1);
  assert.equal(cycles[0]!.length, 4);
});
