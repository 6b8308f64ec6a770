// `npm pack` of the project installs into an empty directory, and the installed `weft` runs:
// version, the node check, and the install manifest (which reads the packed deploy/crds).
// npm fetches the dependencies from its registry (--prefer-offline uses the cache first).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../../agent/src/common/version.js';
import { packageRoot, parseObjects } from '../../agent/src/deploy/render.js';

const root = packageRoot();
const npm = (args: string[], cwd: string, timeout = 10 * 60_000) =>
  spawnSync('npm', args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });

describe('npm pack → npm install → weft', { timeout: 15 * 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pack-test-'));
  const app = join(dir, 'app');
  let tgz = '';
  let files: string[] = [];
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(() => {
    const packed = npm(['pack', '--json', '--pack-destination', dir], root);
    assert.equal(packed.status, 0, packed.stderr);
    const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    tgz = join(dir, info[0]!.filename);
    files = info[0]!.files.map((f) => f.path);
  });

  it('the package holds the CLI, the compiled code, the prebuilt addon and BPF objects, and the install files', () => {
    for (const f of ['package.json', 'agent/bin/weft.js', 'dist/agent/src/cli/main.js', 'dist/agent/src/deploy/render.js', 'build/Release/weft_native.node', 'binding.gyp', 'deploy/helm/weft/Chart.yaml', 'deploy/helm/weft/values.schema.json', 'deploy/Dockerfile', 'deploy/grafana/weft-dashboard.json']) {
      assert.ok(files.includes(f), `${f} is packed`);
    }
    for (const src of readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c'))) assert.ok(files.includes(`build/bpf/${src.replace(/\.c$/, '.o')}`), `build/bpf/${src} object is packed`);
    for (const crd of readdirSync(join(root, 'deploy/crds'))) assert.ok(files.includes(`deploy/crds/${crd}`), crd);
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('node_modules/') || f.endsWith('vmlinux.h')), 'no tests, dependencies or generated headers');
  });

  it('installs into an empty directory without rebuilding (the prebuilt objects survive) and weft runs', () => {
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'weft-pack-probe', version: '1.0.0', private: true }));
    const inst = npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], app);
    assert.equal(inst.status, 0, inst.stderr);
    const installed = join(app, 'node_modules', 'weft');
    // A binding.gyp makes npm run `node-gyp rebuild` unless gypfile is false; that would wipe build/.
    assert.ok(existsSync(join(installed, 'build/bpf/connect4.bpf.o')), 'BPF objects are still there after install');
    assert.ok(!existsSync(join(installed, 'build/Makefile')), 'npm did not run node-gyp');

    const version = spawnSync('npx', ['--no-install', 'weft', 'version', '-o', 'json'], { cwd: app, encoding: 'utf8' });
    assert.equal(version.status, 0, version.stderr);
    assert.equal((JSON.parse(version.stdout) as { version: string }).version, VERSION);

    const check = spawnSync('npx', ['--no-install', 'weft', 'check', '-o', 'json'], { cwd: app, encoding: 'utf8' });
    // The verdict depends on the machine; that it runs and reports every check does not.
    assert.ok(check.status === 0 || check.status === 1, check.stderr);
    const doc = JSON.parse(check.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(doc.ok, check.status === 0);
    for (const name of ['kernel', 'btf', 'cgroup2', 'bpffs']) assert.ok(doc.checks.some((c) => c.name === name), name);
    // The addon loads from the installed package when the process may probe (root here).
    if (process.getuid?.() === 0) assert.ok(!doc.checks.some((c) => c.name === 'bpf probes' && /cannot probe/.test((c as { detail?: string }).detail ?? '')), JSON.stringify(doc.checks));

    const manifest = spawnSync('npx', ['--no-install', 'weft', 'manifest', '--namespace', 'mesh'], { cwd: app, encoding: 'utf8' });
    assert.equal(manifest.status, 0, manifest.stderr);
    const kinds = parseObjects(manifest.stdout).map((o) => o.kind);
    assert.equal(kinds.filter((k) => k === 'CustomResourceDefinition').length, 2);
    assert.ok(kinds.includes('DaemonSet') && kinds.includes('Deployment'));
  });
});
