// The namespace tier needs root and kernel features. Outside CI a missing privilege skips that
// tier with a clear reason; under CI=true it fails the run instead, so CI never passes green on
// tests that did not run.
import { existsSync, readFileSync } from 'node:fs';

export function missingPrivileges(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  const mounts = existsSync('/proc/mounts') ? readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')) : [];
  if (!mounts.some((m) => m[2] === 'cgroup2')) missing.push('a cgroup v2 mount');
  if (!mounts.some((m) => m[2] === 'bpf')) missing.push('bpffs mounted (mount -t bpf bpf /sys/fs/bpf)');
  if (!existsSync('/sys/kernel/btf/vmlinux')) missing.push('kernel BTF (/sys/kernel/btf/vmlinux)');
  return missing;
}

/**
 * For `describe(name, { skip: privilegedSkip() }, …)`: false when the tier can run, a reason
 * string when it cannot (outside CI). Under CI=true a missing privilege throws, failing the file.
 */
export function privilegedSkip(): string | false {
  const missing = missingPrivileges();
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') {
    throw new Error(`privileged test tier cannot run: ${reason}. Under CI=true this is a failure, not a skip.`);
  }
  process.stderr.write(`SKIPPED privileged tests: ${reason}\n`);
  return reason;
}
