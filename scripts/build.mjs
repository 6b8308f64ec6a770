#!/usr/bin/env node
// `npm run build`: BPF objects (clang -target bpf, CO-RE against this kernel's BTF), the native
// addon (node-gyp over the system libbpf) and the TypeScript. Each step is skipped when its
// outputs are newer than its inputs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const force = process.argv.includes('--force');
const say = (msg) => { if (!quiet) process.stderr.write(`build: ${msg}\n`); };

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    process.stderr.write(`build: \`${cmd} ${args.join(' ')}\` failed with exit ${r.status}\n`);
    process.exit(1);
  }
  return r;
}

function files(dir, pred) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return files(p, pred);
    return pred(p) ? [p] : [];
  });
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const newest = (ps) => Math.max(0, ...ps.map(mtime));
const stale = (outputs, inputs) => force || outputs.some((o) => !existsSync(o)) || Math.min(...outputs.map(mtime)) < newest(inputs);

function buildBpf() {
  const srcDir = join(root, 'bpf');
  const outDir = join(root, 'build', 'bpf');
  const sources = files(srcDir, (p) => p.endsWith('.bpf.c'));
  if (sources.length === 0) return;
  mkdirSync(outDir, { recursive: true });
  const vmlinux = join(outDir, 'vmlinux.h');
  if (!existsSync(vmlinux)) {
    if (!existsSync('/sys/kernel/btf/vmlinux')) {
      process.stderr.write('build: this kernel has no BTF (/sys/kernel/btf/vmlinux); Weft\'s BPF programs are CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF=y.\n');
      process.exit(1);
    }
    say('generating vmlinux.h from /sys/kernel/btf/vmlinux');
    const r = spawnSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux', 'format', 'c'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) {
      process.stderr.write(`build: bpftool btf dump failed: ${r.stderr || r.error?.message}\n`);
      process.exit(1);
    }
    writeFileSync(vmlinux, r.stdout);
  }
  const headers = files(srcDir, (p) => p.endsWith('.h'));
  for (const src of sources) {
    const out = join(outDir, src.slice(srcDir.length + 1).replace(/\.c$/, '.o'));
    if (!stale([out], [src, vmlinux, ...headers])) continue;
    say(`clang ${src.slice(root.length + 1)}`);
    sh('clang', ['-g', '-O2', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-I', outDir, '-I', srcDir, '-c', src, '-o', out]);
    // Strip DWARF but keep BTF (.BTF/.BTF.ext), as libbpf-bootstrap does.
    sh('llvm-strip', ['-g', out]);
  }
}

function buildNative() {
  const inputs = [join(root, 'binding.gyp'), ...files(join(root, 'native'), (p) => /\.(cc|h|hpp|c)$/.test(p)), ...files(join(root, 'bpf'), (p) => p.endsWith('.h'))];
  if (!existsSync(join(root, 'binding.gyp'))) return;
  const out = join(root, 'build', 'Release', 'weft_native.node');
  if (!stale([out], inputs)) return;
  say('node-gyp (native addon)');
  const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const args = [gyp, 'rebuild', '--release', '-j', '2'];
  // Build against the headers that came with this Node when they are installed (Debian's nodejs
  // and the official tarballs ship them), so no download is needed.
  const nodedir = dirname(dirname(process.execPath));
  if (existsSync(join(nodedir, 'include', 'node', 'common.gypi'))) args.push(`--nodedir=${nodedir}`);
  sh(process.execPath, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit' });
  // node-gyp rebuild wipes build/, which holds the BPF objects too.
}

function buildTs() {
  const inputs = [join(root, 'tsconfig.json'), ...['agent/src', 'test', 'bench'].flatMap((d) => files(join(root, d), (p) => p.endsWith('.ts')))];
  const stamp = join(root, 'dist', '.tsbuildinfo');
  if (!stale([stamp], inputs)) return;
  say('tsc');
  sh(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
}

buildNative();
buildBpf();
buildTs();
