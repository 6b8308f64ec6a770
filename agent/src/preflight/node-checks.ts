// The node preflight behind `weft check`: can this kernel and this process run Weft's data plane?
// The agent runs the same checks at start and reports them, so the answer is the same from the
// CLI and from a running node.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';

export interface CheckResult {
  name: string;
  ok: boolean;
  /** A failed required check makes the node unusable (exit 1). */
  required: boolean;
  detail: string;
  hint?: string;
}

export const MIN_KERNEL: [number, number] = [5, 15];

/** Program types Weft loads, and the helpers each must accept (probed by loading). */
export const BPF_NEEDS: { progType: string; use: string; helpers: string[] }[] = [
  { progType: 'cgroup_sock_addr', use: 'cgroup/connect4, connect6: outbound capture', helpers: ['get_netns_cookie', 'sk_storage_get', 'map_lookup_elem'] },
  { progType: 'sock_ops', use: 'sockops: original destination by (netns, port)', helpers: ['get_netns_cookie', 'sk_storage_get', 'sk_storage_delete', 'map_update_elem'] },
  { progType: 'sched_cls', use: 'tc ingress: inbound capture', helpers: ['sk_assign', 'skc_lookup_tcp', 'sk_release', 'map_lookup_elem', 'skb_load_bytes'] },
];

// Capability numbers from linux/capability.h.
const CAPS: Record<string, number> = { NET_ADMIN: 12, NET_RAW: 13, SYS_PTRACE: 19, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 };
const CAP_REASONS: Record<string, string> = {
  BPF: 'load BPF programs and create maps',
  NET_ADMIN: 'attach tc programs and open sockets with IP_TRANSPARENT / SO_MARK',
  SYS_ADMIN: 'enter pod network namespaces (setns) and attach cgroup programs',
};

