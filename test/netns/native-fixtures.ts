// Fixtures for the native tests: names that carry the creating process's pid, so that a run
// that crashed (or was SIGKILLed) is cleaned up by the next one without touching anything a
// live run owns; and a synchronous runner for host tools.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpffsMount, cgroup2Mount } from '../../agent/src/native/index.js';

/** Runs a host tool (ip, nsenter, tc); throws with its stderr unless allowFailure. */
export function sh(cmd: string, args: string[], opts: { allowFailure?: boolean } = {}): { stdout: string } {
  try {
    return { stdout: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (err) {
    if (opts.allowFailure) return { stdout: '' };
    throw err;
  }
}

/** `weft-nt-<pid>-<rand>` (netns) or `weft-test-<pid>-<rand>` (cgroups, pins). */
export function testName(prefix: 'weft-nt' | 'weft-test'): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stale(name: string, prefix: string): boolean {
  const m = new RegExp(`^${prefix}-(\\d+)-[0-9a-f]+$`).exec(name);
  return !!m && !alive(Number(m[1]));
}

/** Removes netns, pins and cgroups left by native test runs whose process is gone. */
export function sweepStale(): void {
  if (existsSync('/run/netns')) {
    for (const n of readdirSync('/run/netns')) if (stale(n, 'weft-nt')) sh('ip', ['netns', 'del', n], { allowFailure: true });
  }
  const bpffs = bpffsMount();
  if (bpffs) for (const n of readdirSync(bpffs)) if (stale(n, 'weft-test')) rmSync(join(bpffs, n), { recursive: true, force: true });
  const cg = cgroup2Mount();
  if (cg) {
    for (const n of readdirSync(cg)) {
      if (!stale(n, 'weft-test')) continue;
      const dir = join(cg, n);
      try {
        writeFileSync(join(dir, 'cgroup.kill'), '1');
      } catch {
        // cgroup.kill needs 5.14+; an empty cgroup needs nothing.
      }
      try {
        rmdirSync(dir);
      } catch {
        // still draining; the next run retries
      }
    }
  }
}

export function makeNetns(): { name: string; path: string } {
  const name = testName('weft-nt');
  sh('ip', ['netns', 'add', name]);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/run/netns/${name}` };
}

export function removeNetns(name: string): void {
  if (name) sh('ip', ['netns', 'del', name], { allowFailure: true });
}
