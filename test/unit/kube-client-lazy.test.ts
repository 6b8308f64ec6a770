// @kubernetes/client-node is loaded only by code that talks to a cluster (common/kube-client.ts),
// and @peculiar/x509 only by the CA (the agent writes its CSRs as DER itself): eagerly they cost
// ~27 MB and ~2.7 MB of heap in every agent, which every major GC on the data path marks. A
// module hook that refuses to resolve them proves the CLI and the whole agent module graph start
// without them, and that `check --kube` (which needs client-node) does reach for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const weft = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));

function withRefusingHook<T>(fn: (importArg: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-lazy-'));
  try {
    writeFileSync(join(dir, 'hooks.mjs'), `export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@kubernetes/client-node') || specifier.startsWith('@peculiar/x509')) throw new Error('REFUSED: ' + specifier + ' was imported');
  return next(specifier, context);
}\n`);
    writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    return fn(pathToFileURL(join(dir, 'register.mjs')).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const run = (importArg: string, args: string[]) => spawnSync(process.execPath, ['--import', importArg, weft, ...args], { encoding: 'utf8', timeout: 30_000 });

test('the CLI and the agent module graph load without @kubernetes/client-node and @peculiar/x509', () => {
  withRefusingHook((hook) => {
    for (const args of [['version'], ['agent', '--help'], ['check', '--help'], ['controller', '--help']]) {
      const r = run(hook, args);
      assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /REFUSED/);
    }
  });
});

test('the hook does catch an import of @kubernetes/client-node (check --kube needs it)', () => {
  withRefusingHook((hook) => {
    const r = run(hook, ['check', '--kube', '--kubeconfig', '/nonexistent/kubeconfig']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /REFUSED: @kubernetes\/client-node/);
  });
});
