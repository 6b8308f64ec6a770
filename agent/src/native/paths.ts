// Where the build puts things: the addon and the BPF objects, found from the project root (the
// directory holding package.json), so the facade works from dist/ and from a packed install.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function projectRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the Weft project root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** build/Release/weft_native.node, or $WEFT_NATIVE_ADDON when set. */
export function addonPath(): string {
  return process.env.WEFT_NATIVE_ADDON ?? join(projectRoot(), 'build', 'Release', 'weft_native.node');
}

/** build/bpf/<name>.bpf.o, as `npm run build` produces it from bpf/<name>.bpf.c. */
export function bpfObjectPath(name: string): string {
  return join(projectRoot(), 'build', 'bpf', `${name}.bpf.o`);
}

/** The cgroup v2 mount point, read from /proc/mounts (/sys/fs/cgroup/unified on hybrid hosts). */
export function cgroup2Mount(mounts = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  return undefined;
}

/** The bpffs mount point (normally /sys/fs/bpf). */
export function bpffsMount(mounts = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'bpf' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  return undefined;
}
