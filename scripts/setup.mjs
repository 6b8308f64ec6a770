#!/usr/bin/env node
// Set-up for `npm start` and `npm test` on a fresh machine: system packages, npm packages, build,
// bpffs. Each step is skipped when already done. No npm dependencies here: this runs before
// `npm ci`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const say = (msg) => { if (!quiet) process.stderr.write(`setup: ${msg}\n`); };
const fail = (msg) => { process.stderr.write(`setup: ${msg}\n`); process.exit(1); };

// Debian packages and a command each provides, used to check for them off Debian.
export const PACKAGES = [
  ['clang', 'clang'], ['llvm', 'llvm-strip'], ['libbpf-dev', null], ['libelf-dev', null], ['zlib1g-dev', null],
  ['bpftool', 'bpftool'], ['iproute2', 'ip'], ['util-linux', 'nsenter'], ['procps', 'ps'], ['make', 'make'],
  ['g++', 'g++'], ['python3', 'python3'], ['pkg-config', 'pkg-config'], ['tcpdump', 'tcpdump'],
  ['iperf3', 'iperf3'], ['haproxy', 'haproxy'], ['wrk', 'wrk'], ['nftables', 'nft'], ['openssl', 'openssl'],
];

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function dpkgInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function systemPackages() {
  if (process.platform !== 'linux') fail(`Weft's data plane needs Linux (this is ${process.platform}).`);
  const isDebian = have('dpkg-query') && have('apt-get');
  if (!isDebian) {
    const missing = PACKAGES.filter(([, cmd]) => cmd && !have(cmd)).map(([, cmd]) => cmd);
    const libbpf = spawnSync('pkg-config', ['--exists', 'libbpf'], { stdio: 'ignore' }).status === 0;
    if (missing.length || !libbpf) {
      fail(`this is not Debian, so set-up cannot install system packages itself. Install: ` +
        `${[...missing, ...(libbpf ? [] : ['libbpf (>= 1.0, with headers)', 'libelf', 'zlib headers'])].join(', ')}; then run this again.`);
    }
    return;
  }
  const missing = PACKAGES.map(([pkg]) => pkg).filter((p) => !dpkgInstalled(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    fail(`missing Debian packages: ${missing.join(' ')}\n  install them as root: apt-get install -y ${missing.join(' ')}`);
  }
  say(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  if (upd.status !== 0) fail('apt-get update failed; check the machine can reach its Debian mirror.');
  const inst = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (inst.status !== 0) fail(`apt-get install ${missing.join(' ')} failed (see above).`);
}

function npmPackages() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  say('installing npm packages (npm ci)');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail('npm ci failed (see above).');
}

function build() {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), ...(quiet ? ['--quiet'] : [])], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail('build failed (see above).');
}

function bpffs() {
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf')) return;
  if (process.getuid?.() !== 0) {
    say('bpffs is not mounted at /sys/fs/bpf; as root: mount -t bpf bpf /sys/fs/bpf');
    return;
  }
  say('mounting bpffs at /sys/fs/bpf');
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'inherit' });
  } catch {
    fail('could not mount bpffs at /sys/fs/bpf; the kernel needs CONFIG_BPF_SYSCALL.');
  }
}

systemPackages();
npmPackages();
build();
bpffs();
