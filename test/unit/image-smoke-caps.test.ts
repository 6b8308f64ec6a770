// `npm run image` smoke-tests `weft check` with the agent's capabilities; they must be the
// chart's, or the smoke test proves something the DaemonSet does not run with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AGENT_CAPABILITIES } from '../../agent/src/deploy/objects.js';

test('the image smoke test runs weft check with exactly the DaemonSet capabilities', () => {
  const script = readFileSync(fileURLToPath(new URL('../../../scripts/build-image.mjs', import.meta.url)), 'utf8');
  const m = /'--cap-drop', 'all', '--cap-add', '([A-Z_,]+)'/.exec(script);
  assert.ok(m, 'build-image.mjs passes --cap-drop all --cap-add LIST');
  assert.deepEqual(m[1]!.split(',').sort(), AGENT_CAPABILITIES.map(([c]) => c).sort());
});
