#!/usr/bin/env node
// `npm run image`: builds deploy/Dockerfile into an image without Docker, then smoke-tests it.
// As root on Debian: buildah builds the Dockerfile daemonless (chroot isolation), podman runs the
// result. When the node:20-bookworm(-slim) base images cannot be pulled (no registry access),
// local stand-ins are made once and kept: debootstrap bookworm (minbase) plus this machine's Node
// 20 laid out as in the official image (/usr/local). Real base images already in the store are
// used as they are. Re-running reuses the base images and buildah's layer cache.
//
//   node scripts/build-image.mjs [--tag weft:dev] [--rebuild-base] [--no-cache] [--no-smoke]
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt; };
const tag = option('--tag', 'weft:dev');
const say = (msg) => process.stderr.write(`image: ${msg}\n`);
class Failure extends Error {}
const fail = (msg) => { throw new Failure(msg); };

const dockerfile = join(root, 'deploy', 'Dockerfile');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const nodeMajor = /^ARG NODE_VERSION=(\d+)$/m.exec(readFileSync(dockerfile, 'utf8'))?.[1];
const BASES = [`docker.io/library/node:${nodeMajor}-bookworm`, `docker.io/library/node:${nodeMajor}-bookworm-slim`];
// Label on the stand-ins (and so on images built from them): the recipe below and its inputs.
const STANDIN_LABEL = 'io.weft.standin-base';
const RECIPE = 2; // bump when the stand-in recipe changes

// ---- cleanup: whatever this run creates is registered here and undone on any exit path
const cleanups = [];
let child = null;
let signalled = false;
async function cleanupAll() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try { fn(); } catch (e) { say(`cleanup: ${e.message}`); }
  }
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(`${sig}: stopping and cleaning up`);
    signalled = true;
    if (child) { try { child.kill('SIGTERM'); } catch { /* gone */ } }
    // Let the child react to the signal before its containers are removed underneath it.
    setTimeout(async () => { await cleanupAll(); process.exit(130); }, child ? 2000 : 0);
  });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  return r;
}
function must(cmd, args, opts = {}) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) fail(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status}):\n${(r.stderr || '').trim()}`);
  return (r.stdout || '').trim();
}
// Long steps stream their output (and hand back stdout) and stay interruptible.
function stream(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    let out = '';
    child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
    child.stdout?.on('data', (d) => { out += d; process.stderr.write(d); });
    child.on('error', (e) => { child = null; reject(new Failure(`${cmd}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      child = null;
      if (code === 0) resolve(out);
      else reject(new Failure(`\`${cmd} ${args.join(' ')}\` failed (${signal ?? `exit ${code}`}); see its output above.`));
    });
  });
}
const have = (cmd) => run('sh', ['-c', `command -v ${cmd}`]).status === 0;

// ---- one run at a time: buildah's working containers and the tags are shared state
function lock() {
  const path = '/run/lock/weft-image.lock';
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      cleanups.push(() => unlinkSync(path));
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(path, 'utf8'));
      let alive = false;
      try { process.kill(pid, 0); alive = true; } catch { /* stale */ }
      if (alive) fail(`another image build is running (pid ${pid}, ${path}); wait for it to finish.`);
      unlinkSync(path);
    }
  }
  fail(`could not take ${path}`);
}

// A run killed outright (SIGKILL, power loss) cannot clean up; the next one removes what it left.
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
function sweepLeftovers() {
  const ctrs = run('buildah', ['containers', '--format', '{{.ContainerName}}']).stdout?.split('\n') ?? [];
  for (const name of ctrs.map((l) => l.trim())) {
    const m = /^weft-standin(?:-ca)?-(\d+)$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const mnt = run('buildah', ['mount', name]).stdout?.trim();
    if (mnt) unmountBelow(mnt);
    run('buildah', ['umount', name]);
    run('buildah', ['rm', name]);
    say(`removed working container ${name} left by an earlier run`);
  }
  const pods = run('podman', ['ps', '--all', '--format', '{{.Names}}']).stdout?.split('\n') ?? [];
  for (const name of pods.map((l) => l.trim())) {
    const m = /^weft-(?:smoke|image-test)-(\d+)-\d+$/.exec(name);
    if (m && !alive(Number(m[1]))) run('podman', ['rm', '--force', '--ignore', name]);
  }
}

