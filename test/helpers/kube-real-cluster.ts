// A real one-node Kubernetes cluster for tests: scripts/kube-cluster.mjs (kubelet, containerd,
// kube-proxy, scheduler, controller manager, API server, etcd, in the network namespace weft-kc)
// runs as a child; it tears everything down when it gets SIGTERM or when this process goes away
// (its stdin closes), and a later run removes what a SIGKILLed one left.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const SCRIPT = join(root, 'scripts', 'kube-cluster.mjs');

/** Builds (first time) the cluster's binaries; a skip reason outside CI when Go is missing. */
export function clusterBinaries(): { kubeNode: string } | { skip: string } {
  let kubeNode = '';
  for (const tool of ['kube-apiserver', 'kube-node']) {
    // The first build takes several minutes on 2 cores.
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'tools.mjs'), tool], { encoding: 'utf8', timeout: 40 * 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status === 3 && process.env.CI !== 'true') {
      const reason = r.stderr.trim().split('\n').pop() ?? `${tool} unavailable`;
      process.stderr.write(`SKIPPED real cluster tests: ${reason}\n`);
      return { skip: reason };
    }
    if (r.status !== 0) throw new Error(`scripts/tools.mjs ${tool} failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
    if (tool === 'kube-node') kubeNode = r.stdout.trim();
  }
  return { kubeNode };
}

/** Builds deploy/Dockerfile into `tag` with npm run image's script (layer cache: seconds when warm). */
export function buildWeftImage(tag: string): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-image.mjs'), '--tag', tag, '--no-smoke'], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 20 * 60_000 });
  if (r.status !== 0) throw new Error(`scripts/build-image.mjs --tag ${tag} failed (exit ${r.status ?? r.signal}):\n${`${r.stdout}${r.stderr}`.split('\n').slice(-40).join('\n')}`);
}

export interface ClusterInfo {
  kubeconfig: string;
  dir: string;
  node: string;
  netns: string;
  nodeIp: string;
  seconds: number;
}

export class RealKubeCluster {
  info: ClusterInfo | undefined;
  private proc: ChildProcess | undefined;
  private stderr = '';

  constructor(private readonly kubeNode: string) {}

  /** Starts the cluster with `images` (podman image references) imported; resolves when the node is Ready. */
  async start(images: string[], timeoutMs = 5 * 60_000): Promise<ClusterInfo> {
    const p = spawn(process.execPath, [SCRIPT, 'up', '--images', images.join(',')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = p;
    p.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-100_000)));
    const line = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`cluster not up in ${timeoutMs / 1000} s:\n${this.stderr}`)), timeoutMs);
      createInterface({ input: p.stdout! }).once('line', (l) => {
        clearTimeout(t);
        resolve(l);
      });
      p.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`scripts/kube-cluster.mjs exited (${code}) before the cluster was up:\n${this.stderr}`));
      });
    });
    const r = JSON.parse(line) as ClusterInfo & { ready: boolean; error?: string };
    if (!r.ready) throw new Error(`the cluster did not come up: ${r.error}\n${this.stderr}`);
    this.info = r;
    return r;
  }

  /** the log of a component (kubelet, containerd, kube-apiserver, …), last lines */
  log(name: string, lines = 40): string {
    if (!this.info) return '';
    const r = spawnSync('tail', ['-n', String(lines), join(this.info.dir, 'logs', `${name}.log`)], { encoding: 'utf8' });
    return r.stdout;
  }

  kubeNodeBin(name: string): string {
    return join(this.kubeNode, name);
  }

  kubectl(args: string[], input?: string, timeoutMs = 120_000): { code: number; out: string; err: string } {
    const r = spawnSync(join(this.kubeNode, 'kubectl'), args, { input, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, KUBECONFIG: this.info!.kubeconfig } });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }

  /** kubectl that throws with its output when it fails */
  must(args: string[], input?: string, timeoutMs?: number): string {
    const r = this.kubectl(args, input, timeoutMs);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.err}${r.out}`);
    return r.out;
  }

  /** A command in the node's network namespace (pod IPs are reachable only from there). */
  inNode(cmd: string[]): { code: number; out: string; err: string } {
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.info!.netns}`, '--', ...cmd], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }

  /** Stops everything (processes, containers, mounts, cgroups, netns, pins) and waits for it. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
      await gone;
      clearTimeout(t);
    }
    // after a SIGKILL (or a supervisor that died) this removes what is left
    spawnSync(process.execPath, [SCRIPT, 'cleanup'], { stdio: 'ignore', timeout: 60_000 });
  }
}
