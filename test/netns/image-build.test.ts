// `npm run image` builds deploy/Dockerfile without Docker (buildah, stand-in base images when the
// registry cannot be reached) and smoke-tests it; here the image is also checked independently of
// the script's own checks. Root and the Debian mirror and npm registry are needed; the first run
// on a machine installs buildah/podman/runc/debootstrap and takes a few minutes, later ones reuse
// the base images and the layer cache.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const version = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version;
const tag = 'localhost/weft:test';
const names: string[] = [];

// As scripts/build-image.mjs runs containers: runc, and this process's own rlimits when it may
// not raise them (podman's defaults need CAP_SYS_RESOURCE).
function podmanRun(opts: string[], cmd: string[]) {
  const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
  const nofile = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '1024';
  const limits = capEff & (1n << 24n) ? [] : ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', 'nproc=4096:4096'];
  const name = `weft-image-test-${process.pid}-${names.length}`;
  names.push(name);
  return spawnSync('podman', ['--runtime', 'runc', 'run', '--rm', '--name', name, '--network', 'none', ...limits, ...opts, tag, ...cmd], { encoding: 'utf8' });
}

describe('the Weft image built from deploy/Dockerfile (root)', { skip: privilegedSkip() }, () => {
  after(() => {
    for (const n of names) spawnSync('podman', ['rm', '--force', '--ignore', n], { stdio: 'ignore' });
  });

  test('npm run image builds it and its smoke checks pass', { timeout: 20 * 60_000 }, () => {
    const r = spawnSync(process.execPath, [`${root}scripts/build-image.mjs`, '--tag', tag], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
    const tail = `${r.stdout}${r.stderr}`.split('\n').slice(-60).join('\n');
    assert.equal(r.status, 0, tail);
    assert.match(r.stderr, /all \d+ smoke checks passed/, tail);
  });

  test('its default command is `weft version` and prints the package version', () => {
    const r = podmanRun([], []);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^weft ${version.replace(/\./g, '\\.')} \\(node 20\\.`));
  });

  test('it runs as 65532:65532 unless told otherwise', () => {
    const inspect = spawnSync('podman', ['image', 'inspect', '--format', '{{.Config.User}}', tag], { encoding: 'utf8' });
    assert.equal(inspect.stdout.trim(), '65532:65532', inspect.stderr);
    const r = podmanRun(['--entrypoint', 'sh'], ['-c', 'echo "$(id -u):$(id -g)"']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '65532:65532');
  });
});