// ---- tools
function ensureTools() {
  if (process.platform !== 'linux') fail(`building the image needs Linux (this is ${process.platform}).`);
  if (process.getuid?.() !== 0) fail('run this as root: buildah builds with chroot isolation and debootstrap makes device nodes.');
  if (!nodeMajor) fail(`${dockerfile} has no \`ARG NODE_VERSION=<major>\` line`);
  // runc rather than Debian's default crun for podman: crun 1.8 refuses hybrid cgroup v1/v2 hosts.
  const need = [['buildah', 'buildah'], ['podman', 'podman'], ['runc', 'runc'], ['debootstrap', 'debootstrap']];
  const missing = need.filter(([, cmd]) => !have(cmd)).map(([p]) => p);
  if (missing.length === 0) return;
  if (!have('apt-get')) fail(`missing: ${missing.join(', ')}. This is not Debian, so install them yourself and run this again.`);
  say(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-qq'], { stdio: 'inherit', env }).status !== 0) fail('apt-get update failed; check the machine can reach its Debian mirror.');
  if (run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env }).status !== 0) fail(`apt-get install ${missing.join(' ')} failed (see above).`);
}

// ---- base images
function imageLabel(ref, label) {
  const r = run('buildah', ['inspect', '--type', 'image', '--format', `{{index .OCIv1.Config.Labels "${label}"}}`, ref]);
  if (r.status !== 0) return null; // no such image
  return r.stdout.trim() === '<no value>' ? '' : r.stdout.trim();
}
// rmi by id would take every tag of the image along: only remove images nothing names any more.
function rmiIfUntagged(id) {
  if (run('podman', ['image', 'inspect', '--format', '{{len .RepoTags}}', id]).stdout?.trim() === '0') run('podman', ['rmi', id]);
}
const imageId = (ref) => { const r = run('buildah', ['inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref]); return r.status === 0 ? r.stdout.trim() : null; };

// The Debian mirror this machine's apt uses (deb822 or one-line sources), for the suite given.
function hostMirror(suite, fallback) {
  const dir = '/etc/apt/sources.list.d';
  const texts = [];
  if (existsSync('/etc/apt/sources.list')) texts.push(['list', readFileSync('/etc/apt/sources.list', 'utf8')]);
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) {
    if (f.endsWith('.sources')) texts.push(['deb822', readFileSync(join(dir, f), 'utf8')]);
    else if (f.endsWith('.list')) texts.push(['list', readFileSync(join(dir, f), 'utf8')]);
  }
  for (const [kind, text] of texts) {
    if (kind === 'list') {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s/.exec(line.trim() + ' ');
        if (m && m[2] === suite) return m[1].replace(/\/$/, '');
      }
    } else {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1].trim().split(/\s+/) ?? [];
        if (/^Enabled:\s*no/mi.test(stanza) || !field('Types').includes('deb')) continue;
        if (field('Suites').includes(suite) && field('URIs')[0]) return field('URIs')[0].replace(/\/$/, '');
      }
    }
  }
  return fallback;
}

