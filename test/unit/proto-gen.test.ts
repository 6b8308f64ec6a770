// The generated TypeScript under agent/src/xds/gen is checked in; this fails when it no longer
// matches what `npm run gen:proto` produces from agent/proto.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

describe('generated protobuf code', () => {
  it('is up to date with agent/proto (run `npm run gen:proto` if this fails)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'weft-protogen-'));
    try {
      execFileSync(join(root, 'node_modules/.bin/buf'), ['generate', '-o', tmp], {
        cwd: root, stdio: 'pipe',
        env: { ...process.env, PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
      });
      const fresh = join(tmp, 'agent/src/xds/gen');
      const checkedIn = join(root, 'agent/src/xds/gen');
      const freshFiles = listFiles(fresh).map((f) => relative(fresh, f));
      const ourFiles = listFiles(checkedIn).map((f) => relative(checkedIn, f));
      assert.deepEqual(ourFiles, freshFiles, 'set of generated files differs');
      assert.ok(freshFiles.length >= 6);
      for (const f of freshFiles) {
        assert.equal(readFileSync(join(checkedIn, f), 'utf8'), readFileSync(join(fresh, f), 'utf8'), `${f} is stale`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
