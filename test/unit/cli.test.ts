import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { main } from '../../agent/src/cli/main.js';

function capture() {
  const io = { outText: '', errText: '', out: (t: string) => void (io.outText += t), err: (t: string) => void (io.errText += t) };
  return io;
}

test('weft --help lists commands and exits 0', async () => {
  const io = capture();
  assert.equal(await main(['--help'], io), 0);
  assert.match(io.outText, /Usage:/);
  assert.match(io.outText, /version/);
});

test('an unknown command is a short usage error with exit code 2', async () => {
  const io = capture();
  assert.equal(await main(['frobnicate'], io), 2);
  assert.match(io.errText, /unknown command 'frobnicate'/);
  assert.ok(io.errText.split('\n').length <= 3, 'usage error stays short');
});

test('a bad flag is a usage error with exit code 2', async () => {
  const io = capture();
  assert.equal(await main(['version', '--nope'], io), 2);
  assert.match(io.errText, /Unknown option '--nope'/);
});

test('weft version -o json prints the package version', async () => {
  const io = capture();
  assert.equal(await main(['version', '-o', 'json'], io), 0);
  const info = JSON.parse(io.outText);
  assert.equal(info.version, JSON.parse((await import('node:fs')).readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
});

test('the weft bin runs as a process', () => {
  const bin = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^weft \d+\.\d+\.\d+/);
  const bad = spawnSync(process.execPath, [bin, 'version', '-o', 'yaml'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
});