// This machine's Node, as the official image lays it out: /usr/local/{bin/node,lib/node_modules,
// include/node}. The headers matter: the addon is built with node-gyp --nodedir, offline.
function hostNode() {
  const bin = realpathSync(process.execPath);
  const prefix = dirname(dirname(bin));
  const npm = join(prefix, 'lib', 'node_modules', 'npm');
  const include = join(prefix, 'include', 'node');
  if (process.versions.node.split('.')[0] !== nodeMajor) fail(`the Dockerfile builds on Node ${nodeMajor}, but this is Node ${process.versions.node}; run this with Node ${nodeMajor} (its files go into the stand-in base images).`);
  if (!existsSync(join(npm, 'bin', 'npm-cli.js'))) fail(`npm is not at ${npm}; this needs Node ${nodeMajor} installed with npm (official tarball or NodeSource package).`);
  if (!existsSync(join(include, 'common.gypi'))) fail(`Node's headers are not at ${include}; the official tarball and NodeSource's nodejs package ship them.`);
  const corepack = join(prefix, 'lib', 'node_modules', 'corepack');
  const h = createHash('sha256');
  const fd = openSync(bin, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  closeSync(fd);
  return { bin, npm, include, corepack: existsSync(corepack) ? corepack : null, sha: h.digest('hex').slice(0, 16) };
}

// CAs added on this machine (Debian's place for them), e.g. a TLS-inspecting proxy's.
function hostExtraCAs() {
  const dir = '/usr/local/share/ca-certificates';
  const found = [];
  const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) {
    if (e.isDirectory()) walk(join(d, e.name));
    else if (e.name.endsWith('.crt')) found.push(join(d, e.name));
  } };
  if (existsSync(dir)) walk(dir);
  return found.sort().map((f) => readFileSync(f, 'utf8').trim() + '\n').join('');
}

const APT_CLEAN = [
  'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
  'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
  'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";', '',
].join('\n');

const SLIM_EXCLUDES = [
  'path-exclude /usr/share/doc/*', 'path-include /usr/share/doc/*/copyright', 'path-exclude /usr/share/man/*',
  'path-exclude /usr/share/info/*', 'path-exclude /usr/share/groff/*', 'path-exclude /usr/share/lintian/*',
  'path-exclude /usr/share/locale/*', '',
].join('\n');

function unmountBelow(dir) {
  const below = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1])
    .filter((m) => m && m.startsWith(dir + '/')).sort((a, b) => b.length - a.length);
  for (const m of below) run('umount', ['-l', m]);
}

