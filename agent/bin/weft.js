#!/usr/bin/env node
// The `weft` command. The compiled CLI lives in dist/; `npm run build` (or `npm test` / `npm start`,
// which build when needed) produces it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../../dist/agent/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('weft: not built yet. Run `npm run setup` (or `npm run build`) in the Weft checkout first.\n');
  process.exit(1);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