export function parseKernelVersion(rel: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(rel);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

export function mounts(text = readFileSync('/proc/mounts', 'utf8')): { source: string; target: string; type: string }[] {
  return text.split('\n').filter(Boolean).map((l) => {
    const [source = '', target = '', type = ''] = l.split(' ');
    // /proc/mounts escapes spaces as \040.
    return { source, target: target.replace(/\\040/g, ' '), type };
  });
}

/** Where the cgroup v2 hierarchy is mounted, or null. */
export function cgroup2Mount(text?: string): string | null {
  const all = mounts(text).filter((m) => m.type === 'cgroup2').map((m) => m.target);
  // Prefer the canonical location when several exist.
  return all.find((t) => t === '/sys/fs/cgroup') ?? all[0] ?? null;
}

export function effectiveCaps(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function checkKernel(rel = release()): CheckResult {
  const v = parseKernelVersion(rel);
  const ok = v !== null && (v[0] > MIN_KERNEL[0] || (v[0] === MIN_KERNEL[0] && v[1] >= MIN_KERNEL[1]));
  return {
    name: 'kernel', ok, required: true,
    detail: `${rel} (need >= ${MIN_KERNEL.join('.')})`,
    ...(ok ? {} : { hint: `Weft needs Linux ${MIN_KERNEL.join('.')} or newer (bpf_sk_assign, cgroup bpf_link, SO_NETNS_COOKIE).` }),
  };
}

export function checkBtf(): CheckResult {
  const ok = existsSync('/sys/kernel/btf/vmlinux');
  return {
    name: 'btf', ok, required: true,
    detail: ok ? '/sys/kernel/btf/vmlinux present' : '/sys/kernel/btf/vmlinux missing',
    ...(ok ? {} : { hint: 'Weft\'s BPF programs are CO-RE: use a kernel built with CONFIG_DEBUG_INFO_BTF=y.' }),
  };
}

export function checkCgroup2(mountsText?: string): CheckResult {
  const at = cgroup2Mount(mountsText);
  return {
    name: 'cgroup2', ok: at !== null, required: true,
    detail: at ? `mounted at ${at}` : 'no cgroup v2 mount',
    ...(at ? {} : { hint: 'Boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or mount it: mount -t cgroup2 none /sys/fs/cgroup/unified' }),
  };
}

export function checkBpffs(mountsText?: string): CheckResult {
  const m = mounts(mountsText).find((x) => x.type === 'bpf' && x.target === '/sys/fs/bpf');
  return {
    name: 'bpffs', ok: !!m, required: true,
    detail: m ? 'mounted at /sys/fs/bpf' : 'not mounted at /sys/fs/bpf',
    ...(m ? {} : { hint: 'mount -t bpf bpf /sys/fs/bpf (the agent pins links there so redirection outlives restarts)' }),
  };
}

export function checkCapabilities(caps = effectiveCaps()): CheckResult[] {
  return Object.keys(CAP_REASONS).map((name) => {
    const ok = (caps & (1n << BigInt(CAPS[name]!))) !== 0n;
    return {
      name: `cap ${name}`, ok, required: true,
      detail: ok ? `CAP_${name} held` : `CAP_${name} missing`,
      ...(ok ? {} : { hint: `run as root or grant CAP_${name}: needed to ${CAP_REASONS[name]}` }),
    };
  });
}

export interface Prober {
  probeProgType(progType: string): boolean;
  probeHelper(progType: string, helper: string): boolean;
}

export function checkBpfFeatures(prober: Prober | Error): CheckResult[] {
  if (prober instanceof Error) {
    return [{ name: 'bpf probes', ok: false, required: true, detail: `cannot probe: ${prober.message}`, hint: 'run `npm run build` so the native addon exists, then run this again' }];
  }
  const out: CheckResult[] = [];
  for (const need of BPF_NEEDS) {
    let typeOk = false;
    let err = '';
    try {
      typeOk = prober.probeProgType(need.progType);
    } catch (e) {
      err = (e as Error).message;
    }
    out.push({
      name: `prog ${need.progType}`, ok: typeOk, required: true,
      detail: typeOk ? `loads (${need.use})` : `rejected by this kernel${err ? `: ${err}` : ''} (${need.use})`,
      ...(typeOk ? {} : { hint: 'this kernel lacks a BPF program type Weft needs; upgrade the kernel or enable CONFIG_BPF / CONFIG_CGROUP_BPF / CONFIG_NET_CLS_BPF' }),
    });
    if (!typeOk) continue;
    const missing: string[] = [];
    for (const helper of need.helpers) {
      let ok = false;
      try {
        ok = prober.probeHelper(need.progType, helper);
      } catch {
        ok = false;
      }
      if (!ok) missing.push(helper);
    }
    out.push({
      name: `helpers ${need.progType}`, ok: missing.length === 0, required: true,
      detail: missing.length === 0 ? need.helpers.join(', ') : `not accepted: ${missing.join(', ')}`,
      ...(missing.length === 0 ? {} : { hint: `bpf_${missing[0]} is missing for ${need.progType} programs on this kernel; Weft needs ${MIN_KERNEL.join('.')}+` }),
    });
  }
  return out;
}

export async function loadProber(): Promise<Prober | Error> {
  try {
    const native = (await import('../native/index.js')) as unknown as Prober;
    if (typeof native.probeProgType !== 'function') return new Error('native addon has no probes');
    return native;
  } catch (e) {
    return e as Error;
  }
}

export async function runNodeChecks(): Promise<CheckResult[]> {
  const caps = checkCapabilities();
  const results = [checkKernel(), checkBtf(), checkCgroup2(), checkBpffs(), ...caps];
  // Probing loads programs, which needs CAP_BPF; say so instead of reporting the kernel as lacking.
  if (caps.every((c) => c.ok)) results.push(...checkBpfFeatures(await loadProber()));
  else results.push({ name: 'bpf probes', ok: false, required: true, detail: 'skipped: missing capabilities', hint: 'run as root to probe BPF program types and helpers' });
  return results;
}