async function standinBases() {
  const found = BASES.map((ref) => ({ ref, label: imageLabel(ref, STANDIN_LABEL) }));
  if (found.every((b) => b.label === '')) { say(`using the real ${BASES.join(' and ')} from the image store`); return; }
  const node = hostNode();
  const mirror = hostMirror('bookworm', 'http://deb.debian.org/debian');
  const security = hostMirror('bookworm-security', 'http://deb.debian.org/debian-security');
  const cas = hostExtraCAs();
  const key = `recipe ${RECIPE}; bookworm minbase from ${mirror}; node ${process.versions.node} sha256:${node.sha}` +
    (cas ? `; builder trusts this machine's local CAs sha256:${createHash('sha256').update(cas).digest('hex').slice(0, 16)}` : '');
  const stale = found.filter((b) => b.label !== '' && (b.label !== key || flag('--rebuild-base')));
  if (stale.length === 0) { say(`base images: reusing the stand-ins (${key})`); return; }

  say(`making stand-in base images (${key})`);
  const started = Date.now();
  const name = `weft-standin-${process.pid}`;
  must('buildah', ['from', '--name', name, 'scratch']);
  cleanups.push(() => run('buildah', ['rm', name]));
  const mnt = must('buildah', ['mount', name]);
  cleanups.push(() => { unmountBelow(mnt); run('buildah', ['umount', name]); });
  // Like debian:bookworm-slim, which the official node images build on: no docs, man pages, locales.
  mkdirSync(join(mnt, 'etc/dpkg/dpkg.cfg.d'), { recursive: true });
  writeFileSync(join(mnt, 'etc/dpkg/dpkg.cfg.d/slim'), SLIM_EXCLUDES);
  await stream('debootstrap', ['--variant=minbase', 'bookworm', mnt, mirror], { stdio: ['ignore', 'ignore', 'inherit'] });
  unmountBelow(mnt);
  // debootstrap's first stage unpacks without dpkg, so remove what the excludes would have kept out.
  must('find', [join(mnt, 'usr/share/doc'), '-mindepth', '1', '!', '-type', 'd', '!', '-name', 'copyright', '-delete']);
  for (const d of ['man', 'info', 'groff', 'lintian', 'locale']) {
    if (existsSync(join(mnt, 'usr/share', d))) must('find', [join(mnt, 'usr/share', d), '-mindepth', '1', '-delete']);
  }
  // apt sources as in the official Debian images (deb822), on this machine's mirror.
  rmSync(join(mnt, 'etc/apt/sources.list'), { force: true });
  writeFileSync(join(mnt, 'etc/apt/sources.list.d/debian.sources'),
    `Types: deb\nURIs: ${mirror}\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n` +
    `Types: deb\nURIs: ${security}\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`);
  // debootstrap copies these from the host; a container gets its own at run time.
  for (const f of ['etc/resolv.conf', 'etc/hostname', 'var/log/bootstrap.log']) rmSync(join(mnt, f), { force: true });
  // As the official Debian images do: apt keeps no package caches in image layers.
  writeFileSync(join(mnt, 'etc/apt/apt.conf.d/docker-clean'), APT_CLEAN);
  rmSync(join(mnt, 'var/cache/apt'), { recursive: true, force: true });
  mkdirSync(join(mnt, 'var/cache/apt/archives/partial'), { recursive: true });
  rmSync(join(mnt, 'var/lib/apt/lists'), { recursive: true, force: true });
  mkdirSync(join(mnt, 'var/lib/apt/lists/partial'), { recursive: true });

  const local = join(mnt, 'usr/local');
  mkdirSync(join(local, 'lib/node_modules'), { recursive: true });
  mkdirSync(join(local, 'include'), { recursive: true });
  must('cp', ['-a', node.bin, join(local, 'bin/node')]);
  must('cp', ['-a', node.npm, join(local, 'lib/node_modules/npm')]);
  must('cp', ['-a', node.include, join(local, 'include/node')]);
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin/npx'));
  if (node.corepack) {
    must('cp', ['-a', node.corepack, join(local, 'lib/node_modules/corepack')]);
    symlinkSync('../lib/node_modules/corepack/dist/corepack.js', join(local, 'bin/corepack'));
  }
  // The official image has a `node` user (1000); keep that so USER lines behave the same.
  must('chroot', [mnt, 'groupadd', '--gid', '1000', 'node']);
  must('chroot', [mnt, 'useradd', '--uid', '1000', '--gid', 'node', '--shell', '/bin/bash', '--create-home', 'node']);
  const v = must('chroot', [mnt, '/usr/local/bin/node', '-p', 'process.versions.node + " npm " + require("/usr/local/lib/node_modules/npm/package.json").version']);
  say(`stand-in has node ${v}`);

  const cfg = ['--os', 'linux', '--arch', 'amd64', '--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--env', `NODE_VERSION=${process.versions.node}`, '--cmd', 'node', '--label', `${STANDIN_LABEL}=${key}`];
  if (process.arch !== 'x64') fail(`stand-ins are only made for x64 here (this is ${process.arch})`);
  must('buildah', ['config', ...cfg, name]);
  run('buildah', ['umount', name]);
  // One Debian for both tags: minbase is a subset of both official bases, so anything the
  // Dockerfile relies on without installing it shows up here as a build failure.
  const old = stale.map((b) => imageId(b.ref)).filter(Boolean);
  must('buildah', ['commit', '--quiet', '--rm', name, BASES[1]]);
  cleanups.pop(); cleanups.pop(); // the working container is gone with --rm
  if (cas) {
    // Registry traffic from this machine goes through a TLS-inspecting proxy whose CA is added
    // locally; npm ci in the builder must trust it too. Only the builder gets it (the runtime
    // stage does no TLS at build time), so it never reaches the weft image.
    const ca = `weft-standin-ca-${process.pid}`;
    must('buildah', ['from', '--name', ca, '--pull=never', BASES[1]]);
    cleanups.push(() => run('buildah', ['rm', ca]));
    const caMnt = must('buildah', ['mount', ca]);
    mkdirSync(join(caMnt, 'etc/ssl'), { recursive: true });
    writeFileSync(join(caMnt, 'etc/ssl/host-extra-ca.pem'), cas);
    run('buildah', ['umount', ca]);
    must('buildah', ['config', '--env', 'NODE_EXTRA_CA_CERTS=/etc/ssl/host-extra-ca.pem', ca]);
    must('buildah', ['commit', '--quiet', '--rm', ca, BASES[0]]);
    cleanups.pop();
  } else {
    must('buildah', ['tag', BASES[1], BASES[0]]);
  }
  for (const id of new Set(old)) rmiIfUntagged(id); // fails harmlessly while still in use
  say(`stand-in base images made in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// ---- the image
async function buildImage() {
  const before = imageId(tag);
  const started = Date.now();
  const args = ['bud', '--pull=never', '--isolation=chroot', '--layers', '--force-rm',
    '-f', dockerfile, '--ignorefile', join(root, 'deploy', 'Dockerfile.dockerignore'), '-t', tag];
  if (flag('--no-cache')) args.push('--no-cache');
  say(`buildah ${args.join(' ')} ${root}`);
  const out = await stream('buildah', [...args, root], { cwd: root });
  const seconds = (Date.now() - started) / 1000;
  const id = imageId(tag);
  if (before && before !== id) rmiIfUntagged(before); // the previous build under this tag
  pruneCache(out);
  return { id, seconds };
}

// --layers keeps an image per step as cache; each source change leaves a stale chain behind
// (GBs for the builder stage). Remove the untagged images built on a stand-in (they carry its
// label) that this build did not use; nothing else in the store is touched.
function pruneCache(buildOutput) {
  // Each step ends with `--> <id>` or `--> Using cache <id>`.
  const used = [...buildOutput.matchAll(/^(?:--> )?(?:Using cache )?([0-9a-f]{11,64})\s*$/gm)].map((m) => m[1]);
  if (used.length === 0) return;
  const r = run('podman', ['images', '--all', '--no-trunc', '--format', `{{.ID}} {{.Repository}} {{index .Labels "${STANDIN_LABEL}"}}`]);
  if (r.status !== 0) return;
  let stale = [...new Set(r.stdout.split('\n').map((l) => l.trim().split(' '))
    .filter(([id, repo, label]) => id && repo === '<none>' && label && label !== '<no' && label !== '')
    .map(([id]) => id.replace(/^sha256:/, '')))].filter((id) => !used.some((u) => id.startsWith(u)));
  const count = stale.length;
  // An image with dependents cannot go before them (and rmi takes untagged parents along), so
  // repeat while that makes progress.
  while (stale.length) {
    for (const id of stale) run('podman', ['rmi', id]);
    const left = stale.filter((id) => run('podman', ['image', 'exists', id]).status === 0);
    if (left.length === stale.length) break;
    stale = left;
  }
  if (count) say(`removed ${count - stale.length} stale cache image(s)${stale.length ? `; ${stale.length} still in use` : ''}`);
}

// ---- smoke checks: the image as Kubernetes would run it
// podman's default rlimits are the kernel maxima, which only a holder of CAP_SYS_RESOURCE may
// set; without it (as in some sandboxes) give the containers this process's own limits.
function ulimits() {
  const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
  if (capEff & (1n << 24n)) return [];
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const nofile = /^Max open files\s+\S+\s+(\d+)/m.exec(limits)?.[1] ?? '1024';
  // Not this process's RLIMIT_NPROC: podman's own children cannot always set that one back.
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', 'nproc=4096:4096'];
}

function smoke() {
  const results = [];
  let n = 0;
  const podman = (opts, cmdArgs) => {
    const name = `weft-smoke-${process.pid}-${n++}`;
    cleanups.push(() => run('podman', ['rm', '--force', '--ignore', name]));
    const r = run('podman', ['--runtime', 'runc', 'run', '--rm', '--name', name, '--network', 'none', ...ulimits(), ...opts, tag, ...cmdArgs]);
    return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };
  const check = (what, ok, out) => { results.push({ what, ok }); say(`${ok ? 'ok  ' : 'FAIL'} ${what}\n${out.replace(/^/gm, '      ')}`); };

  const version = podman([], []);
  check(`\`weft version\` (the default command) prints ${pkg.version}`, version.status === 0 && version.out.startsWith(`weft ${pkg.version} `), version.out);

  const user = must('podman', ['image', 'inspect', '--format', '{{.Config.User}}', tag]);
  const ids = podman(['--entrypoint', 'sh'], ['-c', 'echo "$(id -u):$(id -g)"']);
  check('runs as 65532:65532 by default', user === '65532:65532' && ids.out === '65532:65532', `Config.User ${user}; id in the container: ${ids.out}`);

  const probe = `
    const fs = require('fs');
    const addon = require('/app/build/Release/weft_native.node');
    console.log('addon exports', Object.keys(addon).length + ':', Object.keys(addon).slice(0, 6).join(', '), '...');
    const objs = fs.readdirSync('/app/build/bpf').filter((f) => f.endsWith('.bpf.o'));
    for (const f of objs) {
      const h = fs.readFileSync('/app/build/bpf/' + f).subarray(0, 20);
      if (h.toString('latin1', 1, 4) !== 'ELF' || h.readUInt16LE(18) !== 247) throw new Error(f + ' is not a BPF ELF object');
    }
    console.log('bpf objects', objs.join(' '));`;
  const addon = podman(['--entrypoint', 'node'], ['-e', probe]);
  const ldd = podman(['--entrypoint', 'ldd'], ['/app/build/Release/weft_native.node']);
  const wantObjs = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c')).map((f) => f.replace(/\.c$/, '.o'));
  const missingObjs = wantObjs.filter((o) => !addon.out.includes(o));
  check('native addon loads as 65532; its libbpf/libelf resolve; every bpf/*.bpf.c has its BPF object',
    addon.status === 0 && missingObjs.length === 0 && /libbpf\.so\.1 => \//.test(ldd.out) && /libelf\.so\.1 => \//.test(ldd.out) && !/not found/.test(ldd.out),
    `${addon.out}${missingObjs.length ? `\nmissing: ${missingObjs.join(' ')}` : ''}\n${ldd.out.split('\n').filter((l) => /bpf|elf|libz|node/.test(l)).join('\n')}`);

  // As the agent's DaemonSet runs it: root, only its capabilities, the host's bpffs and cgroups.
  // Like deploy/helm/weft's DaemonSet: root, all capabilities dropped but the agent's, the
  // runtime's default seccomp profile, read-only root with a writable /tmp, host bpffs and cgroups.
  const agentCheck = podman(['--user', '0', '--cap-drop', 'all', '--cap-add', 'BPF,NET_ADMIN,SYS_ADMIN,SYS_PTRACE', // AGENT_CAPABILITIES in agent/src/deploy/objects.ts
    '--read-only', '--tmpfs', '/tmp', '-v', '/sys/fs/bpf:/sys/fs/bpf', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:ro'], ['check']);
  check('`weft check` as the agent DaemonSet runs it (root, its capabilities only, read-only root, host bpffs and cgroups)', agentCheck.status === 0, agentCheck.out);
  return results;
}

async function main() {
  ensureTools();
  lock();
  sweepLeftovers();
  await standinBases();
  const { id, seconds } = await buildImage();
  const size = must('podman', ['image', 'inspect', '--format', '{{.Size}}', tag]);
  say(`built ${tag} in ${seconds.toFixed(0)} s: id ${id.slice(0, 12)}, ${(Number(size) / 1e6).toFixed(0)} MB`);
  if (flag('--no-smoke')) return 0;
  const results = smoke();
  const failed = results.filter((r) => !r.ok);
  say(failed.length ? `${failed.length} smoke check(s) failed: ${failed.map((r) => r.what).join('; ')}` : `${tag} (${id.slice(0, 12)}, ${(Number(size) / 1e6).toFixed(0)} MB): all ${results.length} smoke checks passed`);
  return failed.length ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  if (!(e instanceof Failure)) throw e;
  say(e.message);
} finally {
  await cleanupAll();
}
process.exit(signalled ? 130 : code);
